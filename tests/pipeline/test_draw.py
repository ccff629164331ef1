"""Drawing candidates until the vote is decided (early stop), and what the skipped candidates do to the vote."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine
from sqlwright.pipeline.draw import draw_candidates, next_batch
from sqlwright.pipeline.execute import Executor
from sqlwright.pipeline.prompt import build_messages
from sqlwright.pipeline.select import vote_by_result
from sqlwright.pipeline.types import Candidate

QUESTION = "How many rows are there?"
ONE = "SELECT count(*) FROM t"  # 3
ONE_AGAIN = "SELECT count(id) FROM t"  # 3: same result, other SQL
TWO = "SELECT max(id) + 1 FROM t"  # 4
THREE = "SELECT 7"
BROKEN = "SELECT nope FROM t"
EMPTY = "SELECT id FROM t WHERE id > 100"


def draw(db, replies: list[str], n: int, question: str = QUESTION, **kwargs):
    llm = ScriptedLLM(replies)
    timings: dict[str, float] = {}
    pool, undrawn = draw_candidates(llm, Executor(db), build_messages("# Table: t", question, dialect="sqlite"),
                                    question=question, n=n, temperature=0.7, max_tokens=50, seed=0,
                                    timings=timings, **kwargs)
    return pool, undrawn, llm, timings


def calls(llm: ScriptedLLM) -> list[tuple[int, float, int | None]]:
    return [(r["n"], r["temperature"], r["seed"]) for r in llm.requests]


def test_agreeing_greedy_and_first_sample_skip_the_third(db) -> None:
    pool, undrawn, llm, timings = draw(db, [ONE, ONE_AGAIN, "never asked"], n=3)
    assert [c.origin for c in pool] == ["greedy", "sample-1"] and undrawn == 1
    assert calls(llm) == [(1, 0.0, 0), (1, 0.7, 0)] and llm.remaining == 1
    assert {"generate", "execute", "generate.greedy", "generate.samples"} <= set(timings)
    selection = vote_by_result(pool, "sqlite", undrawn=undrawn)
    assert selection.chosen.rows == ((3,),)
    assert selection.confidence == pytest.approx(2 / 3)  # the skipped one counts against the winner


def test_disagreement_draws_the_third_in_its_own_call_with_a_shifted_seed(db) -> None:
    pool, undrawn, llm, _ = draw(db, [ONE, TWO, ONE_AGAIN], n=3)
    assert [c.origin for c in pool] == ["greedy", "sample-1", "sample-2"] and undrawn == 0
    assert calls(llm) == [(1, 0.0, 0), (1, 0.7, 0), (1, 0.7, 1)]
    assert vote_by_result(pool, "sqlite").chosen.rows == ((3,),)


def test_a_failed_greedy_candidate_gets_both_samples_in_one_call(db) -> None:
    pool, undrawn, llm, _ = draw(db, [BROKEN, ONE, ONE], n=3)
    assert calls(llm) == [(1, 0.0, 0), (2, 0.7, 0)] and undrawn == 0 and len(pool) == 3


def test_more_candidates_stop_at_the_first_decided_vote(db) -> None:
    # n=5: after the greedy one, 2 samples could decide (3 agreeing beat 2 to come); they do.
    pool, undrawn, llm, _ = draw(db, [ONE, ONE, ONE_AGAIN], n=5)
    assert calls(llm) == [(1, 0.0, 0), (2, 0.7, 0)] and undrawn == 2 and len(pool) == 3
    # they do not: 2 against 1 with 2 to come is open; one more sample (3-1 with 1 to come) decides it
    pool, undrawn, llm, _ = draw(db, [ONE, ONE, TWO, ONE_AGAIN], n=5)
    assert calls(llm) == [(1, 0.0, 0), (2, 0.7, 0), (1, 0.7, 2)] and undrawn == 1 and len(pool) == 4
    # a split vote draws everything
    pool, undrawn, llm, _ = draw(db, [ONE, TWO, THREE, ONE, TWO], n=5)
    assert undrawn == 0 and len(pool) == 5 and llm.remaining == 0


def test_no_early_stop_draws_every_sample_in_one_call(db) -> None:
    pool, undrawn, llm, _ = draw(db, [ONE, ONE, ONE], n=3, early_stop=False)
    assert calls(llm) == [(1, 0.0, 0), (2, 0.7, 0)] and undrawn == 0 and len(pool) == 3


def test_a_unanimity_threshold_never_stops_early(db) -> None:
    """With abstain_below=1.0 the skipped candidate could still bring the confidence below it."""
    _, undrawn, llm, _ = draw(db, [ONE, ONE, ONE], n=3, abstain_below=1.0)
    assert undrawn == 0 and llm.remaining == 0
    _, undrawn, _, _ = draw(db, [ONE, ONE, "x"], n=3, abstain_below=0.6666)
    assert undrawn == 1


def test_a_suspicious_agreement_keeps_drawing(db) -> None:
    """Two empty results for a question that asks for data: the third sample may find the rows."""
    pool, undrawn, _, _ = draw(db, [EMPTY, EMPTY, ONE], n=3, question="Which ids are above 100?")
    assert undrawn == 0 and len(pool) == 3
    # a yes/no question may rightly have no rows
    _, undrawn, _, _ = draw(db, [EMPTY, EMPTY, ONE], n=3, question="Is there an id above 100?")
    assert undrawn == 1


def test_one_candidate_is_just_the_greedy_call(db) -> None:
    pool, undrawn, llm, _ = draw(db, [ONE], n=1)
    assert calls(llm) == [(1, 0.0, 0)] and undrawn == 0 and [c.origin for c in pool] == ["greedy"]
    with pytest.raises(ValueError):
        draw(db, [], n=0)


def ran(sql: str, rows: tuple) -> Candidate:
    return Candidate(sql, "sample-1", ("x",), rows)


@pytest.mark.parametrize(("pool", "remaining", "expected"), [
    ([], 2, 2),  # nothing ran: two more agreeing would decide (2 > 0)
    ([ran("SELECT 1", ((1,),))], 2, 1),  # 2 against 0 with 1 to come
    ([ran("SELECT 1", ((1,),))], 4, 2),  # 3 against 0 with 2 to come
    ([ran("SELECT 1", ((1,),)), ran("SELECT 2", ((2,),))], 3, 2),  # 3 against 1 with 1 to come
    ([ran("SELECT 1", ((1,),)), ran("SELECT 2", ((2,),))], 1, 1),  # never more than remain
])
def test_next_batch_is_the_fewest_samples_that_could_decide(pool, remaining, expected) -> None:
    assert next_batch(pool, "sqlite", remaining) == expected


def test_engine_reports_undrawn_candidates_and_abstains_as_with_all_drawn(db, tmp_path: Path) -> None:
    engine = Engine(ScriptedLLM([ONE, ONE_AGAIN]), AskOptions(values=False), cache_dir=tmp_path / "c")
    answer = engine.ask(db, QUESTION)
    assert answer.undrawn == 1 and answer.to_dict()["undrawn"] == 1
    assert answer.rows == ((3,),) and answer.confidence == pytest.approx(2 / 3) and not answer.abstained
    # the full vote could have been 2 of 3: a threshold above that is never met by stopping early
    engine = Engine(ScriptedLLM([ONE, ONE_AGAIN, TWO]), AskOptions(values=False, abstain_below=0.9),
                    cache_dir=tmp_path / "c")
    answer = engine.ask(db, QUESTION)
    assert answer.undrawn == 0 and answer.abstained and "low confidence" in answer.reason
    engine = Engine(ScriptedLLM([ONE, ONE_AGAIN, ONE]), AskOptions(values=False, early_stop=False),
                    cache_dir=tmp_path / "c")
    answer = engine.ask(db, QUESTION)
    assert answer.undrawn == 0 and len(answer.candidates) == 3 and answer.confidence == 1.0
