"""Your own evaluation set, as JSON Lines or CSV.

Fields: `question`, `db` (a database URL, or a path to a database file relative to the dataset file),
`sql` (the gold query); optional `id` (default: the 0-based record number), `evidence`, `category`,
`difficulty`, `feasible` (false: the question cannot be answered and abstaining is correct; `sql` may
then be empty). Compared by Spider's execution rules.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any

from sqlwright.db.dialects import dialect_for_suffix
from sqlwright.errors import DatasetError
from sqlwright.eval.datasets.base import Dataset, json_type, parse_json_line, undecodable_line
from sqlwright.eval.types import Example

log = logging.getLogger(__name__)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class CustomDataset(Dataset):
    """Questions over any databases sqlwright can open, from a .jsonl or .csv file."""

    kind = "jsonl"
    aliases = ("custom", "csv", "json")
    comparison = "spider"

    def __init__(self, name: str, examples: list[Example], base_dir: Path) -> None:
        super().__init__(name, examples)
        self.base_dir = base_dir

    @classmethod
    def load(
        cls, path: Path, *, dialect: str | None = None, db_root: Path | None = None, **options: Any
    ) -> CustomDataset:
        if options:
            raise DatasetError(f"unknown option(s) for a custom dataset: {', '.join(sorted(options))}")
        if not path.is_file():
            raise DatasetError(f"dataset file not found: {path}")
        reader = _read_csv if path.suffix.lower() in (".csv", ".tsv") else _read_jsonl
        examples: list[Example] = []
        seen: dict[str, int] = {}
        for line, record in reader(path):
            example = _example(len(examples), record, f"{path}:{line}")
            if example.id in seen:
                raise DatasetError(f"{path}:{line}: duplicate id {example.id!r} (first on line {seen[example.id]})")
            seen[example.id] = line
            examples.append(example)
        if not examples:
            raise DatasetError(f"{path}: no questions in the file")
        base_dir = Path(db_root) if db_root is not None else path.parent
        return cls(path.stem, examples, base_dir)

    def database_url(self, db_id: str) -> str:
        if _URL.match(db_id):
            return db_id
        try:
            file = Path(db_id).expanduser()
            if not file.is_absolute():
                file = self.base_dir / file
            found = file.is_file()
        except (OSError, RuntimeError) as exc:  # a name too long; ~user of an unknown user
            raise DatasetError(f"database file {db_id!r}: {getattr(exc, 'strerror', None) or exc}") from exc
        if not found:
            raise DatasetError(f"database file {db_id!r} not found: {str(file)!r}")
        dialect = dialect_for_suffix(file.suffix)
        if dialect is None:
            raise DatasetError(f"cannot tell the database type of {file} from its suffix; give a URL instead")
        return f"{dialect.schemes[0]}:///{file.resolve()}"


def _read_jsonl(path: Path):
    """(line number, record) for each non-blank line (a UTF-8 byte order mark allowed)."""
    with path.open("rb") as handle:
        for number, data in enumerate(handle, start=1):
            try:  # line by line, so that an error names its line
                text = data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not UTF-8 text") from exc
            if text.strip():
                yield number, parse_json_line(text, f"{path}:{number}")


def _read_csv(path: Path):
    """(line number, record) for each row; the header names the fields (a UTF-8 byte order mark allowed)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            for row in reader:
                if None in row:
                    raise DatasetError(f"{path}:{reader.line_num}: more values than header columns")
                yield reader.line_num, row
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num or 1}: malformed CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}:{undecodable_line(path)}: not UTF-8 text") from exc


def _text(record: dict, key: str, where: str) -> str | None:
    """The field's text, stripped; None when absent or blank. A number is taken as its text (CSV-born
    JSON often has numeric ids or difficulties); an object or list is an error."""
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DatasetError(f"{where}: '{key}' must be text, not {json_type(value)}")
    value = str(value).strip()
    return value or None


def _feasible(value: Any, where: str) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DatasetError(f"{where}: 'feasible' must be true or false, not {value!r}")


def _example(index: int, record: Any, where: str) -> Example:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected an object with question, db and sql")
    question, db, sql = (_text(record, key, where) for key in ("question", "db", "sql"))
    feasible = _feasible(record.get("feasible"), where)
    missing = [name for name, value in (("question", question), ("db", db)) if value is None]
    if sql is None and feasible:
        missing.append("sql")
    if missing:
        raise DatasetError(f"{where}: missing or empty field(s) {', '.join(missing)}")
    return Example(
        id=_text(record, "id", where) or str(index),
        question=question,
        db=db,
        gold=sql or "",
        evidence=_text(record, "evidence", where),
        category=_text(record, "category", where),
        difficulty=_text(record, "difficulty", where),
        feasible=feasible,
    )
