"""BIRD (Li et al., 2023): dev.json or the mini-dev files (mini_dev_sqlite.json, mini_dev_postgresql.json,
mini_dev_mysql.json), each a JSON list of {question_id, db_id, question, evidence, SQL, difficulty}.

SQLite databases live at `<db_root>/<db_id>/<db_id>.sqlite`, `db_root` defaulting to `dev_databases/`
beside the JSON file. The mini-dev PostgreSQL and MySQL variants keep all databases' tables in one
server database (named BIRD by the mini-dev instructions); `db_root` (or the `db_url` option) may then be
that database's URL.

Example ids are the question_id (stable across the SQLite and PostgreSQL variants); BIRD's predictions
JSON is keyed by position in the file, which `Example.extra["index"]` records.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from sqlwright.errors import DatasetError
from sqlwright.eval.datasets.base import (
    Dataset,
    database_file,
    id_field,
    read_json,
    require_fields,
    sqlite_url,
    text_field,
)
from sqlwright.eval.types import Example

log = logging.getLogger(__name__)

# File names tried, in order, when the path is a folder.
_CANDIDATE_FILES = ("dev.json", "mini_dev_sqlite.json", "mini_dev.json")

# A dialect is recognised from the file name (mini_dev_postgresql.json) when not given.
_DIALECT_BY_FILE_WORD = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite"}

# Where the mini-dev instructions load the server variants.
DEFAULT_SERVER_URLS = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/BIRD",
    "mysql": "mysql://root@127.0.0.1:3306/BIRD",
}


class BirdDataset(Dataset):
    """BIRD dev / mini-dev, compared by BIRD's set-of-rows rule."""

    kind = "bird"
    comparison = "bird"

    def __init__(self, name: str, examples: list[Example], dialect: str, db_root: Path | None, server_url: str | None):
        super().__init__(name, examples)
        self.dialect = dialect
        self.db_root = db_root
        self.server_url = server_url

    @classmethod
    def load(
        cls, path: Path, *, dialect: str | None = None, db_root: Path | None = None, **options: Any
    ) -> BirdDataset:
        db_url = options.pop("db_url", None)
        if options:
            raise DatasetError(f"unknown BIRD option(s): {', '.join(sorted(options))}")
        questions = _questions_file(path)
        dialect = dialect or _dialect_from_name(questions.name)
        if dialect not in ("sqlite", *DEFAULT_SERVER_URLS):
            raise DatasetError(f"BIRD dialect must be sqlite, postgres or mysql, not {dialect!r}")

        server_url = None
        root = None
        if dialect == "sqlite":
            root = Path(db_root) if db_root is not None else questions.parent / "dev_databases"
        else:
            server_url = db_url or _url_from_path(db_root) or DEFAULT_SERVER_URLS[dialect]

        records = read_json(questions, "BIRD questions file")
        if not isinstance(records, list):
            raise DatasetError(f"{questions}: expected a JSON list of questions")
        examples = []
        seen: set[str] = set()
        for index, record in enumerate(records):
            example = _example(index, record, questions)
            if example.id in seen:
                raise DatasetError(f"{questions}: question {index}: duplicate question_id {example.id}")
            seen.add(example.id)
            examples.append(example)
        log.debug("loaded %d BIRD questions from %s (%s)", len(examples), questions, dialect)
        return cls(f"bird-{questions.stem}", examples, dialect, root, server_url)

    def database_url(self, db_id: str) -> str:
        if self.server_url is not None:
            return self.server_url
        assert self.db_root is not None
        path = database_file(self.db_root, db_id, ".sqlite", "BIRD")
        if path is None:
            hint = "" if self.db_root.is_dir() else " (the databases folder itself is missing: give --db-root)"
            raise DatasetError(f"BIRD database {db_id!r} not found: {self.db_root / db_id / f'{db_id}.sqlite'}{hint}")
        return sqlite_url(path)


def _questions_file(path: Path) -> Path:
    if path.is_dir():
        for name in _CANDIDATE_FILES:
            if (path / name).is_file():
                return path / name
        raise DatasetError(f"no BIRD questions file ({', '.join(_CANDIDATE_FILES)}) in {path}")
    if not path.is_file():
        raise DatasetError(f"BIRD questions file not found: {path}")
    return path


def _dialect_from_name(name: str) -> str:
    for word in re.split(r"[_.\-]", name.lower()):
        if word in _DIALECT_BY_FILE_WORD:
            return _DIALECT_BY_FILE_WORD[word]
    return "sqlite"


def _url_from_path(db_root: Path | str | None) -> str | None:
    """A server URL passed through a Path-typed option: pathlib folds '//' to '/', so restore it."""
    if db_root is None:
        return None
    text = str(db_root)
    match = re.match(r"^([a-z][a-z0-9+]*):/+(.*)$", text)
    return f"{match.group(1)}://{match.group(2)}" if match else None


def _example(index: int, record: Any, source: Path) -> Example:
    where = f"{source}: question {index}"
    require_fields(record, ("question_id", "db_id", "question", "SQL"), where)
    return Example(
        id=id_field(record, "question_id", where),
        question=text_field(record, "question", where),
        db=text_field(record, "db_id", where),
        gold=text_field(record, "SQL", where).strip(),
        evidence=text_field(record, "evidence", where, required=False) or None,
        difficulty=text_field(record, "difficulty", where, required=False),
        extra={"index": index},
    )
