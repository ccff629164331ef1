"""The work file: a SQLite database holding one synthesis, written item by item as the stages go.

Tables (one row per item and stage, keyed by the item's id ``database/level/index``):
- ``meta``: what the file is, its seed, and each stage's configuration (JSON): a stage refuses to resume
  with another configuration.
- ``databases``: the databases synthesized over (name, URL without its password, dialect, fingerprint).
- ``sql_items``: every generated query, kept or rejected (with the reason).
- ``questions``, ``verifications``, ``cots``: the later stages' outcomes.

WAL mode and a commit per item: a run killed at any moment (even SIGKILL) loses at most the items in
flight, and a resumed run asks the model nothing for an item whose stage is recorded. Each row carries the
wall-clock and CPU seconds its stage spent since the previous row was written, so that the rows of a stage
add up to the stage's cost (the datasheet's seconds per stage and pairs per CPU-hour).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlwright.errors import ConfigError, DatasetError
from sqlwright.workfiles import bind_config, open_work_database

KIND = "sqlwright-synth"
SCHEMA_VERSION = 1
STAGES: tuple[str, ...] = ("sql", "questions", "verify", "cot")

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS databases (
    name TEXT PRIMARY KEY, url TEXT NOT NULL, dialect TEXT NOT NULL, fingerprint TEXT, added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sql_items (
    id TEXT PRIMARY KEY, database TEXT NOT NULL, level TEXT NOT NULL, idx INTEGER NOT NULL,
    seed INTEGER NOT NULL, kept INTEGER NOT NULL, reason TEXT, detail TEXT, sql TEXT, template TEXT,
    columns TEXT, row_count INTEGER, result_hash TEXT, request TEXT, reply TEXT, model TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, wall REAL, cpu REAL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sql_items_by_database ON sql_items (database, kept);
CREATE TABLE IF NOT EXISTS questions (
    id TEXT PRIMARY KEY, style TEXT NOT NULL, question TEXT, evidence TEXT, explanation TEXT,
    candidates TEXT, chosen INTEGER, selection TEXT, reason TEXT, replies TEXT, seed INTEGER, model TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, wall REAL, cpu REAL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS verifications (
    id TEXT PRIMARY KEY, verified INTEGER NOT NULL, reason TEXT, detail TEXT, answer_sql TEXT, model TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, wall REAL, cpu REAL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cots (
    id TEXT PRIMARY KEY, kept INTEGER NOT NULL, agree INTEGER, samples INTEGER, texts TEXT, reason TEXT,
    detail TEXT, seed INTEGER, model TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, wall REAL,
    cpu REAL, created REAL NOT NULL
);
"""

_STAGE_TABLES = {"sql": "sql_items", "questions": "questions", "verify": "verifications", "cot": "cots"}


