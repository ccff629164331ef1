"""Stage 4 of synthesis: chain-of-thought solutions, kept when enough of them reach the gold's result.

The pipeline's own chain-of-thought prompt (reason step by step, then the SQL) is sampled `samples` times;
each sample's SQL is run (guarded, with the time limit) and compared with the synthesized query's result
under Spider's rule. As in OmniSQL, the pair's reasoning is kept when at least `min_agree` samples agree
with the gold result; the agreeing samples' texts are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlwright.db.base import Database
from sqlwright.db.result import Result
from sqlwright.errors import SqlwrightError
from sqlwright.llm.base import LLM
from sqlwright.pipeline.ask import COT_MAX_TOKENS
from sqlwright.pipeline.extract import parse_reply, strip_special_tokens
from sqlwright.pipeline.prompt import build_messages, schema_block
from sqlwright.synth.sql import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, DatabaseContext, shared_prefix
from sqlwright.synth.verify import same_result

DEFAULT_SAMPLES = 4
MIN_AGREE = 3  # OmniSQL keeps a pair's reasoning when at least 3 sampled solutions agree
DEFAULT_TEMPERATURE = 0.8


@dataclass(frozen=True)
class CotResult:
    kept: bool
    agree: int  # samples whose SQL has the gold's result
    samples: int
    texts: tuple[str, ...] = ()  # the agreeing samples' replies
    reason: str | None = None  # "disagree" or "error" when not kept
    detail: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def synthesize_cot(llm: LLM, db: Database, ctx: DatabaseContext, question: str, sql: str, *, seed: int,
                   evidence: str | None = None, samples: int = DEFAULT_SAMPLES, min_agree: int = MIN_AGREE,
                   temperature: float = DEFAULT_TEMPERATURE, max_tokens: int = COT_MAX_TOKENS,
                   timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS) -> CotResult:
    """`samples` chain-of-thought solutions of `question` (one call, n samples at `temperature`); kept when
    at least `min_agree` of them reach `sql`'s result."""
    start = time.perf_counter()
    try:
        gold = db.execute(sql, timeout=timeout, max_rows=max_rows)
    except SqlwrightError as exc:
        return CotResult(False, 0, samples, reason="error",
                         detail=f"the synthesized query no longer runs: {' '.join(str(exc).split())}")
    messages = build_messages(ctx.schema_text, question, dialect=ctx.dialect, evidence=evidence, cot=True)
    completions = llm.complete(messages, n=samples, temperature=temperature, max_tokens=max_tokens, seed=seed,
                               **shared_prefix(llm, schema_block(ctx.schema_text, dialect=ctx.dialect)))
    outcomes: dict[str, Result | None] = {}
    agreeing: list[str] = []
    for completion in completions:
        candidate = parse_reply(completion.text).sql
        if candidate is None:
            continue
        if candidate not in outcomes:
            try:
                outcomes[candidate] = db.execute(candidate, timeout=timeout, max_rows=max_rows)
            except SqlwrightError:
                outcomes[candidate] = None
        result = outcomes[candidate]
        if result is not None and same_result(gold, result, sql, db.dialect):
            agreeing.append(strip_special_tokens(completion.text).strip())
    usage = {"prompt_tokens": max((c.prompt_tokens for c in completions), default=0),
             "completion_tokens": sum(c.completion_tokens for c in completions),
             "seconds": time.perf_counter() - start}
    kept = len(agreeing) >= min_agree
    return CotResult(kept, len(agreeing), len(completions), tuple(agreeing) if kept else (),
                     None if kept else "disagree",
                     None if kept else f"{len(agreeing)} of {len(completions)} samples reach the result", **usage)
