"""Stage 3 of synthesis: each question asked back through the ask pipeline, and the pair `verified` when the
pipeline's answer has the same result as the synthesized query under Spider's rule (rows as multisets,
order only when the query orders its result, any column permutation).

A pair that is not verified is kept, marked with why: the pipeline abstained, its result differs, or
something failed (the synthesized query no longer runs, the pipeline raised an error).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlwright.db.base import Database
from sqlwright.db.result import Result
from sqlwright.errors import ModelError, SqlwrightError, UserError
from sqlwright.eval.compare import has_top_level_order_by, normalize_result, spider_match
from sqlwright.pipeline.ask import Engine
from sqlwright.pipeline.generate import sqlglot_dialect

log = logging.getLogger(__name__)

UNVERIFIED: tuple[str, ...] = ("abstained", "different_result", "error")


@dataclass(frozen=True)
class Verification:
    verified: bool
    reason: str | None = None  # one of UNVERIFIED when not verified
    detail: str | None = None  # the error, the abstention's reason, or the row counts that differ
    answer_sql: str | None = None  # the pipeline's SQL
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def same_result(gold: Result, pred: Result, gold_sql: str, dialect: str) -> bool:
    """Spider's execution match of two results (normalised here), order mattering when `gold_sql` has a
    top-level ORDER BY. A truncated result never matches: it is not the whole answer."""
    if gold.truncated or pred.truncated:
        return False
    order = has_top_level_order_by(gold_sql, sqlglot_dialect(dialect))
    return spider_match(normalize_result(gold), normalize_result(pred), order)


def verify_pair(engine: Engine, db: Database, question: str, sql: str, *, evidence: str | None = None,
                timeout: float | None = None) -> Verification:
    """Ask `question` (with `evidence`) through `engine` and compare its answer's result with `sql`'s.

    A model error the user has to fix (a server that cannot be reached, a missing model) is raised: every
    later pair would fail the same way."""
    start = time.perf_counter()
    try:
        gold = db.execute(sql, timeout=timeout)
    except SqlwrightError as exc:
        return Verification(False, "error", f"the synthesized query no longer runs: {_one_line(exc)}",
                            seconds=time.perf_counter() - start)
    try:
        # no stored examples: a learned pair must not be verified by showing the model itself
        answer = engine.ask(db, question, evidence=evidence, examples=0)
    except SqlwrightError as exc:
        if isinstance(exc, ModelError) and isinstance(exc, UserError):
            raise
        log.warning("verification of %r failed: %s", question, exc)
        return Verification(False, "error", _one_line(exc), seconds=time.perf_counter() - start)
    usage = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
             "seconds": time.perf_counter() - start}
    if answer.abstained or answer.sql is None:
        return Verification(False, "abstained", answer.reason, **usage)
    pred = Result(answer.columns, answer.rows, answer.truncated)
    if same_result(gold, pred, sql, db.dialect):
        return Verification(True, None, None, answer.sql, **usage)
    detail = f"{pred.row_count} row(s) x {len(pred.columns)} column(s) vs {gold.row_count} x {len(gold.columns)}"
    return Verification(False, "different_result", detail, answer.sql, **usage)
