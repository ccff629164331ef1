"""Candidate generation (greedy and numbered samples), SQL normalisation, guarded execution."""

from __future__ import annotations

import sqlwright.pipeline as pipeline
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline.execute import NO_SQL_ERROR, Executor, run_sql
from sqlwright.pipeline.generate import Draft, Usage, greedy_draft, normalize_sql, sample_drafts
from sqlwright.pipeline.prompt import build_messages
from sqlwright.pipeline.repair import expects_rows, observation

SLOW_SQL = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
            "SELECT count(*) FROM c")


def test_public_exports() -> None:
    assert set(pipeline.__all__) == {"Engine", "AskOptions", "Answer", "Candidate", "Turn"}
    import sqlwright

    assert sqlwright.Engine is pipeline.Engine and sqlwright.AskOptions is pipeline.AskOptions


def test_normalize_sql_ignores_case_whitespace_comments_and_semicolons() -> None:
    a = normalize_sql("select  v\nfrom t -- the values\n;", "sqlite")
    assert a == normalize_sql("SELECT v FROM t", "sqlite")
    assert a != normalize_sql("SELECT id FROM t", "sqlite")
    assert normalize_sql("SELEC garbage ((  ;", "sqlite") == "SELEC garbage (("


def test_greedy_draft_and_samples_in_one_call() -> None:
    llm = ScriptedLLM(["```sql\nSELECT 1\n```", "SELECT 2", "-- UNANSWERABLE: no", "nothing"])
    usage = Usage()
    timings: dict[str, float] = {}
    messages = build_messages("# Table: t", "q?", dialect="sqlite")
    greedy = greedy_draft(llm, messages, max_tokens=100, seed=3, usage=usage, timings=timings)
    samples = sample_drafts(llm, messages, first=1, count=3, temperature=0.5, max_tokens=100, seed=3,
                            usage=usage, timings=timings)
    assert [(r["n"], r["temperature"], r["max_tokens"], r["seed"]) for r in llm.requests] == [
        (1, 0.0, 100, 3), (3, 0.5, 100, 3)]
    drafts = [greedy, *samples]
    assert [d.origin for d in drafts] == ["greedy", "sample-1", "sample-2", "sample-3"]
    assert [d.sql for d in drafts] == ["SELECT 1", "SELECT 2", None, None]
    assert drafts[2].unanswerable == "no" and drafts[3].unanswerable is None
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert set(timings) == {"generate.greedy", "generate.samples"}
    cot = ScriptedLLM(["SELECT 1", "SELECT 1"])
    assert greedy_draft(cot, messages, max_tokens=10, cot=True).origin == "cot-greedy"
    assert [d.origin for d in sample_drafts(cot, messages, first=1, count=1, temperature=0.5, max_tokens=10,
                                            cot=True)] == ["cot-1"]


def test_later_sample_calls_get_a_shifted_seed() -> None:
    """Samples drawn in a second call must not repeat the first call's (backends seed sample i of a call
    from the call's seed), so the call that starts at sample `first` uses seed + first - 1."""
    llm = ScriptedLLM(["SELECT 1", "SELECT 2", "SELECT 3"])
    messages = build_messages("# Table: t", "q?", dialect="sqlite")
    first = sample_drafts(llm, messages, first=1, count=1, temperature=0.7, max_tokens=10, seed=5)
    later = sample_drafts(llm, messages, first=2, count=2, temperature=0.7, max_tokens=10, seed=5)
    assert [r["seed"] for r in llm.requests] == [5, 6]
    assert [d.origin for d in first + later] == ["sample-1", "sample-2", "sample-3"]
    assert sample_drafts(llm, messages, first=4, count=0, temperature=0.7, max_tokens=10) == []
    unseeded = sample_drafts(ScriptedLLM(["SELECT 1"]), messages, first=3, count=1, temperature=0.7, max_tokens=10)
    assert unseeded[0].origin == "sample-3"


def test_run_sql_outcomes(db) -> None:
    ok = run_sql(db, "SELECT v FROM t ORDER BY id", max_rows=2)
    assert ok.error is None and ok.rows == (("a",), ("b",)) and ok.truncated and ok.columns == ("v",)
    refused = run_sql(db, "DROP TABLE t")
    assert refused.rows is None and refused.error.startswith("Refused")
    failed = run_sql(db, "SELECT nope FROM t")
    assert failed.rows is None and "no such column" in failed.error
    slow = run_sql(db, SLOW_SQL, timeout=0.3)
    assert slow.rows is None and slow.error.startswith("Timeout")
    assert slow.seconds < 5


def test_executor_runs_each_distinct_statement_once(db) -> None:
    executor = Executor(db)
    cands = executor.candidates([Draft("greedy", "SELECT v FROM t", ""), Draft("sample-1", "select v from t;", ""),
                                 Draft("sample-2", None, "no sql here"),
                                 Draft("sample-3", None, "-- UNANSWERABLE: x", unanswerable="x")])
    assert cands[0].rows == cands[1].rows == (("a",), ("b",), (None,))
    assert cands[2].error == NO_SQL_ERROR and not cands[2].ok
    assert cands[3].unanswerable == "x" and not cands[3].ok and "cannot be answered" in cands[3].error
    assert len(executor._outcomes) == 1


def test_observations_name_what_went_wrong(db) -> None:
    executor = Executor(db, timeout=0.3)
    slow, empty, nulls, fine, none_ = executor.candidates([
        Draft("a", SLOW_SQL, ""), Draft("b", "SELECT v FROM t WHERE id > 9", ""),
        Draft("c", "SELECT v FROM t WHERE id = 3", ""), Draft("d", "SELECT v FROM t", ""), Draft("e", None, "hm"),
    ])
    assert "ran too long" in observation(slow, "List values.")
    assert "no rows" in observation(empty, "List values.")
    assert observation(empty, "Are there values above 9?") is None
    assert "only NULL" in observation(nulls, "List values.")
    assert observation(fine, "List values.") is None
    assert "did not contain a SQL query" in observation(none_, "List values.")
    assert not expects_rows("Does any singer come from Chad?") and expects_rows("Which singers are from Chad?")
