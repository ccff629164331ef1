"""The run file: a SQLite database holding one evaluation run, written as the run goes.

Tables:
- ``meta``: the run's configuration (JSON) — a run file refuses to be resumed with another one.
- ``predictions``: one row per example, written *before* the prediction is compared, so a resumed run
  never asks the model twice.
- ``verdicts``: one row per example (primary key: its id), written when its comparison finishes, with
  the example's facts so that reports and diffs need only the run file.
- ``gold``: gold execution results keyed by database and gold SQL, computed once per run.

WAL mode and a commit per verdict: a run killed at any moment (even SIGKILL) loses at most the
comparisons in flight, and nothing is counted twice because verdicts are keyed by example id.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from sqlwright.db.result import Result
from sqlwright.errors import ConfigError, DatasetError
from sqlwright.eval.types import Example, Prediction, Verdict

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY, sql TEXT, seconds REAL, prompt_tokens INTEGER, completion_tokens INTEGER,
    error TEXT, created REAL NOT NULL, trace TEXT
);
CREATE TABLE IF NOT EXISTS verdicts (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL, db TEXT NOT NULL, question TEXT NOT NULL,
    gold_sql TEXT NOT NULL, evidence TEXT, category TEXT, difficulty TEXT, feasible INTEGER NOT NULL,
    correct INTEGER NOT NULL, pred_sql TEXT, abstained INTEGER NOT NULL, error TEXT, gold_error TEXT,
    soft_f1 REAL, ves REAL, seconds REAL, prompt_tokens INTEGER, completion_tokens INTEGER,
    created REAL NOT NULL, note TEXT
);
CREATE TABLE IF NOT EXISTS gold (
    key TEXT PRIMARY KEY, columns TEXT, rows TEXT, error TEXT, seconds REAL, truncated INTEGER
);
"""


def gold_key(db: str, sql: str) -> str:
    """Cache key of a gold result: the database id and the exact SQL that runs."""
    return hashlib.sha256(f"{db}\0{sql}".encode()).hexdigest()


