"""Your own evaluation set, as JSON Lines or CSV.

Fields: `question`, `db` (a database URL, or a path to a database file relative to the dataset file),
`sql` (the gold query); optional `id` (default: the 0-based record number), `evidence`, `category`,
`difficulty`, `feasible` (false: the question cannot be answered and abstaining is correct; `sql` may
then be empty). Compared by Spider's execution rules.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import Any

from sqlwright.db.dialects import dialect_for_suffix
from sqlwright.errors import DatasetError
from sqlwright.eval.datasets.base import Dataset
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
        file = Path(db_id).expanduser()
        if not file.is_absolute():
            file = self.base_dir / file
        if not file.is_file():
            raise DatasetError(f"database file {db_id!r} not found: {file}")
        dialect = dialect_for_suffix(file.suffix)
        if dialect is None:
            raise DatasetError(f"cannot tell the database type of {file} from its suffix; give a URL instead")
        return f"{dialect.schemes[0]}:///{file.resolve()}"


def _read_jsonl(path: Path):
    """(line number, record) for each non-blank line."""
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: malformed JSON: {exc.msg}") from exc


def _read_csv(path: Path):
    """(line number, record) for each row; the header names the fields."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        try:
            for row in reader:
                if None in row:
                    raise DatasetError(f"{path}:{reader.line_num}: more values than header columns")
                yield reader.line_num, row
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from exc


def _text(record: dict, key: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
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
    question, db, sql = _text(record, "question"), _text(record, "db"), _text(record, "sql")
    feasible = _feasible(record.get("feasible"), where)
    missing = [name for name, value in (("question", question), ("db", db)) if value is None]
    if sql is None and feasible:
        missing.append("sql")
    if missing:
        raise DatasetError(f"{where}: missing or empty field(s) {', '.join(missing)}")
    return Example(
        id=_text(record, "id") or str(index),
        question=question,
        db=db,
        gold=sql or "",
        evidence=_text(record, "evidence"),
        category=_text(record, "category"),
        difficulty=_text(record, "difficulty"),
        feasible=feasible,
    )
