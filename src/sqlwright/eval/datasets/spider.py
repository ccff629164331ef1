"""Spider 1.0 (Yu et al., 2018): dev.json / tables.json / database/<db>/<db>.sqlite.

Example ids are the question's index in the JSON file ("0".."1033" for dev), so predictions files that
list one SQL per line in file order line up with them. Difficulty is the official hardness level,
computed from the parsed `sql` dict each question carries (see hardness.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlwright.errors import DatasetError
from sqlwright.eval.datasets.base import (
    Dataset,
    database_file,
    one_line,
    read_json,
    require_fields,
    sqlite_url,
    text_field,
)
from sqlwright.eval.datasets.hardness import spider_hardness
from sqlwright.eval.types import Example

log = logging.getLogger(__name__)

DEFAULT_SPLIT = "dev.json"


class SpiderDataset(Dataset):
    """Spider: one SQLite database per db_id, compared by Spider's execution rules."""

    kind = "spider"
    comparison = "spider"

    def __init__(self, name: str, examples: list[Example], database_dir: Path) -> None:
        super().__init__(name, examples)
        self.database_dir = database_dir

    @classmethod
    def load(
        cls, path: Path, *, dialect: str | None = None, db_root: Path | None = None, **options: Any
    ) -> SpiderDataset:
        if dialect not in (None, "sqlite"):
            raise DatasetError(f"Spider databases are SQLite; dialect {dialect!r} is not available")
        if options:
            raise DatasetError(f"unknown Spider option(s): {', '.join(sorted(options))}")
        questions = path / DEFAULT_SPLIT if path.is_dir() else path
        if not questions.is_file():
            raise DatasetError(f"Spider questions not found: {questions} (give the folder holding dev.json)")
        database_dir = Path(db_root) if db_root is not None else questions.parent / "database"
        if not database_dir.is_dir():
            raise DatasetError(f"Spider databases folder not found: {database_dir}")

        records = read_json(questions, "Spider questions file")
        if not isinstance(records, list):
            raise DatasetError(f"{questions}: expected a JSON list of questions")
        examples = [_example(index, record, questions) for index, record in enumerate(records)]
        log.debug("loaded %d Spider questions from %s", len(examples), questions)
        return cls(f"spider-{questions.stem}", examples, database_dir)

    def database_url(self, db_id: str) -> str:
        path = database_file(self.database_dir, db_id, ".sqlite", "Spider")
        if path is None:
            raise DatasetError(f"Spider database {db_id!r} not found: {self.database_dir / db_id / f'{db_id}.sqlite'}")
        return sqlite_url(path)


def _example(index: int, record: Any, source: Path) -> Example:
    where = f"{source}: question {index}"
    require_fields(record, ("db_id", "question", "query"), where)
    parsed = record.get("sql")
    try:
        difficulty = spider_hardness(parsed) if isinstance(parsed, dict) else None
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # The parsed form is nested lists and dicts of fixed shapes; any other shape fails somewhere inside.
        raise DatasetError(f"{where}: malformed parsed 'sql' ({type(exc).__name__}: {one_line(exc)})") from exc
    return Example(
        id=str(index),
        question=text_field(record, "question", where),
        db=text_field(record, "db_id", where),
        gold=text_field(record, "query", where).strip(),
        difficulty=difficulty,
    )
