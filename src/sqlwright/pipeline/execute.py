"""Run drafts through the guard and the database with limits, turning each into a `Candidate`.

Drafts whose SQL is identical after normalisation run once; every draft still becomes its own candidate
(so duplicates count as votes). A refused, failing or timed-out statement becomes a candidate with
`error` set; nothing the guard refuses ever reaches the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlwright.db.base import Database
from sqlwright.errors import QueryFailed, QueryRefused, QueryTimeout
from sqlwright.pipeline.bare_names import quote_bare_names
from sqlwright.pipeline.generate import Draft, normalize_sql
from sqlwright.pipeline.types import Candidate

log = logging.getLogger(__name__)

NO_SQL_ERROR = "the reply holds no SQL query"
UNANSWERABLE_ERROR = "the model says the question cannot be answered"


@dataclass(frozen=True)
class Outcome:
    """The execution of one distinct statement."""

    columns: tuple[str, ...] = ()
    rows: tuple[tuple, ...] | None = None
    error: str | None = None
    truncated: bool = False
    seconds: float = 0.0


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_sql(db: Database, sql: str, *, timeout: float | None = None, max_rows: int | None = None) -> Outcome:
    """Execute `sql` guarded; database errors become an `Outcome` with `error` (a refused statement's
    error starts with "Refused:", a timeout's with "Timeout:"). `timeout`/`max_rows` None: the
    database's own limits."""
    limits: dict[str, float | int] = {}
    if timeout is not None:
        limits["timeout"] = timeout
    if max_rows is not None:
        limits["max_rows"] = max_rows
    start = time.perf_counter()
    try:
        result = db.execute(sql, guard=True, **limits)
    except QueryRefused as exc:
        message = _one_line(exc)
        error = message if message.lower().startswith("refused") else f"Refused: {message}"
        return Outcome(error=error, seconds=time.perf_counter() - start)
    except QueryTimeout as exc:
        return Outcome(error=f"Timeout: {_one_line(exc)}", seconds=time.perf_counter() - start)
    except QueryFailed as exc:
        return Outcome(error=_one_line(exc), seconds=time.perf_counter() - start)
    return Outcome(result.columns, tuple(tuple(r) for r in result.rows), None, result.truncated,
                   time.perf_counter() - start)


class Executor:
    """Executes drafts against one database, remembering outcomes by normalised SQL (within one
    question) so that duplicates and repeated repairs never run twice."""

    def __init__(self, db: Database, *, timeout: float | None = None, max_rows: int | None = None) -> None:
        self.db = db
        self.timeout = timeout
        self.max_rows = max_rows
        self._outcomes: dict[str, Outcome] = {}

    def key(self, sql: str) -> str:
        return normalize_sql(sql, self.db.dialect)

    def outcome(self, sql: str) -> Outcome:
        """The outcome of `sql`, executed at most once per normalised text."""
        key = self.key(sql)
        if key not in self._outcomes:
            self._outcomes[key] = run_sql(self.db, sql, timeout=self.timeout, max_rows=self.max_rows)
            log.debug("executed %r: %s", sql, self._outcomes[key].error or "ok")
        return self._outcomes[key]

    def candidate(self, draft: Draft) -> Candidate:
        """The candidate for `draft`: executed when it holds SQL."""
        if draft.sql is None:
            error = NO_SQL_ERROR if draft.unanswerable is None else f"{UNANSWERABLE_ERROR}: {draft.unanswerable}"
            return Candidate(sql="", origin=draft.origin, error=error,
                             mean_logprob=draft.mean_logprob, unanswerable=draft.unanswerable,
                             prompt_tokens=draft.prompt_tokens, completion_tokens=draft.completion_tokens,
                             reply=draft.reply)
        sql, out = draft.sql, self.outcome(draft.sql)
        if out.error is not None:  # written without the quotes its names need? (small models drop them)
            quoted = quote_bare_names(sql, self.db.schema())
            if quoted is not None and self.outcome(quoted).error is None:
                sql, out = quoted, self.outcome(quoted)
        return Candidate(sql=sql, origin=draft.origin, columns=out.columns, rows=out.rows,
                         error=out.error, truncated=out.truncated, mean_logprob=draft.mean_logprob,
                         seconds=out.seconds, unanswerable=draft.unanswerable,
                         prompt_tokens=draft.prompt_tokens, completion_tokens=draft.completion_tokens,
                         reply=draft.reply)

    def candidates(self, drafts: list[Draft]) -> list[Candidate]:
        return [self.candidate(d) for d in drafts]


def execute_drafts(db: Database, drafts: list[Draft], *, timeout: float | None = None,
                   max_rows: int | None = None) -> list[Candidate]:
    """Every draft as an executed candidate (each distinct statement run once)."""
    return Executor(db, timeout=timeout, max_rows=max_rows).candidates(drafts)