def config_diff(old: dict, new: dict) -> list[str]:
    """Names of the settings that differ between two configurations."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class RunFile:
    """One run file, opened for writing by the main process (workers never write to it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_DDL)
            self._add_missing_columns()
        except sqlite3.DatabaseError as exc:
            raise DatasetError(f"cannot use {self.path} as a run file: {exc}") from exc

    def _add_missing_columns(self) -> None:
        """Bring a run file written by an earlier sqlwright up to date (columns added since)."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(predictions)")}
        if "trace" not in columns:
            with self.conn:
                self.conn.execute("ALTER TABLE predictions ADD COLUMN trace TEXT")

    # --- configuration -------------------------------------------------------------------------
    def config(self) -> dict | None:
        """The stored configuration, or None for a new run file."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        return json.loads(row[0]) if row else None

    def bind(self, config: dict) -> bool:
        """Store `config` in a new run file, or check it against the stored one.

        Returns True when resuming. Raises ConfigError naming the differing settings otherwise.
        """
        config = json.loads(json.dumps(config, sort_keys=True, default=str))
        if not self._has_note_column():  # added when a run (the file's only writer) binds it, not by readers
            with self.conn:
                self.conn.execute("ALTER TABLE verdicts ADD COLUMN note TEXT")
        old = self.config()
        if old is None:
            with self.conn:
                self.conn.execute(
                    "INSERT INTO meta VALUES ('config', ?), ('schema_version', ?), ('created', ?)",
                    (json.dumps(config, sort_keys=True), str(SCHEMA_VERSION), str(time.time())),
                )
            return False
        if old != config:
            raise ConfigError(
                f"run file {self.path} holds a run with a different configuration "
                f"(differs in: {', '.join(config_diff(old, config))}); use another --run-file"
            )
        return True

    # --- predictions ---------------------------------------------------------------------------
    def predictions(self) -> dict[str, Prediction]:
        rows = self.conn.execute(
            "SELECT id, sql, seconds, prompt_tokens, completion_tokens, error, trace FROM predictions"
        ).fetchall()
        return {r[0]: Prediction(*r[:6], trace=json.loads(r[6]) if r[6] else None) for r in rows}

    def save_prediction(self, p: Prediction) -> None:
        self.save_predictions([p])

    def save_predictions(self, predictions: Iterable[Prediction]) -> None:
        """Store predictions (one transaction), replacing earlier ones with the same id."""
        now = time.time()
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO predictions (id, sql, seconds, prompt_tokens, completion_tokens, error, "
                "created, trace) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(p.id, p.sql, p.seconds, p.prompt_tokens, p.completion_tokens, p.error, now,
                  json.dumps(p.trace, default=str) if p.trace is not None else None) for p in predictions],
            )

    # --- gold cache ----------------------------------------------------------------------------
    def gold(self, key: str) -> Result | str | None:
        """A cached gold result, its error message (str), or None when not cached."""
        row = self.conn.execute(
            "SELECT columns, rows, error, seconds, truncated FROM gold WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        if row[2] is not None:
            return row[2]
        return Result(
            columns=tuple(json.loads(row[0])),
            rows=tuple(tuple(r) for r in json.loads(row[1])),
            truncated=bool(row[4]),
            seconds=row[3] or 0.0,
        )

    def _gold_rows(self, golds: Iterable[tuple[str, Result | str]]) -> list[tuple]:
        rows = []
        for key, value in golds:
            if isinstance(value, str):
                rows.append((key, None, None, value, None, 0))
            else:
                rows.append(
                    (key, json.dumps(list(value.columns)), json.dumps([list(r) for r in value.rows]),
                     None, value.seconds, int(value.truncated))
                )
        return rows

    # --- verdicts ------------------------------------------------------------------------------
    def done_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT id FROM verdicts")}

    def save_verdict(
        self, position: int, example: Example, verdict: Verdict, golds: Iterable[tuple[str, Result | str]] = ()
    ) -> None:
        """Record a finished example (and the gold results it computed) in one transaction."""
        e, v = example, verdict
        with self.conn:
            self.conn.executemany("INSERT OR IGNORE INTO gold VALUES (?, ?, ?, ?, ?, ?)", self._gold_rows(golds))
            self.conn.execute(
                "INSERT OR REPLACE INTO verdicts VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (e.id, position, e.db, e.question, e.gold, e.evidence, e.category, e.difficulty,
                 int(e.feasible), int(v.correct), v.pred_sql, int(v.abstained), v.error, v.gold_error,
                 v.soft_f1, v.ves, v.seconds, v.prompt_tokens, v.completion_tokens, time.time(), v.note),
            )

    def _has_note_column(self) -> bool:
        return "note" in {row[1] for row in self.conn.execute("PRAGMA table_info(verdicts)")}

    def verdicts(self) -> list[tuple[Example, Verdict]]:
        """Every recorded (example, verdict), in dataset order."""
        rows = self.conn.execute(
            "SELECT id, db, question, gold_sql, evidence, category, difficulty, feasible, correct, pred_sql,"
            " abstained, error, gold_error, soft_f1, ves, seconds, prompt_tokens, completion_tokens,"
            f" {'note' if self._has_note_column() else 'NULL'} FROM verdicts ORDER BY position"
        ).fetchall()
        out = []
        for r in rows:
            example = Example(
                id=r[0], question=r[2], db=r[1], gold=r[3], evidence=r[4], category=r[5],
                difficulty=r[6], feasible=bool(r[7]),
            )
            verdict = Verdict(
                id=r[0], correct=bool(r[8]), pred_sql=r[9], abstained=bool(r[10]), error=r[11],
                gold_error=r[12], soft_f1=r[13], ves=r[14], seconds=r[15], prompt_tokens=r[16],
                completion_tokens=r[17], note=r[18],
            )
            out.append((example, verdict))
        return out

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_run_file(path: Path, *, must_exist: bool = False) -> RunFile:
    """Open a run file; with `must_exist`, a DatasetError if there is none at `path`."""
    path = Path(path)
    if must_exist and not path.is_file():
        raise DatasetError(f"no run file at {path}")
    run = RunFile(path)
    if must_exist and run.config() is None:
        run.close()
        raise DatasetError(f"{path} is not a sqlwright run file")
    return run
