"""Defog SQL-Eval: questions/questions_gen_<dialect>.csv over the databases/<db>/<db>.sql dumps.

`path` is the sqleval folder (holding questions/ and databases/) or one questions CSV inside it.
`dialect` (postgres | sqlite | mysql; default postgres, or the one the CSV's name ends with) picks the
question file and the databases the gold and predicted queries run on. The databases are built by
sqlwright itself on first use, once per run (see materialize.py); `prepare()` builds them all up front.

Example ids are "<db_name>-<row>", row being the 0-based data row of the CSV: stable across runs.
The `instructions` column becomes the example's evidence (the hint shown to the model).

Verdicts follow Defog's own code by default (the ``sqleval`` rule, quirks included, since published
SQL-Eval figures come from it); the option ``strict=True`` (``--sqleval-strict``) judges by the
corrected rule ``sqleval-strict`` instead. The rule's name is the dataset's `comparison`, which a run
file's configuration records: strict and default verdicts never mix in one run.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any

from sqlwright.errors import DatasetError
from sqlwright.eval.compare import SQLEVAL_STRICT
from sqlwright.eval.datasets.base import Dataset, database_file, undecodable_line
from sqlwright.eval.datasets.materialize import SqlEvalMaterializer, get_target
from sqlwright.eval.types import Example

log = logging.getLogger(__name__)

DIALECTS = ("postgres", "sqlite", "mysql")
REQUIRED_COLUMNS = ("question", "query", "db_name")
_MATERIALIZER_OPTIONS = ("prefix", "mysql_prefix", "cache_dir", "pg_admin_url", "mysql_admin_url", "reuse")


class SqlEvalDataset(Dataset):
    """Defog SQL-Eval, compared by SQL-Eval's rules (alternatives, column subsets)."""

    kind = "sqleval"
    aliases = ("sql-eval", "defog")
    comparison = "sqleval"

    def __init__(self, name: str, examples: list[Example], dialect: str, materializer: SqlEvalMaterializer,
                 *, strict: bool = False):
        super().__init__(name, examples)
        self.dialect = dialect
        self.materializer = materializer
        if strict:
            self.comparison = SQLEVAL_STRICT

    @classmethod
    def load(
        cls, path: Path, *, dialect: str | None = None, db_root: Path | None = None, **options: Any
    ) -> SqlEvalDataset:
        questions_set = options.pop("questions", "questions_gen")
        strict = bool(options.pop("strict", False))
        unknown = set(options) - set(_MATERIALIZER_OPTIONS)
        if unknown:
            raise DatasetError(f"unknown SQL-Eval option(s): {', '.join(sorted(unknown))}")
        if path.is_dir():
            dialect = dialect or "postgres"
            root = path
            questions = path / "questions" / f"{questions_set}_{dialect}.csv"
        else:
            questions = path
            root = path.parent.parent
            match = re.search(r"_([a-z]+)\.csv$", path.name)
            dialect = dialect or (match.group(1) if match else "postgres")
        if dialect not in DIALECTS:
            raise DatasetError(f"SQL-Eval dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
        get_target(dialect)
        if not questions.is_file():
            raise DatasetError(f"SQL-Eval questions file not found: {questions}")
        databases = Path(db_root) if db_root is not None else root / "databases"
        if not databases.is_dir():
            raise DatasetError(f"SQL-Eval databases folder not found: {databases}")

        examples = _read_questions(questions)
        for db in dict.fromkeys(example.db for example in examples):
            if database_file(databases, db, ".sql", "SQL-Eval") is None:
                raise DatasetError(f"{questions}: database {db!r} has no dump at {databases / db / f'{db}.sql'}")
        materializer = SqlEvalMaterializer(databases, **options)
        log.debug("loaded %d SQL-Eval questions from %s", len(examples), questions)
        return cls(f"sqleval-{dialect}", examples, dialect, materializer, strict=strict)

    def database_url(self, db_id: str) -> str:
        if db_id not in self.db_ids:
            raise DatasetError(f"SQL-Eval database {db_id!r} is not used by {self.name}")
        return self.materializer.url(db_id, self.dialect)

    def close(self) -> None:
        """Release the materializer's hold on the copies it handed out (a later load may then drop them)."""
        self.materializer.close()

    def prepare(self) -> dict[str, str]:
        """Build every database the questions use now (rather than on first use); their URLs by db."""
        return {db: self.database_url(db) for db in self.db_ids}


def _read_questions(path: Path) -> list[Example]:
    examples: list[Example] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path}:1: missing column(s) {', '.join(missing)}")
            for row_index, row in enumerate(reader):
                where = f"{path}:{reader.line_num}"
                if None in row:
                    raise DatasetError(f"{where}: more values than header columns")
                question, query, db = (str(row.get(k) or "").strip() for k in REQUIRED_COLUMNS)
                if not (question and query and db):
                    raise DatasetError(f"{where}: empty question, query or db_name")
                examples.append(
                    Example(
                        id=f"{db}-{row_index}",
                        question=question,
                        db=db,
                        gold=query,
                        evidence=(row.get("instructions") or "").strip() or None,
                        category=(row.get("query_category") or "").strip() or None,
                        extra={"row": row_index},
                    )
                )
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num or 1}: malformed CSV: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}:{undecodable_line(path)}: not UTF-8 text") from exc
    if not examples:
        raise DatasetError(f"{path}: no questions in the file")
    return examples
