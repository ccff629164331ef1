"""Candidate generation: one greedy reply plus n-1 samples, parsed into drafts (SQL not yet executed).

The n-1 samples come from ONE `llm.complete(..., n=n-1)` call so that backends able to share the prompt
prefill across samples (the embedded one) pay for it once.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import sqlglot
from sqlglot.errors import SqlglotError

from sqlwright.db.dialects import get_dialect
from sqlwright.errors import UnsupportedDatabase
from sqlwright.llm.base import LLM, Completion, Message
from sqlwright.pipeline.extract import parse_reply

log = logging.getLogger(__name__)

GREEDY_ORIGINS = frozenset({"greedy", "cot-greedy"})


@dataclass(frozen=True)
class Draft:
    """One parsed model reply: its SQL (or unanswerable reason), before execution."""

    origin: str  # "greedy", "sample-2", "cot-greedy", "cot-1", "repair-of-3"
    sql: str | None
    reply: str
    unanswerable: str | None = None
    mean_logprob: float | None = None
    prompt_tokens: int = 0  # of the call that produced it (samples of one call share that prompt)
    completion_tokens: int = 0


@dataclass
class Usage:
    """Token counts summed over the completion calls of one question."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completions: list[Completion]) -> None:
        """Count one `complete` call. Its n completions share one prompt, so the prompt counts once."""
        if not completions:
            return
        self.prompt_tokens += max(c.prompt_tokens for c in completions)
        self.completion_tokens += sum(c.completion_tokens for c in completions)


def normalize_sql(sql: str, dialect: str) -> str:
    """A canonical text of `sql` for spotting duplicates: sqlglot's rendering in `dialect` (comments,
    whitespace and keyword case removed); the whitespace-collapsed text when sqlglot cannot parse it."""
    try:
        expressions = sqlglot.parse(sql, read=sqlglot_dialect(dialect))
        rendered = "; ".join(e.sql(dialect=sqlglot_dialect(dialect), comments=False)
                             for e in expressions if e is not None)
        if rendered:
            return rendered
    except (SqlglotError, ValueError, KeyError):  # sqlglot raises ValueError for unknown dialects
        pass
    return re.sub(r"\s+", " ", sql).strip().rstrip(";").strip()


def sqlglot_dialect(dialect: str) -> str:
    """The sqlglot dialect name for a registered sqlwright dialect name."""
    try:
        return get_dialect(dialect).sqlglot
    except UnsupportedDatabase:  # an unregistered name: let sqlglot try it as its own dialect name
        return dialect


def draft_from_completion(origin: str, completion: Completion) -> Draft:
    """Parse one completion into a draft."""
    parsed = parse_reply(completion.text)
    return Draft(origin, parsed.sql, completion.text, parsed.unanswerable, completion.mean_logprob,
                 completion.prompt_tokens, completion.completion_tokens)


def sample_origins(n: int, *, cot: bool) -> list[str]:
    """Origin labels of the n candidates: the greedy one first, then the samples numbered from 1."""
    prefix = "cot-" if cot else "sample-"
    return ["cot-greedy" if cot else "greedy", *(f"{prefix}{i}" for i in range(1, n))]


def generate_drafts(
    llm: LLM,
    messages: list[Message],
    *,
    n: int,
    temperature: float,
    max_tokens: int,
    seed: int | None = None,
    cot: bool = False,
    usage: Usage | None = None,
    timings: dict[str, float] | None = None,
) -> list[Draft]:
    """`n` drafts for `messages`: one greedy (temperature 0) and n-1 samples at `temperature`,
    the samples in a single `complete` call. `timings` receives the seconds of each call
    ("generate.greedy", "generate.samples")."""
    if n < 1:
        raise ValueError("n must be at least 1")
    origins = sample_origins(n, cot=cot)
    timings = {} if timings is None else timings
    started = time.perf_counter()
    greedy = llm.complete(messages, n=1, temperature=0.0, max_tokens=max_tokens, seed=seed)
    completions = list(greedy[:1])
    timings["generate.greedy"] = time.perf_counter() - started
    if usage is not None:
        usage.add(greedy)
    if n > 1:
        started = time.perf_counter()
        samples = llm.complete(messages, n=n - 1, temperature=temperature, max_tokens=max_tokens, seed=seed)
        timings["generate.samples"] = time.perf_counter() - started
        if usage is not None:
            usage.add(samples)
        if len(samples) != n - 1:
            log.warning("asked %s for %d samples, got %d", llm.name, n - 1, len(samples))
        completions.extend(samples[: n - 1])
    drafts = [draft_from_completion(origin, c) for origin, c in zip(origins, completions, strict=False)]
    log.debug("generated %d drafts", len(drafts))
    return drafts