def url_without_password(url: str) -> str:
    """`url` with any password removed (a work file is not a place for secrets; drivers find it again
    in PGPASSWORD, ~/.pgpass or ~/.my.cnf, or the user gives the URL again)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class DatabaseRecord:
    name: str
    url: str
    dialect: str
    fingerprint: str | None


@dataclass(frozen=True)
class ItemRecord:
    """One kept query and what the later stages made of it (None where a stage has not run)."""

    id: str
    database: str
    dialect: str
    level: str
    index: int
    seed: int
    sql: str
    columns: tuple[str, ...]
    result_hash: str
    sql_model: str | None
    created: float
    style: str | None = None
    question: str | None = None
    evidence: str | None = None
    question_reason: str | None = None
    question_model: str | None = None
    question_created: float | None = None
    verified: bool | None = None
    verify_reason: str | None = None
    verify_model: str | None = None
    verify_created: float | None = None
    cot_kept: bool | None = None
    cot_texts: tuple[str, ...] = ()
    cot_reason: str | None = None
    cot_model: str | None = None


class WorkFile:
    """One work file, written by one process (the main thread of a synthesis run)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.conn = open_work_database(self.path, kind=KIND, label="synthesis", schema_version=SCHEMA_VERSION, ddl=_DDL)

    # --- meta -------------------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def seed(self) -> int | None:
        """The synthesis seed (set by the first SQL stage), or None for a new work file."""
        value = self._meta("seed")
        return int(value) if value is not None else None

    def bind_seed(self, seed: int) -> None:
        """Set the seed of a new work file, or refuse another one than it holds."""
        old = self.seed()
        if old is None:
            with self.conn:
                self.conn.execute("INSERT INTO meta VALUES ('seed', ?)", (str(int(seed)),))
        elif old != seed:
            raise ConfigError(f"work file {self.path} was started with seed {old}, not {seed}; "
                              f"use --seed {old} or another work file")

    def config(self, stage: str) -> dict | None:
        value = self._meta(f"config:{stage}")
        return json.loads(value) if value is not None else None

    def bind(self, stage: str, config: dict) -> bool:
        """Store `stage`'s configuration in the work file, or check it against the stored one.
        Returns True when resuming; ConfigError naming the settings that differ otherwise."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        return bind_config(self.conn, stage, config, mismatch=lambda differ: (
            f"work file {self.path} holds a {stage} stage with another configuration (differs in: "
            f"{', '.join(differ)}); use the same settings or another work file"))

    # --- databases -----------------------------------------------------------------------------------------
    def add_database(self, name: str, url: str, dialect: str, fingerprint: str | None) -> None:
        """Record the database `name`, or check that it is the one recorded under that name."""
        known = self.databases().get(name)
        if known is None:
            with self.conn:
                self.conn.execute("INSERT INTO databases VALUES (?, ?, ?, ?, ?)",
                                  (name, url_without_password(url), dialect, fingerprint, time.time()))
            return
        if known.dialect != dialect:
            raise ConfigError(f"work file {self.path} holds a {known.dialect} database named {name!r}, "
                              f"not this {dialect} one")
        if known.fingerprint is not None and fingerprint is not None and known.fingerprint != fingerprint:
            raise ConfigError(f"the database {name!r} changed since work file {self.path} was started "
                              "(its results would not match the recorded ones); use another work file")

    def databases(self) -> dict[str, DatabaseRecord]:
        rows = self.conn.execute("SELECT name, url, dialect, fingerprint FROM databases ORDER BY added").fetchall()
        return {r[0]: DatabaseRecord(*r) for r in rows}

    # --- sql ---------------------------------------------------------------------------------------------
    def sql_ids(self, database: str | None = None) -> set[str]:
        """Ids of the recorded queries (kept or rejected)."""
        if database is None:
            return {r[0] for r in self.conn.execute("SELECT id FROM sql_items")}
        return {r[0] for r in self.conn.execute("SELECT id FROM sql_items WHERE database = ?", (database,))}

    def attempts(self, database: str) -> int:
        return self.conn.execute("SELECT count(*) FROM sql_items WHERE database = ?", (database,)).fetchone()[0]

    def kept_per_level(self, database: str) -> dict[str, int]:
        rows = self.conn.execute("SELECT level, count(*) FROM sql_items WHERE database = ? AND kept = 1 "
                                 "GROUP BY level", (database,)).fetchall()
        return dict(rows)

    def kept_templates(self, database: str) -> set[str]:
        return {r[0] for r in self.conn.execute(
            "SELECT template FROM sql_items WHERE database = ? AND kept = 1", (database,))}

    def save_sql(self, attempt, *, model: str, wall: float = 0.0, cpu: float = 0.0) -> None:
        """Record a `sqlwright.synth.sql.SqlAttempt` (kept or rejected) in one transaction."""
        a, r, d = attempt, attempt.request, attempt.draft
        request = {"functions": list(r.functions), "column_count": r.column_count, "focus_table": r.focus_table}
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO sql_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.id, r.database, r.level, r.index, r.seed, int(a.kept), a.reason, a.detail, a.sql, a.template,
                 _dumps(list(a.columns)), a.row_count, a.result_hash, _dumps(request), d.reply, model,
                 d.prompt_tokens, d.completion_tokens, wall, cpu, time.time()),
            )

    def rejections(self) -> dict[str, int]:
        """Rejected queries by reason."""
        rows = self.conn.execute("SELECT reason, count(*) FROM sql_items WHERE kept = 0 GROUP BY reason")
        return {r[0]: r[1] for r in rows}

    # --- later stages --------------------------------------------------------------------------------------
    def done(self, stage: str) -> set[str]:
        """Ids whose `stage` is recorded."""
        return {r[0] for r in self.conn.execute(f"SELECT id FROM {_STAGE_TABLES[stage]}")}

    def save_question(self, item_id: str, result, *, seed: int, model: str, wall: float = 0.0,
                      cpu: float = 0.0) -> None:
        """Record a `sqlwright.synth.questions.QuestionResult`."""
        q = result
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO questions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, q.style, q.question, q.evidence, q.explanation, _dumps(list(q.candidates)), q.chosen,
                 q.selection, q.reason, _dumps(list(q.replies)), seed, model, q.prompt_tokens,
                 q.completion_tokens, wall, cpu, time.time()),
            )

    def save_verification(self, item_id: str, v, *, model: str, wall: float = 0.0, cpu: float = 0.0) -> None:
        """Record a `sqlwright.synth.verify.Verification`."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO verifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, int(v.verified), v.reason, v.detail, v.answer_sql, model, v.prompt_tokens,
                 v.completion_tokens, wall, cpu, time.time()),
            )

    def save_cot(self, item_id: str, c, *, seed: int, model: str, wall: float = 0.0, cpu: float = 0.0) -> None:
        """Record a `sqlwright.synth.cot.CotResult`."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO cots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, int(c.kept), c.agree, c.samples, _dumps(list(c.texts)), c.reason, c.detail, seed,
                 model, c.prompt_tokens, c.completion_tokens, wall, cpu, time.time()),
            )

    def verified_count(self, database: str | None = None) -> int:
        sql = "SELECT count(*) FROM verifications v JOIN sql_items s ON s.id = v.id WHERE v.verified = 1"
        if database is None:
            return self.conn.execute(sql).fetchone()[0]
        return self.conn.execute(sql + " AND s.database = ?", (database,)).fetchone()[0]

    # --- reading ---------------------------------------------------------------------------------------------
    # What each later stage has left to do: kept queries whose record of that stage is missing.
    _PENDING = {
        "questions": "q.id IS NULL",
        "verify": "q.question IS NOT NULL AND v.id IS NULL",
        "cot": "q.question IS NOT NULL AND c.id IS NULL AND (v.verified = 1 OR (? AND v.id IS NOT NULL))",
    }

    def items(self, database: str | None = None, *, pending: str | None = None,
              include_unverified: bool = False) -> list[ItemRecord]:
        """Every kept query with its later stages, in the order they were generated; with `pending` (a
        stage: questions, verify, cot), only those that stage has not recorded yet (for cot: the verified
        ones, and with `include_unverified` the others that were judged too)."""
        where, params = ["s.kept = 1"], []
        if database is not None:
            where.append("s.database = ?")
            params.append(database)
        if pending is not None:
            where.append(self._PENDING[pending])
            if pending == "cot":
                params.append(int(include_unverified))
        rows = self.conn.execute(
            "SELECT s.id, s.database, d.dialect, s.level, s.idx, s.seed, s.sql, s.columns, s.result_hash, s.model,"
            " s.created, q.style, q.question, q.evidence, q.reason, q.model, q.created, v.verified, v.reason,"
            " v.model, v.created, c.kept, c.texts, c.reason, c.model"
            " FROM sql_items s JOIN databases d ON d.name = s.database"
            " LEFT JOIN questions q ON q.id = s.id LEFT JOIN verifications v ON v.id = s.id"
            f" LEFT JOIN cots c ON c.id = s.id WHERE {' AND '.join(where)} ORDER BY s.created, s.rowid",
            params,
        ).fetchall()
        return [
            ItemRecord(
                id=r[0], database=r[1], dialect=r[2], level=r[3], index=r[4], seed=r[5], sql=r[6],
                columns=tuple(json.loads(r[7] or "[]")), result_hash=r[8], sql_model=r[9], created=r[10],
                style=r[11], question=r[12], evidence=r[13], question_reason=r[14], question_model=r[15],
                question_created=r[16], verified=None if r[17] is None else bool(r[17]), verify_reason=r[18],
                verify_model=r[19], verify_created=r[20], cot_kept=None if r[21] is None else bool(r[21]),
                cot_texts=tuple(json.loads(r[22] or "[]")), cot_reason=r[23], cot_model=r[24],
            )
            for r in rows
        ]

    def stage_costs(self) -> dict[str, dict[str, float]]:
        """Per stage: items recorded, wall-clock and CPU seconds spent."""
        out = {}
        for stage, table in _STAGE_TABLES.items():
            n, wall, cpu = self.conn.execute(
                f"SELECT count(*), coalesce(sum(wall), 0), coalesce(sum(cpu), 0) FROM {table}").fetchone()
            out[stage] = {"items": n, "seconds": float(wall), "cpu_seconds": float(cpu)}
        return out

    def counts(self, sql: str, params: tuple = ()) -> dict[str, int]:
        """`sql` (selecting key, count) as a dict: for the datasheet's breakdowns."""
        return {str(k): int(n) for k, n in self.conn.execute(sql, params)}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> WorkFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_work_file(path: Path, *, must_exist: bool = False) -> WorkFile:
    """Open (or create) a work file; with `must_exist`, a DatasetError when there is none at `path`."""
    path = Path(path)
    if must_exist and not path.is_file():
        raise DatasetError(f"no work file at {path}")
    return WorkFile(path)
