"""The `Dataset` interface and the registry of dataset kinds.

A dataset kind (spider, bird, sqleval, jsonl) is a subclass of `Dataset` that names itself with `kind`
and builds itself from a path in `load`; subclasses register by ``__init_subclass__`` and are looked up
by name with a "did you mean" error, so nothing in the evaluator branches on kind strings.
"""

from __future__ import annotations

import abc
import difflib
import json
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from sqlwright.errors import DatasetError
from sqlwright.eval.types import Example

_KINDS: dict[str, type[Dataset]] = {}
_BREAKING = ("Cc", "Zl", "Zp")  # control characters and line separators
_ALIASES: dict[str, str] = {}


class Dataset(abc.ABC):
    """A benchmark: its examples, where each example's database lives, and which comparison rules
    judge it. Close it when done (it may hold server databases or temporary files)."""

    kind: ClassVar[str] = ""  # registered name
    aliases: ClassVar[tuple[str, ...]] = ()  # other names accepted by load_dataset
    comparison: ClassVar[str] = ""  # comparison rules: "spider" | "bird" | "sqleval"

    def __init__(self, name: str, examples: list[Example]) -> None:
        self.name = name
        self.examples = examples

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls
            for alias in cls.aliases:
                _ALIASES[alias] = cls.kind

    @classmethod
    @abc.abstractmethod
    def load(cls, path: Path, *, dialect: str | None = None, db_root: Path | None = None, **options: Any) -> Dataset:
        """Read the dataset at `path`. Raises DatasetError when files are missing or malformed."""

    @abc.abstractmethod
    def database_url(self, db_id: str) -> str:
        """A URL for `sqlwright.db.open_database` of the database named `db_id`. Raises DatasetError when
        that database is not available (with the path or server that was tried)."""

    @property
    def db_ids(self) -> list[str]:
        """The distinct database ids of the examples, in first-seen order."""
        return list(dict.fromkeys(example.db for example in self.examples))

    def close(self) -> None:  # noqa: B027 - most datasets hold nothing to release
        """Release what the dataset holds (connections, temporary files)."""

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.examples)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self.examples)} examples>"


def dataset_kinds() -> list[str]:
    """The registered dataset kinds."""
    _import_builtin_kinds()
    return sorted(_KINDS)


def dataset_class(kind: str) -> type[Dataset]:
    """The Dataset subclass registered as `kind` (or one of its aliases)."""
    _import_builtin_kinds()
    key = kind.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _KINDS:
        return _KINDS[key]
    names = sorted([*_KINDS, *_ALIASES])
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DatasetError(f"unknown dataset kind {kind!r} (known: {', '.join(sorted(_KINDS))}){hint}")


def load_dataset(
    kind: str, path: Path, *, dialect: str | None = None, db_root: Path | None = None, **options: Any
) -> Dataset:
    """Load the dataset of the given kind from `path`.

    `dialect` picks the SQL-Eval question file (postgres | sqlite | mysql) or the BIRD variant;
    `db_root` is the BIRD databases folder. Kind-specific `options` are passed through to the kind.
    """
    cls = dataset_class(kind)
    try:
        path = Path(path).expanduser()
    except RuntimeError as exc:  # ~user of an unknown user
        raise DatasetError(f"cannot read dataset {str(path)!r}: {exc}") from exc
    try:
        return cls.load(path, dialect=dialect, db_root=db_root, **options)
    except OSError as exc:  # a path the system refuses: a name too long, a permission, a loop of links
        raise DatasetError(f"cannot read dataset {str(path)!r}: {exc.strerror or exc}") from exc


def _import_builtin_kinds() -> None:
    # The built-in kinds register themselves on import, the same way a plugin's would.
    from sqlwright.eval.datasets import bird, custom, spider, sqleval  # noqa: F401


# --- helpers shared by the kinds ----------------------------------------------------------------


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file (a UTF-8 byte order mark allowed), turning a missing or malformed file into a
    one-line DatasetError."""
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    try:
        with path.open(encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: malformed JSON in {what}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}:{undecodable_line(path)}: {what} is not UTF-8 text") from exc
    except RecursionError as exc:
        raise DatasetError(f"cannot read {what} {path}: JSON nested too deeply") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def parse_json_line(text: str, where: str) -> Any:
    """One JSON value from one line of a JSON Lines file; malformed or absurdly nested JSON is a DatasetError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: malformed JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise DatasetError(f"{where}: JSON nested too deeply") from exc


def require_fields(record: Any, fields: Iterable[str], where: str) -> dict:
    """Check that `record` is an object holding every field; `where` names it in the error."""
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected an object, got {type(record).__name__}")
    missing = [name for name in fields if name not in record]
    if missing:
        raise DatasetError(f"{where}: missing field(s) {', '.join(missing)}")
    return record


def text_field(record: dict, key: str, where: str, *, required: bool = True) -> str | None:
    """The text in `record[key]`; a number or object where text belongs is a DatasetError (it would surface
    later, far from the file, as a broken prompt or comparison). Absent or null is None unless required."""
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise DatasetError(f"{where}: '{key}' must be text, not {json_type(value)}")
    return value


def id_field(record: dict, key: str, where: str) -> str:
    """An identifier given as text or a whole number (JSON files use both), as text."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DatasetError(f"{where}: '{key}' must be text or a whole number, not {json_type(value)}")
    return str(value)


def database_file(root: Path, db_id: str, suffix: str, what: str) -> Path | None:
    """`root/<db_id>/<db_id><suffix>` if that file exists, else None. `db_id` must be a plain folder name:
    a path in it would reach outside `root`, a control character has no place in one."""
    if not db_id or db_id in (".", "..") or any(c in "/\\" or unicodedata.category(c) in _BREAKING for c in db_id):
        raise DatasetError(f"{what} database id {db_id!r} is not a plain name")
    path = root / db_id / f"{db_id}{suffix}"
    try:
        return path if path.is_file() else None
    except OSError as exc:  # a name too long for the file system
        raise DatasetError(f"{what} database {db_id!r}: {exc.strerror or exc}") from exc


def undecodable_line(path: Path) -> int:
    """The line of the first bytes in a file that are not UTF-8, for the error message (a text reader
    decodes ahead in blocks, so where it stopped says little)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1
    return 1


def one_line(text: object) -> str:
    """`text` on one line (a library's message may span several)."""
    return " ".join(str(text).split())


def json_type(value: Any) -> str:
    """What a JSON value is, in words for an error message: "an object", "a list", "null", ..."""
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def sqlite_url(path: Path) -> str:
    """The sqlwright URL of an SQLite file (absolute, so it does not depend on the working folder)."""
    return f"sqlite:///{path.resolve()}"
