"""Drawing candidates: the greedy one, then samples, each executed as it comes, until there are `n` or the
vote is decided.

The vote is decided when the samples not drawn yet could not change its winner even if they all agreed
with the runner-up, nor bring the confidence below the abstention threshold (`repair.vote_decided`). Then
drawing them would change nothing the answer holds but its confidence (and perhaps which SQL of the
winning group represents it: same result), so they are not drawn. With 3 candidates: when the greedy
candidate and the first sample agree (and their result does not look suspicious), the third is skipped.
The answer's confidence then counts the skipped candidates as votes against the winner (a lower bound of
what drawing them would have given), so an abstention threshold decides exactly as with every candidate
drawn, and a threshold that only unanimity passes (1.0) never stops early.

Samples are drawn in as few calls as the stop allows (one call shares its prompt prefill): each call asks
for the fewest samples after which the vote could be decided, i.e. if they all joined the leading group.
Without early stopping all n-1 samples come from one call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlwright.llm.base import LLM, Message
from sqlwright.pipeline.execute import Executor
from sqlwright.pipeline.generate import Draft, Usage, greedy_draft, sample_drafts
from sqlwright.pipeline.repair import vote_decided
from sqlwright.pipeline.select import group_counts
from sqlwright.pipeline.types import Candidate

log = logging.getLogger(__name__)


def next_batch(pool: list[Candidate], dialect: str, remaining: int) -> int:
    """How many of the `remaining` samples to draw next: the fewest after which the vote could be
    decided (all of them joining the leading group), at least one."""
    ranked = group_counts(pool, dialect).most_common(2)
    top = ranked[0][1] if ranked else 0
    second = ranked[1][1] if len(ranked) > 1 else 0
    # decided needs top + m > second + (remaining - m)
    needed = (second + remaining - top) // 2 + 1
    return max(1, min(remaining, needed))


def draw_candidates(
    llm: LLM,
    executor: Executor,
    messages: list[Message],
    *,
    question: str,
    n: int,
    temperature: float,
    max_tokens: int,
    seed: int | None = None,
    cot: bool = False,
    early_stop: bool = True,
    abstain_below: float = 0.0,
    usage: Usage | None = None,
    timings: dict[str, float] | None = None,
    shared_prefix: str | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[Candidate], int]:
    """The executed candidates (greedy first, then samples in order) and how many of the `n` were not
    drawn because the vote was decided. `timings` receives the seconds of "generate" (with
    "generate.greedy" and "generate.samples") and "execute". `shared_prefix`: the text that ends the prompt's
    part shared with other questions (`prompt.schema_block`), for backends that keep prompt states.
    `on_candidate` is called with each candidate once it is executed; `should_stop` is polled before each
    model call and passed to the backend (Cancelled)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    timings = {} if timings is None else timings
    timings.setdefault("generate", 0.0)
    timings.setdefault("execute", 0.0)
    dialect = executor.db.dialect
    pool: list[Candidate] = []

    def run(drafts: list[Draft]) -> None:
        started = time.perf_counter()
        executed = executor.candidates(drafts)
        pool.extend(executed)
        timings["execute"] += time.perf_counter() - started
        if on_candidate is not None:
            for candidate in executed:
                on_candidate(candidate)

    started = time.perf_counter()
    greedy = greedy_draft(llm, messages, max_tokens=max_tokens, seed=seed, cot=cot, usage=usage, timings=timings,
                          shared_prefix=shared_prefix, should_stop=should_stop)
    timings["generate"] += time.perf_counter() - started
    run([greedy] if greedy is not None else [])
    drawn = 1
    while drawn < n:
        remaining = n - drawn
        if early_stop and vote_decided(pool, question=question, dialect=dialect, abstain_below=abstain_below,
                                       to_come=remaining):
            log.debug("vote decided after %d of %d candidates", drawn, n)
            break
        count = next_batch(pool, dialect, remaining) if early_stop else remaining
        started = time.perf_counter()
        samples = sample_drafts(llm, messages, first=drawn, count=count, temperature=temperature,
                                max_tokens=max_tokens, seed=seed, cot=cot, usage=usage, timings=timings,
                                shared_prefix=shared_prefix, should_stop=should_stop)
        timings["generate"] += time.perf_counter() - started
        run(samples)
        drawn += count
    return pool, n - drawn
