"""Candidate generation: the greedy reply and numbered samples, parsed into drafts (SQL not yet executed).

The samples of one `sample_drafts` call come from ONE `llm.complete(..., n=count)` call so that backends
able to share the prompt prefill across samples (the embedded one) pay for it once. How many samples to
draw, and when to stop, is decided in draw.py.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot.errors import SqlglotError

from sqlwright.db.dialects import get_dialect
from sqlwright.errors import UnsupportedDatabase
from sqlwright.llm.base import LLM, Completion, Message, raise_if_stopped
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
    except (SqlglotError, ValueError, KeyError, RecursionError):  # ValueError: an unknown dialect; RecursionError: deep nesting
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


def sample_origin(i: int, *, cot: bool) -> str:
    """Origin label of candidate i: 0 is the greedy one, then the samples numbered from 1."""
    if i == 0:
        return "cot-greedy" if cot else "greedy"
    return f"{'cot' if cot else 'sample'}-{i}"


def _timed_call(llm: LLM, messages: list[Message], *, n: int, temperature: float, max_tokens: int,
                seed: int | None, usage: Usage | None, timings: dict[str, float] | None,
                timing_key: str, shared_prefix: str | None = None,
                should_stop: Callable[[], bool] | None = None) -> list[Completion]:
    raise_if_stopped(should_stop)  # polled between model calls; the backend polls it during the call
    started = time.perf_counter()
    # Backends that keep prompt states (the embedded one's prompt cache) are told where the shared part ends.
    extra: dict[str, object] = (
        {"shared_prefix": shared_prefix} if shared_prefix and getattr(llm, "supports_shared_prefix", False) else {})
    if should_stop is not None:  # only when given: LLM doubles written before the hook keep working
        extra["should_stop"] = should_stop
    completions = llm.complete(messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed, **extra)
    if timings is not None:
        timings[timing_key] = timings.get(timing_key, 0.0) + time.perf_counter() - started
    if usage is not None:
        usage.add(completions)
    if len(completions) != n:
        log.warning("asked %s for %d completions, got %d", llm.name, n, len(completions))
    return completions[:n]


def greedy_draft(
    llm: LLM,
    messages: list[Message],
    *,
    max_tokens: int,
    seed: int | None = None,
    cot: bool = False,
    usage: Usage | None = None,
    timings: dict[str, float] | None = None,
    shared_prefix: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Draft | None:
    """The greedy (temperature 0) draft for `messages`; its seconds go to ``timings["generate.greedy"]``.
    None when the backend returned nothing. `shared_prefix`: see `prompt.schema_block`. `should_stop`: the
    cancel hook (Cancelled)."""
    completions = _timed_call(llm, messages, n=1, temperature=0.0, max_tokens=max_tokens, seed=seed,
                              usage=usage, timings=timings, timing_key="generate.greedy",
                              shared_prefix=shared_prefix, should_stop=should_stop)
    return draft_from_completion(sample_origin(0, cot=cot), completions[0]) if completions else None


def sample_drafts(
    llm: LLM,
    messages: list[Message],
    *,
    first: int,
    count: int,
    temperature: float,
    max_tokens: int,
    seed: int | None = None,
    cot: bool = False,
    usage: Usage | None = None,
    timings: dict[str, float] | None = None,
    shared_prefix: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Draft]:
    """Samples number `first` .. `first + count - 1` at `temperature`, from ONE `complete` call (backends
    that share the prompt prefill across a call's samples pay for it once). A call's samples draw from
    the call's seed; a later call of the same question (first > 1) gets the seed shifted by first - 1,
    so its samples differ from the earlier ones. Seconds add up in ``timings["generate.samples"]``."""
    if count < 1:
        return []
    call_seed = None if seed is None else seed + first - 1
    completions = _timed_call(llm, messages, n=count, temperature=temperature, max_tokens=max_tokens,
                              seed=call_seed, usage=usage, timings=timings, timing_key="generate.samples",
                              shared_prefix=shared_prefix, should_stop=should_stop)
    return [draft_from_completion(sample_origin(first + j, cot=cot), c) for j, c in enumerate(completions)]
