"""The work file of `train pairs`: a SQLite database written question by question, so that a killed run
(even SIGKILL) loses at most the question in flight and a resumed one asks the model nothing twice.

Tables:
- ``meta``: what the file is and each role's sampling configuration (JSON; a role refuses to resume with
  another one: its candidates would not be the same kind of sample).
- ``questions``: one row per question looked at: its gold, the prompt sent (exactly), and whether it is a
  label (``status`` ok) or was skipped (empty gold, gold error, infeasible) and why.
- ``candidates``: the k labelled candidates of each question per role (``strong``: the model being trained
  or the teacher; ``weak``: SENSE's weak model), written with their question in one transaction.

Pairing is not recorded: the SFT, DPO and SENSE files are derived from the labels at the end of every run, so
another `--pairing` on the same work file costs no model call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlwright.workfiles import bind_config, open_work_database

KIND = "sqlwright-train-pairs"
SCHEMA_VERSION = 1
ROLES = ("strong", "weak")
OK = "ok"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS questions (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL, database TEXT NOT NULL, dialect TEXT NOT NULL,
    question TEXT NOT NULL, evidence TEXT, gold TEXT NOT NULL, difficulty TEXT, status TEXT NOT NULL,
    detail TEXT, prompt TEXT, gold_sql TEXT, gold_reply TEXT, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    id TEXT NOT NULL, role TEXT NOT NULL, idx INTEGER NOT NULL, model TEXT, reply TEXT NOT NULL, sql TEXT,
    correct INTEGER NOT NULL, reason TEXT, note TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
    seconds REAL, created REAL NOT NULL, PRIMARY KEY (id, role, idx)
);
"""


@dataclass(frozen=True)
class QuestionRow:
    id: str
    position: int
    database: str
    dialect: str
    question: str
    evidence: str | None
    gold: str
    difficulty: str | None
    status: str  # "ok" (a label), or why it was skipped: "empty gold", "gold error", "infeasible"
    detail: str | None = None
    prompt: list[dict] | None = None  # the messages sent (ok questions)
    gold_sql: str | None = None  # the gold query a training record teaches (one runnable query)
    gold_reply: str | None = None  # the gold as a reply in ask's format (None: no usable one, e.g. CoT without)


@dataclass(frozen=True)
class CandidateRow:
    id: str
    role: str
    idx: int
    model: str | None
    reply: str
    sql: str | None
    correct: bool
    reason: str | None  # None when correct; "wrong result" or "error: …"
    note: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


class PairsWorkFile:
    """One `train pairs` work file, written by one process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.conn = open_work_database(self.path, kind=KIND, label="train pairs", schema_version=SCHEMA_VERSION, ddl=_DDL)

    # --- configuration ----------------------------------------------------------------------------------
    def config(self, role: str) -> dict | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (f"config:{role}",)).fetchone()
        return json.loads(row[0]) if row else None

    def bind(self, role: str, config: dict) -> bool:
        """Store `role`'s sampling configuration, or check it against the stored one (ConfigError naming what
        differs). Returns True when resuming."""
        return bind_config(self.conn, role, config, mismatch=lambda differ: (
            f"{self.path.parent} holds {role} samples made with other settings (differs in: {', '.join(differ)}); "
            "use the same settings or another --out folder"))

    # --- writing ------------------------------------------------------------------------------------------
    def save_question(self, question: QuestionRow, candidates: Sequence[CandidateRow] = ()) -> None:
        """Record a question and its strong candidates in one transaction."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO questions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (question.id, question.position, question.database, question.dialect, question.question,
                 question.evidence, question.gold, question.difficulty, question.status, question.detail,
                 # the messages' own key order kept: the prompt is stored as it was sent
                 json.dumps(question.prompt, ensure_ascii=False) if question.prompt is not None else None,
                 question.gold_sql,
                 question.gold_reply, time.time()))
            self._insert(candidates)

    def save_candidates(self, candidates: Sequence[CandidateRow]) -> None:
        """Record one role's candidates of a recorded question in one transaction."""
        with self.conn:
            self._insert(candidates)

    def _insert(self, candidates: Sequence[CandidateRow]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.id, c.role, c.idx, c.model, c.reply, c.sql, int(c.correct), c.reason, c.note, c.prompt_tokens,
              c.completion_tokens, c.seconds, time.time()) for c in candidates])

    # --- reading ------------------------------------------------------------------------------------------
    def questions(self) -> list[QuestionRow]:
        rows = self.conn.execute(
            "SELECT id, position, database, dialect, question, evidence, gold, difficulty, status, detail, prompt,"
            " gold_sql, gold_reply FROM questions ORDER BY position, id").fetchall()
        return [QuestionRow(*r[:10], json.loads(r[10]) if r[10] else None, r[11], r[12]) for r in rows]

    def sampled(self, role: str) -> set[str]:
        """Ids of the questions whose `role` candidates are recorded."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT id FROM candidates WHERE role = ?", (role,))}

    def candidates(self, role: str | None = None) -> list[CandidateRow]:
        where, params = ("WHERE role = ?", (role,)) if role else ("", ())
        rows = self.conn.execute(
            "SELECT id, role, idx, model, reply, sql, correct, reason, note, prompt_tokens, completion_tokens,"
            f" seconds FROM candidates {where} ORDER BY id, role, idx", params).fetchall()
        return [CandidateRow(*r[:6], bool(r[6]), *r[7:]) for r in rows]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PairsWorkFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
