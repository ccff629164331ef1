"""Engine.ask end to end with a scripted LLM over real SQLite databases (the pipeline's logic)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sqlwright.db import Database, Result, open_database
from sqlwright.errors import ConfigError, InvalidQuestion, UserError
from sqlwright.llm.base import Completion
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import Answer, AskOptions, Candidate, Engine

STAGES = {"schema", "values", "examples", "linking", "generate", "execute", "repair", "select", "total"}


def fenced(sql: str) -> str:
    return f"Here you go:\n```sql\n{sql}\n```"


class CountingDatabase(Database):
    """A real database behind a counter of `execute` and `schema` calls."""

    def __init__(self, inner: Database) -> None:
        self.inner = inner
        self.url = inner.url
        self.dialect = inner.dialect
        self.executed: list[str] = []
        self.schema_calls = 0

    def schema(self, *, samples: int = 3, refresh: bool = False):
        self.schema_calls += 1
        return self.inner.schema(samples=samples, refresh=refresh)

    def execute(self, sql: str, **kwargs) -> Result:
        self.executed.append(sql)
        return self.inner.execute(sql, **kwargs)

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture()
def concert(spider_db):
    path = spider_db("concert_singer")
    with open_database(f"sqlite:///{path}") as db:
        yield CountingDatabase(db)


@pytest.fixture()
def engine_for(tmp_path: Path):
    """A function: (replies, **options) -> (Engine, ScriptedLLM), value hints off unless asked."""

    def make(replies, **options) -> tuple[Engine, ScriptedLLM]:
        llm = ScriptedLLM(replies)
        options.setdefault("values", False)
        return Engine(llm, AskOptions(**options), cache_dir=tmp_path / "cache"), llm

    return make


def gold(db: CountingDatabase, sql: str) -> set:
    return set(db.inner.execute(sql).rows)


# --- the greedy path -------------------------------------------------------------------------------
def test_greedy_path_end_to_end(concert, tmp_path: Path) -> None:
    llm = ScriptedLLM([fenced("SELECT name FROM singer WHERE age > 40")])
    engine = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path)
    answer = engine.ask(concert, "  Which singers are older than 40?  ")
    assert isinstance(answer, Answer)
    assert answer.question == "Which singers are older than 40?"
    assert answer.sql == "SELECT name FROM singer WHERE age > 40"
    assert set(answer.rows) == gold(concert, "SELECT Name FROM singer WHERE Age > 40") and answer.rows
    assert answer.columns == ("Name",)
    assert not answer.abstained and answer.confidence == 1.0
    assert [c.origin for c in answer.candidates] == ["greedy"]
    assert isinstance(answer.candidates[0], Candidate) and answer.candidates[0].group == 0
    assert len(llm.requests) == 1
    assert llm.requests[0]["n"] == 1 and llm.requests[0]["temperature"] == 0.0
    assert set(answer.timings) == STAGES | {"generate.greedy"}
    assert answer.timings["total"] >= answer.timings["generate"] >= answer.timings["generate.greedy"]
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0
    assert answer.to_dict()["candidates"][0]["row_count"] == len(answer.rows)


def test_sql_nested_deeper_than_sqlglot_parses_is_a_refused_candidate(concert, engine_for) -> None:
    """Every stage that parses a candidate (normalising, the guard, the vote, the repair's hints) takes
    sqlglot's RecursionError as "cannot parse", never as a crash of the question."""
    deep = "SELECT " + "(" * 400 + "1" + ")" * 400 + " FROM singer"
    engine, llm = engine_for([fenced(deep)] * 3 + [fenced(deep)] * 2, candidates=3, repair_rounds=1)
    answer = engine.ask(concert, "How many singers are there?")
    assert answer.abstained and answer.candidates
    assert all("too deeply nested" in (c.error or "") for c in answer.candidates)


def test_greedy_options_are_the_baseline() -> None:
    opts = AskOptions.greedy()
    assert (opts.candidates, opts.repair_rounds, opts.linking) == (1, 0, False)
    assert AskOptions.greedy(cot=True).cot is True
    with pytest.raises(ValueError):
        AskOptions(candidats=3)  # extra keys are forbidden
    with pytest.raises(ValueError):
        AskOptions().candidates = 2  # frozen


# --- candidates and the vote ---------------------------------------------------------------------
def test_samples_come_from_one_call_and_the_majority_result_wins(concert, engine_for) -> None:
    engine, llm = engine_for([
        fenced("SELECT name FROM singer WHERE age < 30"),  # greedy: minority
        fenced("SELECT name FROM singer ORDER BY age LIMIT 3"),
        "SELECT s.name FROM singer s WHERE s.age <= 32",
        fenced("SELECT name FROM singer WHERE age <= 32"),
    ], candidates=4, temperature=0.8, seed=7, early_stop=False)
    answer = engine.ask(concert, "Name the singers aged 32 or younger.")
    assert [r["n"] for r in llm.requests] == [1, 3]
    assert [r["temperature"] for r in llm.requests] == [0.0, 0.8]
    assert llm.requests[1]["seed"] == 7
    assert [c.origin for c in answer.candidates] == ["greedy", "sample-1", "sample-2", "sample-3"]
    assert set(answer.rows) == gold(concert, "SELECT Name FROM singer WHERE Age <= 32")
    assert answer.sql == "SELECT name FROM singer WHERE age <= 32"  # the simpler of the two winners
    assert answer.confidence == pytest.approx(0.5)
    # two calls, one prompt each: the samples' shared prompt counts once
    prompt = sum(llm.count_tokens(m["content"]) for m in llm.requests[0]["messages"])
    assert answer.prompt_tokens == 2 * prompt


def test_duplicate_sql_runs_once_but_votes_twice(concert, engine_for) -> None:
    engine, _ = engine_for([
        fenced("SELECT count(*) FROM singer"),
        fenced("select   COUNT(*)  from singer;"),
        fenced("SELECT count(*) FROM stadium"),
    ], candidates=3, repair_rounds=0, early_stop=False)
    answer = engine.ask(concert, "How many singers are there?")
    assert len(concert.executed) == 2
    assert answer.rows == ((6,),) and answer.confidence == pytest.approx(2 / 3)
    assert [c.group for c in answer.candidates] == [0, 0, 1]


def test_tie_broken_by_logprob_through_the_engine(concert, engine_for) -> None:
    engine, _ = engine_for([
        Completion(fenced("SELECT count(*) FROM stadium"), 10, 5, mean_logprob=-0.9),
        Completion(fenced("SELECT count(*) FROM singer"), 10, 5, mean_logprob=-0.05),
    ], candidates=2, repair_rounds=0)
    answer = engine.ask(concert, "How many singers are there?")
    assert answer.sql == "SELECT count(*) FROM singer" and answer.confidence == 0.5


# --- guard, repair ----------------------------------------------------------------------------------
def test_refused_sql_never_runs_and_becomes_a_failed_candidate(spider_db, tmp_path: Path) -> None:
    path = spider_db("concert_singer")
    before = sqlite3.connect(path).execute("SELECT count(*) FROM singer").fetchone()
    with open_database(f"sqlite:///{path}") as inner:
        db = CountingDatabase(inner)
        llm = ScriptedLLM([fenced("DELETE FROM singer")])
        answer = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(db, "Remove all singers.")
        assert answer.abstained and answer.sql is None
        (cand,) = answer.candidates
        assert cand.sql == "DELETE FROM singer" and cand.rows is None
        assert cand.error.startswith("Refused")
        assert "no candidate query ran successfully" in answer.reason
    assert sqlite3.connect(path).execute("SELECT count(*) FROM singer").fetchone() == before


def test_each_candidate_carries_its_calls_tokens(concert, engine_for) -> None:
    """Per-candidate token counts (kept in the trace) add up to the answer's usage: a call's prompt once,
    every completion's tokens."""
    engine, llm = engine_for([
        fenced("SELECT nme FROM singer"),
        fenced("SELECT name FROM singer"),
    ], candidates=1, repair_rounds=1, repair_when="any-failure")
    answer = engine.ask(concert, "List the singers' names.")
    trace = answer.to_dict()["candidates"]
    assert [c["origin"] for c in trace] == ["greedy", "repair-of-0"]
    assert all(c["prompt_tokens"] > 0 and c["completion_tokens"] > 0 for c in trace)
    assert trace[1]["prompt_tokens"] > trace[0]["prompt_tokens"]  # the repair prompt holds the first exchange
    assert sum(c["prompt_tokens"] for c in trace) == answer.prompt_tokens
    assert sum(c["completion_tokens"] for c in trace) == answer.completion_tokens
    assert trace[0]["completion_tokens"] == llm.count_tokens(fenced("SELECT nme FROM singer"))


def test_repair_fixes_a_failing_sql_and_joins_the_pool(concert, engine_for) -> None:
    engine, llm = engine_for([
        fenced("SELECT nme FROM singer WHERE country = 'France'"),
        fenced("SELECT name FROM singer WHERE country = 'France'"),
    ], candidates=1, repair_rounds=1)
    answer = engine.ask(concert, "Which singers are from France?")
    assert [c.origin for c in answer.candidates] == ["greedy", "repair-of-0"]
    assert "no such column" in answer.candidates[0].error
    assert set(answer.rows) == gold(concert, "SELECT Name FROM singer WHERE Country = 'France'") and answer.rows
    assert answer.sql == "SELECT name FROM singer WHERE country = 'France'"
    assert answer.confidence == 1.0  # the failed original is replaced by its repair in the vote
    repair_request = llm.requests[1]["messages"]
    assert repair_request[:2] == llm.requests[0]["messages"]
    assert repair_request[2]["content"] == "```sql\nSELECT nme FROM singer WHERE country = 'France'\n```"
    assert "no such column" in repair_request[3]["content"]
    assert llm.requests[1]["temperature"] == 0.0


def test_the_rescue_locates_the_unknown_column_and_stops_once_a_repair_runs(concert, engine_for) -> None:
    # concert_singer: stadium has Capacity, concert has none; the model reads it from the wrong table.
    engine, llm = engine_for([
        fenced("SELECT concert_Name FROM concert ORDER BY Capacity DESC LIMIT 1"),
        fenced("SELECT T1.concert_Name FROM concert AS T1 ORDER BY T1.Capacity DESC LIMIT 1"),
        fenced("SELECT concert_Name FROM concert ORDER BY Capacity DESC LIMIT 1"),
        fenced("SELECT T1.concert_Name FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = T2.Stadium_ID "
               "ORDER BY T2.Capacity DESC LIMIT 1"),
        "never asked: the first repair ran",
    ], candidates=3, repair_rounds=1, max_repairs=2)
    answer = engine.ask(concert, "Which concert was held in the largest stadium?")
    assert [c.origin for c in answer.candidates] == ["greedy", "sample-1", "sample-2", "repair-of-0", "repair-of-2"]
    # greedy, both samples in one call (greedy failed: no early stop possible), ONE repair
    assert [r["n"] for r in llm.requests] == [1, 2, 1] and llm.remaining == 1
    follow_up = llm.requests[2]["messages"][3]["content"]
    assert "no such column: Capacity" in follow_up
    assert "Capacity is a column of stadium (stadium.Capacity)" in follow_up
    assert "return it unchanged" not in follow_up  # a failed query may not come back as it was
    assert answer.rows and not answer.abstained and "JOIN stadium" in answer.sql


def test_a_repair_without_sql_keeps_the_other_candidates_answer(concert, engine_for) -> None:
    # Seen with the 0.5B model: asked to fix a failing query, it echoes the error as "unanswerable".
    # That must not turn into an abstention while another candidate ran fine.
    engine, _ = engine_for([
        fenced("SELECT count(DISTINCT kind) FROM singer"),
        fenced("SELECT count(DISTINCT Country) FROM singer"),
        "-- UNANSWERABLE: The query failed with this database error: no such column: kind",
    ], candidates=2, repair_rounds=1, repair_when="any-failure")
    answer = engine.ask(concert, "How many different countries do singers come from?")
    assert not answer.abstained
    assert set(answer.rows) == gold(concert, "SELECT count(DISTINCT Country) FROM singer")
    assert [c.origin for c in answer.candidates] == ["greedy", "sample-1"]


def test_empty_result_is_suspicious_and_repaired(concert, engine_for) -> None:
    engine, llm = engine_for([
        fenced("SELECT name FROM singer WHERE country = 'france'"),  # wrong case: no rows
        fenced("SELECT name FROM singer WHERE country = 'France'"),
    ], candidates=1, repair_rounds=1, repair_when="any-failure")
    answer = engine.ask(concert, "Which singers are from France?")
    assert answer.candidates[0].rows == ()
    assert "returned no rows" in llm.requests[1]["messages"][3]["content"]
    assert answer.rows and answer.candidates[1].origin == "repair-of-0"


def test_yes_no_question_with_empty_result_is_not_repaired(concert, engine_for) -> None:
    engine, llm = engine_for([fenced("SELECT name FROM singer WHERE age > 100")],
                             candidates=1, repair_rounds=1, repair_when="any-failure")
    answer = engine.ask(concert, "Is there a singer older than 100?")
    assert len(llm.requests) == 1 and answer.rows == () and not answer.abstained


def test_second_round_repairs_a_failed_repair(concert, engine_for) -> None:
    engine, llm = engine_for([
        fenced("SELECT nme FROM singer"),
        fenced("SELECT nam FROM singer"),
        fenced("SELECT name FROM singer"),
    ], candidates=1, repair_rounds=2)
    answer = engine.ask(concert, "List the singers' names.")
    assert [c.origin for c in answer.candidates] == ["greedy", "repair-of-0", "repair-of-1"]
    assert len(answer.rows) == 6 and llm.remaining == 0


def test_repair_is_skipped_when_it_cannot_change_the_vote(concert, engine_for) -> None:
    engine, llm = engine_for([
        fenced("SELECT count(*) FROM singer"),
        fenced("SELECT count(*) FROM singer"),
        fenced("SELECT count(Singer_ID) FROM singer"),
        fenced("SELECT count(*) FROM singers"),
    ], candidates=4, repair_rounds=1, repair_when="any-failure")
    answer = engine.ask(concert, "How many singers are there?")
    assert len(llm.requests) == 2  # generation only
    assert answer.confidence == 0.75 and answer.rows == ((6,),)


def test_by_default_only_a_question_without_any_working_candidate_is_repaired(concert, engine_for) -> None:
    engine, llm = engine_for([
        fenced("SELECT count(*) FROM singers"),  # fails, but a sample runs: no repair
        fenced("SELECT count(*) FROM singer"),
        fenced("SELECT name FROM singer WHERE country = 'france'"),  # empty: not repaired either
    ], candidates=3, repair_rounds=1)
    answer = engine.ask(concert, "How many singers are there?")
    assert len(llm.requests) == 2 and answer.rows == ((6,),)
    assert [c.origin for c in answer.candidates] == ["greedy", "sample-1", "sample-2"]


def test_repairs_are_distinct_and_capped(concert, engine_for) -> None:
    engine, llm = engine_for([
        fenced("SELECT nme FROM singer"),
        fenced("SELECT nme FROM singer"),  # duplicate of the greedy failure
        fenced("SELECT agee FROM singer"),
        fenced("SELECT name FROM singer"),  # the one repair allowed
    ], candidates=3, repair_rounds=2, max_repairs=1)
    answer = engine.ask(concert, "List the singers' names.")
    assert len(llm.requests) == 3 and llm.remaining == 0
    origins = [c.origin for c in answer.candidates]
    # one model call, credited to both duplicates of the failing SQL
    assert origins == ["greedy", "sample-1", "sample-2", "repair-of-0", "repair-of-1"]
    assert answer.confidence == pytest.approx(2 / 3) and len(answer.rows) == 6


# --- abstention ---------------------------------------------------------------------------------
def test_abstains_when_the_greedy_reply_says_unanswerable(concert, engine_for) -> None:
    engine, _ = engine_for([
        "-- UNANSWERABLE: the database has no salary data",
        fenced("SELECT name FROM singer"),
    ], candidates=2, repair_rounds=1)
    answer = engine.ask(concert, "What is the average salary of singers?")
    assert answer.abstained and answer.sql is None and answer.rows == ()
    assert "cannot be answered" in answer.reason and "salary" in answer.reason
    assert answer.candidates[0].unanswerable == "the database has no salary data"


def test_abstains_when_most_replies_say_unanswerable(concert, engine_for) -> None:
    engine, _ = engine_for([
        fenced("SELECT avg(age) FROM singer"),
        "-- UNANSWERABLE: no salary column",
        "```sql\n-- UNANSWERABLE: salaries are not stored\n```",
        "-- UNANSWERABLE: no salary",
    ], candidates=4, repair_rounds=0)
    answer = engine.ask(concert, "What is the average salary of singers?")
    assert answer.abstained and "cannot be answered" in answer.reason


def test_a_minority_saying_unanswerable_does_not_abstain(concert, engine_for) -> None:
    engine, _ = engine_for([
        fenced("SELECT avg(age) FROM singer"),
        "-- UNANSWERABLE: no ages",
        fenced("SELECT avg(age) FROM singer"),
    ], candidates=3, repair_rounds=0)
    answer = engine.ask(concert, "What is the average age of singers?")
    assert not answer.abstained and answer.confidence == pytest.approx(2 / 3)


def test_abstains_when_nothing_executes(concert, engine_for) -> None:
    engine, _ = engine_for([fenced("SELECT nme FROM singer"), fenced("SELECT nam FROM singer")],
                           candidates=1, repair_rounds=1)
    answer = engine.ask(concert, "List the singers' names.")
    assert answer.abstained and answer.reason.startswith("no candidate query ran successfully")
    assert "no such column" in answer.reason


def test_abstains_below_the_confidence_threshold(concert, engine_for) -> None:
    replies = [fenced("SELECT count(*) FROM singer"), fenced("SELECT count(*) FROM singer_in_concert"),
               fenced("SELECT count(*) FROM stadium")]
    engine, _ = engine_for(list(replies), candidates=3, repair_rounds=0, abstain_below=0.5)
    answer = engine.ask(concert, "How many singers are there?")
    assert answer.abstained and answer.reason.startswith("low confidence")
    assert answer.confidence == pytest.approx(1 / 3)
    engine, _ = engine_for(list(replies), candidates=3, repair_rounds=0, abstain_below=0.3)
    assert not engine.ask(concert, "How many singers are there?").abstained


# --- prompt contents: schema, evidence, value hints, linking -------------------------------------
def test_prompt_holds_schema_evidence_value_hints_and_dialect(concert, engine_for) -> None:
    engine, llm = engine_for([fenced("SELECT name FROM singer WHERE country = 'Netherlands'")],
                             candidates=1, repair_rounds=0, values=True)
    engine.ask(concert, "Which singers come from the netherlands?", evidence="Country holds full names.")
    system, user = llm.requests[0]["messages"]
    assert "SQLite" in system["content"] and "SQLite" in user["content"]
    text = user["content"]
    for table in ("singer", "concert", "stadium", "singer_in_concert"):
        assert f"# Table: {table}" in text
    assert "Country holds full names." in text
    hint_at = text.index("Values in the database")
    assert "'Netherlands'" in text[hint_at:]
    assert text.index("# Table: singer") < hint_at < text.index("Country holds full names.")
    assert text.rstrip().endswith("Which singers come from the netherlands?")


def test_cot_mode_reaches_the_model_and_its_reply_is_parsed(concert, engine_for) -> None:
    reply = ("The question asks for a count of singers, so I count rows of singer.\n"
             "```sql\nSELECT count(*) FROM singer\n```")
    engine, llm = engine_for([reply], candidates=1, repair_rounds=0, cot=True)
    answer = engine.ask(concert, "How many singers are there?")
    assert "step by step" in llm.requests[0]["messages"][0]["content"]
    assert llm.requests[0]["max_tokens"] > AskOptions().reply_tokens()
    assert answer.rows == ((6,),) and answer.candidates[0].origin == "cot-greedy"
    assert answer.candidates[0].reply == reply


def _wide_database(path: Path, tables: int = 40) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE employee (id INTEGER PRIMARY KEY, full_name TEXT, salary REAL)")
    con.execute("INSERT INTO employee VALUES (1, 'Ada Lovelace', 100.0), (2, 'Alan Turing', 90.0)")
    for i in range(tables):
        cols = ", ".join(f"metric_{i}_{j} REAL" for j in range(12))
        con.execute(f"CREATE TABLE telemetry_{i} (id INTEGER PRIMARY KEY, {cols})")
    con.commit()
    con.close()


@pytest.mark.slow  # linking loads the sentence-embedding model
def test_linking_prunes_a_schema_over_budget(tmp_path: Path, engine_for) -> None:
    path = tmp_path / "wide.sqlite"
    _wide_database(path)
    with open_database(f"sqlite:///{path}") as db:
        engine, llm = engine_for([fenced("SELECT max(salary) FROM employee")] * 2,
                                 candidates=1, repair_rounds=0, schema_budget_tokens=400)
        answer = engine.ask(db, "What is the highest employee salary?")
        pruned = llm.requests[0]["messages"][1]["content"]
        assert "# Table: employee" in pruned and pruned.count("# Table:") < 41
        assert answer.rows == ((100,),)
        engine.ask(db, "What is the highest employee salary?", linking=False)
        assert llm.requests[1]["messages"][1]["content"].count("# Table:") == 41


def test_small_schemas_are_not_linked(concert, engine_for) -> None:
    engine, llm = engine_for([fenced("SELECT 1")], candidates=1, repair_rounds=0, schema_budget_tokens=100_000)
    engine.ask(concert, "How many singers?")
    assert llm.requests[0]["messages"][1]["content"].count("# Table:") == 4


# --- errors, caching ----------------------------------------------------------------------------
@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_user_error(concert, engine_for, question: str) -> None:
    engine, llm = engine_for([])
    with pytest.raises(InvalidQuestion) as info:
        engine.ask(concert, question)
    assert isinstance(info.value, UserError) and not llm.requests


def test_bad_override_is_a_config_error(concert, engine_for) -> None:
    engine, _ = engine_for([])
    with pytest.raises(ConfigError, match="candidates"):
        engine.ask(concert, "How many singers?", candidates=0)
    with pytest.raises(ConfigError):
        engine.ask(concert, "How many singers?", not_an_option=1)


def test_schema_is_cached_per_database_until_it_changes(tmp_path: Path, engine_for) -> None:
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT)")
    con.commit()
    engine, llm = engine_for([fenced("SELECT count(*) FROM item")] * 3, candidates=1, repair_rounds=0)
    with open_database(f"sqlite:///{path}") as inner:
        db = CountingDatabase(inner)
        engine.ask(db, "How many items?")
        engine.ask(db, "How many items are there?")
        assert db.schema_calls == 1
        con.execute("CREATE TABLE supplier (id INTEGER PRIMARY KEY, name TEXT)")
        con.commit()
        engine.ask(db, "How many items?")
        assert db.schema_calls == 2
        assert "# Table: supplier" in llm.requests[2]["messages"][1]["content"]
        assert "# Table: supplier" not in llm.requests[0]["messages"][1]["content"]
    con.close()


def test_limits_reach_the_database(concert, engine_for) -> None:
    engine, _ = engine_for([fenced("SELECT name FROM singer")], candidates=1, repair_rounds=0, max_rows=2)
    answer = engine.ask(concert, "List the singers.")
    assert len(answer.rows) == 2 and answer.truncated
