"""Where training questions come from: the synthesis JSON Lines (synth/dataset.py) or any evaluation dataset
(eval/datasets), both as an eval `Dataset`, so that labels and held-out scores use the evaluator's own rules.

A synthesis file names its databases (`database`) but not where they are: `databases` maps names to URLs,
and `db_dir` is a folder of ``<name>/<name>.sqlite`` (what `synth databases` builds) or ``<name>.sqlite``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlwright.errors import DatasetError
from sqlwright.eval.datasets.base import Dataset, database_file, load_dataset, parse_json_line, sqlite_url
from sqlwright.eval.types import Example

log = logging.getLogger(__name__)

SYNTH_FIELDS = ("id", "database", "dialect", "question", "sql")
_DATABASE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".duckdb")
AUTO = "auto"


class SynthDataset(Dataset):
    """The pairs of a synthesis JSON Lines file, judged by Spider's rule (the one synthesis verifies with).

    Example ids are the pairs' ids; `difficulty` is the pair's complexity (simple, moderate, complex,
    highly-complex) and `extra["cot"]` its agreeing chain of thought, if one was kept. Unverified pairs are
    left out unless `include_unverified`."""

    kind = "synth"
    comparison = "spider"

    def __init__(self, name: str, examples: list[Example], *, databases: Mapping[str, str],
                 db_dir: Path | None, dialects: Mapping[str, str], unverified: int = 0) -> None:
        super().__init__(name, examples)
        self.databases = dict(databases)
        self.db_dir = db_dir
        self.dialects = dict(dialects)
        self.unverified = unverified  # pairs left out because they are not verified

    @classmethod
    def load(cls, path: Path, *, dialect: str | None = None, db_root: Path | None = None,
             **options: Any) -> SynthDataset:
        databases = options.pop("databases", None) or {}
        include_unverified = bool(options.pop("include_unverified", False))
        if options:
            raise DatasetError(f"unknown option(s) for a synthesis file: {', '.join(sorted(options))}")
        if not path.is_file():
            raise DatasetError(f"synthesis file not found: {path}")
        examples: list[Example] = []
        dialects: dict[str, str] = {}
        seen: set[str] = set()
        unverified = 0
        for line, record in _json_lines(path):
            where = f"{path}:{line}"
            example, pair_dialect, verified = _synth_example(record, where)
            if example.id in seen:
                raise DatasetError(f"{where}: duplicate id {example.id!r}")
            seen.add(example.id)
            if not verified and not include_unverified:
                unverified += 1
                continue
            dialects.setdefault(example.db, pair_dialect)
            examples.append(example)
        if not seen:
            raise DatasetError(f"{path}: no pairs in the file")
        if not examples:
            raise DatasetError(f"{path}: none of its {unverified} pairs is verified (use --include-unverified)")
        return cls(path.stem, examples, databases=databases, db_dir=db_root, dialects=dialects,
                   unverified=unverified)

    def database_url(self, db_id: str) -> str:
        if db_id in self.databases:
            return self.databases[db_id]
        if self.db_dir is not None:
            for suffix in _DATABASE_SUFFIXES:
                found = database_file(self.db_dir, db_id, suffix, "synthesis")
                if found is None and (self.db_dir / f"{db_id}{suffix}").is_file():
                    found = self.db_dir / f"{db_id}{suffix}"
                if found is not None:
                    return _file_url(found)
        from sqlwright.sample import SAMPLE_NAME

        if db_id == SAMPLE_NAME:
            from sqlwright.config import load_settings
            from sqlwright.sample import sample_database_path

            return sqlite_url(sample_database_path(load_settings().cache_dir))
        where = f" in {self.db_dir}" if self.db_dir is not None else ""
        raise DatasetError(f"unknown database {db_id!r}: not found{where}; give --db-dir DIR holding "
                           f"{db_id}/{db_id}.sqlite, or --db {db_id}=URL")


def _file_url(path: Path) -> str:
    from sqlwright.db.dialects import dialect_for_suffix

    dialect = dialect_for_suffix(path.suffix)
    scheme = dialect.schemes[0] if dialect is not None else "sqlite"
    return f"{scheme}:///{path.resolve()}"


def _json_lines(path: Path):
    with path.open("rb") as handle:
        for number, data in enumerate(handle, start=1):
            try:
                text = data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not UTF-8 text") from exc
            if text.strip():
                yield number, parse_json_line(text, f"{path}:{number}")


def _synth_example(record: object, where: str) -> tuple[Example, str, bool]:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a synthesized pair (a JSON object)")
    if not isinstance(record.get("sql"), str) or not record["sql"].strip():
        raise DatasetError(f"{where}: no gold SQL (field 'sql' missing or empty): pairs need a labelled query")
    missing = [f for f in SYNTH_FIELDS if not isinstance(record.get(f), str) or not record[f].strip()]
    if missing:
        raise DatasetError(f"{where}: missing or empty field(s) {', '.join(missing)}")
    evidence = record.get("evidence")
    cot = record.get("cot")
    example = Example(
        id=record["id"], question=record["question"].strip(), db=record["database"], gold=record["sql"].strip(),
        evidence=evidence.strip() if isinstance(evidence, str) and evidence.strip() else None,
        difficulty=record.get("complexity") if isinstance(record.get("complexity"), str) else None,
        extra={"cot": cot} if isinstance(cot, str) and cot.strip() else {},
    )
    return example, record["dialect"], record.get("verified", True) is not False


def is_synthesis_file(path: Path) -> bool:
    """Whether `path` is a synthesis JSON Lines file: its first record names a `database` (an evaluation JSONL
    names a `db`)."""
    if not path.is_file() or path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        return False
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    return isinstance(record, dict) and "database" in record and "db" not in record
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    return False


def detect_kind(path: Path) -> str:
    """The dataset kind of `path`: synth, spider (a folder with tables.json), sqleval (a folder with
    questions/), or jsonl (any other file); DatasetError for a folder it cannot tell."""
    if is_synthesis_file(path):
        return "synth"
    if path.is_file():
        return "jsonl"
    if path.is_dir():
        if (path / "tables.json").is_file():
            return "spider"
        if (path / "questions").is_dir():
            return "sqleval"
        raise DatasetError(f"cannot tell what dataset the folder {path} holds; give --kind spider|bird|sqleval")
    raise DatasetError(f"dataset not found: {path}")


def open_source(path: Path, *, kind: str = AUTO, dialect: str | None = None, db_root: Path | None = None,
                databases: Mapping[str, str] | None = None, include_unverified: bool = False) -> Dataset:
    """The questions at `path` as a Dataset (close it when done). `kind` auto: see `detect_kind`.
    `db_root` is the databases folder (synth: `--db-dir`; bird: its databases); `databases` maps a
    synthesis file's database names to URLs."""
    path = Path(path).expanduser()
    kind = detect_kind(path) if kind == AUTO else kind
    if kind == "synth":
        return SynthDataset.load(path, dialect=dialect, db_root=db_root, databases=databases or {},
                                 include_unverified=include_unverified)
    if databases:
        raise DatasetError(f"--db NAME=URL is for synthesis files; a {kind} dataset names its own databases")
    return load_dataset(kind, path, dialect=dialect, db_root=db_root)
