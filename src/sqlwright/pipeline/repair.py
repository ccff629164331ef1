"""Execution-guided repair: send a failing or suspicious candidate back to the model once or twice.

A candidate needs repair when it failed (database error, timeout, guard refusal, no SQL in the reply)
or looks wrong (no rows although the question asks for data; only NULLs). The follow-up message holds
the SQL and what happened; the reply joins the pool as ``repair-of-<i>`` and replaces candidate i in
the vote (see select.py).

The pipeline's default (`AskOptions.repair_when="no-answer"`, here `only_without_answer`) repairs only
when no candidate ran: on Spider dev, repairing the failing minority beside a working majority rarely
changed the answer (+0.7 EX points) and cost 40% more time per question (bench/revote.py). Kept cheap
either way: one model call per *distinct* failing SQL (its repair is credited to every duplicate, as
duplicates count as votes), at most `max_repairs` calls per question, and no call at all when the
repairs could not change the vote's outcome (nor lift the confidence to the abstention threshold).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace

from sqlwright.db.schema import Schema
from sqlwright.llm.base import LLM, Message, raise_if_stopped
from sqlwright.pipeline.error_hints import schema_hint
from sqlwright.pipeline.execute import NO_SQL_ERROR, Executor
from sqlwright.pipeline.generate import Usage, draft_from_completion
from sqlwright.pipeline.prompt import repair_messages
from sqlwright.pipeline.select import group_counts, result_key, voters
from sqlwright.pipeline.types import Candidate

log = logging.getLogger(__name__)

# Questions an empty result can answer correctly ("Is there a singer older than 60?").
_YES_NO_QUESTION = re.compile(
    r"^\s*(is|are|was|were|does|do|did|has|have|had|can|could|will|would|should)\b", re.I
)


def expects_rows(question: str) -> bool:
    """Whether an empty result is suspicious for `question` (everything but yes/no questions)."""
    return _YES_NO_QUESTION.match(question) is None


def observation(candidate: Candidate, question: str, schema: Schema | None = None) -> str | None:
    """What to tell the model about `candidate`, or None when it looks fine (or the model said the
    question cannot be answered: that is a vote, not a bug). With `schema`, a database error about an
    unknown column or table also says where that column is, or which tables are near that name."""
    if candidate.unanswerable is not None:
        return None
    error = candidate.error
    if error is not None:
        if error == NO_SQL_ERROR:
            return "Your reply did not contain a SQL query."
        if error.startswith("Refused"):
            return f"The query was refused by the read-only guard. {error}"
        if error.startswith("Timeout"):
            return (f"The query ran too long and was stopped ({error}). "
                    "Write a simpler or more selective query.")
        hint = schema_hint(error, candidate.sql, schema)
        return f"The query failed with this database error: {error}" + (f"\n{hint}" if hint else "")
    rows = candidate.rows
    if rows is None:
        return None
    if not rows and expects_rows(question):
        return ("The query ran but returned no rows. Check the literal values in the filters against the "
                "schema's sample values (spelling, case, format) and check the join conditions.")
    if rows and all(value is None for row in rows for value in row):
        return ("The query returned only NULL values. Check the columns, the joins and the filters "
                "it uses.")
    return None


def vote_decided(pool: list[Candidate], *, question: str, dialect: str, abstain_below: float,
                 moving: int = 0, to_come: int = 0) -> bool:
    """True when the vote's outcome is settled: `moving` voters changing their result (their repairs) and
    `to_come` new voters (samples not drawn yet) could not change the winning result, nor bring the
    confidence below `abstain_below`; and the winner does not look suspicious itself (no rows, only
    NULLs), which repair or more samples might change."""
    counts = group_counts(pool, dialect)
    if not counts:
        return False
    ranked = counts.most_common()
    top_key, top = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0
    if top <= second + moving + to_come:  # a tie could also change the winner (log-probability tie-break)
        return False
    representative = next(pool[i] for i in voters(pool) if result_key(pool[i], dialect) == top_key)
    if observation(representative, question) is not None:
        return False
    return top / max(1, len(voters(pool)) + to_come) >= abstain_below


def repair_candidates(
    llm: LLM,
    executor: Executor,
    pool: list[Candidate],
    messages: list[Message],
    *,
    question: str,
    rounds: int,
    max_repairs: int,
    max_tokens: int,
    seed: int | None = None,
    abstain_below: float = 0.0,
    usage: Usage | None = None,
    only_without_answer: bool = False,
    schema: Schema | None = None,
    on_repair: Callable[[Candidate], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Candidate]:
    """The pool with repair candidates appended. `messages` are the prompt the pool was generated from.

    Each round repairs the candidates that need it and were not tried yet (in round 2, the failing
    repairs of round 1), up to `max_repairs` model calls in all. With `only_without_answer`, repairs go
    on only while no voting candidate has executed successfully: the first repair that runs ends them.
    `schema` lets a database error's unknown column or table be located for the model (error_hints.py).
    `on_repair` is called with each repair candidate once executed; `should_stop` is polled before each model
    call and passed to the backend (Cancelled)."""
    pool = list(pool)
    dialect = executor.db.dialect
    attempted: set[int] = set()
    calls = 0
    for round_no in range(1, rounds + 1):
        if only_without_answer and group_counts(pool, dialect):
            log.debug("repair round %d skipped: a candidate ran", round_no)
            break
        targets: dict[str, tuple[list[int], str]] = {}  # normalised SQL -> (indices, observation)
        for i, cand in enumerate(pool):
            if i in attempted:
                continue
            obs = observation(cand, question, schema)
            if obs is None:
                continue
            key = executor.key(cand.sql) if cand.sql else ""
            targets.setdefault(key, ([], obs))[0].append(i)
        chosen = list(targets.values())[: max(0, max_repairs - calls)]
        if not chosen:
            break
        if vote_decided(pool, question=question, dialect=dialect, abstain_below=abstain_below,
                        moving=sum(len(ix) for ix, _ in chosen)):
            log.debug("repair round %d skipped: the vote is decided", round_no)
            break
        for indices, obs in chosen:
            if only_without_answer and group_counts(pool, dialect):
                log.debug("repairs stopped: a repair ran")
                break
            source = pool[indices[0]]
            raise_if_stopped(should_stop)
            extra = {} if should_stop is None else {"should_stop": should_stop}
            completions = llm.complete(
                repair_messages(messages, source.sql, obs, dialect=dialect, reply=source.reply,
                                may_be_right=source.error is None),
                n=1, temperature=0.0, max_tokens=max_tokens, seed=seed, **extra,
            )
            calls += 1
            attempted.update(indices)
            if usage is not None:
                usage.add(completions)
            if not completions:
                continue
            draft = draft_from_completion("repair", completions[0])
            if draft.sql is None:
                # No SQL back (small models tend to give up, or echo the error as "unanswerable"):
                # the failing original keeps its vote rather than turning into an abstention.
                log.debug("repair of %r returned no SQL", source.sql)
                continue
            if draft.sql and source.sql and executor.key(draft.sql) == executor.key(source.sql):
                log.debug("repair of %r returned it unchanged", source.sql)
                continue
            for j in indices:
                repaired = executor.candidate(replace(draft, origin=f"repair-of-{j}"))
                pool.append(repaired)
                if on_repair is not None:
                    on_repair(repaired)
    return pool
