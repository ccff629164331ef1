"""Stage 3 (verification through the ask pipeline) and stage 4 (chain of thought kept on agreement)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_helpers import make_db

from sqlwright.db import open_database
from sqlwright.errors import ModelServerUnreachable
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine
from sqlwright.synth.cot import synthesize_cot
from sqlwright.synth.sql import database_context
from sqlwright.synth.verify import UNVERIFIED, verify_pair

GROUPS = "SELECT country, count(*) FROM singer GROUP BY country"
ORDERED = "SELECT name FROM singer WHERE age > 30 ORDER BY age DESC"


def sql_block(sql: str) -> str:
    return f"```sql\n{sql}\n```"


@pytest.fixture()
def db(tmp_path: Path):
    with open_database(f"sqlite:///{make_db(tmp_path / 'c.sqlite')}") as database:
        yield database


def engine(*replies: str, tmp_path: Path) -> tuple[Engine, ScriptedLLM]:
    llm = ScriptedLLM(replies)
    return Engine(llm, AskOptions.greedy(), cache_dir=tmp_path), llm


def test_the_same_result_in_another_column_order_verifies(db, tmp_path: Path) -> None:
    eng, llm = engine(sql_block("SELECT count(*), country FROM singer GROUP BY 2"), tmp_path=tmp_path)
    v = verify_pair(eng, db, "How many singers per country?", GROUPS)
    assert v.verified and v.reason is None
    assert v.answer_sql == "SELECT count(*), country FROM singer GROUP BY 2"
    assert llm.requests[0]["messages"][-1]["content"].endswith("How many singers per country?")
    assert v.prompt_tokens > 0


def test_a_different_result_is_kept_unverified_with_the_reason(db, tmp_path: Path) -> None:
    eng, _ = engine(sql_block("SELECT country, count(*) FROM singer WHERE age > 30 GROUP BY country"),
                    tmp_path=tmp_path)
    v = verify_pair(eng, db, "How many singers per country?", GROUPS)
    assert not v.verified and v.reason == "different_result" and v.reason in UNVERIFIED
    assert "row(s)" in v.detail


def test_order_matters_when_the_synthesized_query_orders(db, tmp_path: Path) -> None:
    reversed_order = "SELECT name FROM singer WHERE age > 30 ORDER BY age ASC"
    eng, _ = engine(sql_block(reversed_order), sql_block(reversed_order), tmp_path=tmp_path)
    assert verify_pair(eng, db, "Singers over 30, oldest first?", ORDERED).reason == "different_result"
    # the same rows in another order do verify when the synthesized query does not order them
    assert verify_pair(eng, db, "Singers over 30?", "SELECT name FROM singer WHERE age > 30").verified


def test_an_abstention_is_unverified(db, tmp_path: Path) -> None:
    eng, _ = engine("-- UNANSWERABLE: the schema has no weather", tmp_path=tmp_path)
    v = verify_pair(eng, db, "How many singers per country?", GROUPS)
    assert (v.verified, v.reason) == (False, "abstained")


def test_a_synthesized_query_that_no_longer_runs_is_an_error(db, tmp_path: Path) -> None:
    eng, llm = engine(tmp_path=tmp_path)
    v = verify_pair(eng, db, "What is nope?", "SELECT nope FROM singer")
    assert (v.verified, v.reason) == (False, "error") and "no longer runs" in v.detail
    assert llm.requests == []  # the model is not asked


def test_a_pipeline_error_is_unverified_but_an_unreachable_model_stops(db, tmp_path: Path) -> None:
    class Failing(ScriptedLLM):
        def __init__(self, exc: Exception) -> None:
            super().__init__()
            self.exc = exc

        def complete(self, messages, **kwargs):
            raise self.exc

    too_long = verify_pair(Engine(ScriptedLLM(), AskOptions.greedy(), cache_dir=tmp_path, max_question_chars=10),
                           db, "How many singers are there per country?", GROUPS)
    assert (too_long.verified, too_long.reason) == (False, "error") and "too long" in too_long.detail
    with pytest.raises(ModelServerUnreachable):
        verify_pair(Engine(Failing(ModelServerUnreachable("no server")), AskOptions.greedy(), cache_dir=tmp_path),
                    db, "How many singers per country?", GROUPS)


# --- chain of thought -----------------------------------------------------------------------------------
def cot_reply(sql: str) -> str:
    return f"The question needs the singer table, grouped by country.\n{sql_block(sql)}"


def test_a_chain_of_thought_is_kept_when_three_samples_agree(db) -> None:
    ctx = database_context(db, "concerts")
    llm = ScriptedLLM([cot_reply(GROUPS), cot_reply("SELECT count(*), country FROM singer GROUP BY country"),
                       cot_reply("SELECT name FROM singer"), cot_reply(GROUPS + " ORDER BY 1")])
    result = synthesize_cot(llm, db, ctx, "How many singers per country?", GROUPS, seed=5, samples=4)
    [call] = llm.requests
    assert call["n"] == 4 and call["seed"] == 5 and call["temperature"] > 0
    assert "think step by step" in call["messages"][0]["content"]  # the pipeline's CoT prompt
    assert result.kept and result.agree == 3 and result.samples == 4 and result.reason is None
    assert len(result.texts) == 3 and all(t.startswith("The question needs") for t in result.texts)
    assert "SELECT name FROM singer" not in "".join(result.texts)


def test_a_chain_of_thought_is_dropped_when_fewer_agree(db) -> None:
    ctx = database_context(db, "concerts")
    llm = ScriptedLLM([cot_reply(GROUPS), cot_reply(GROUPS), cot_reply("DELETE FROM singer"), "no SQL at all"])
    result = synthesize_cot(llm, db, ctx, "How many singers per country?", GROUPS, seed=0, samples=4)
    assert not result.kept and result.agree == 2 and result.reason == "disagree" and result.texts == ()
    assert db.execute("SELECT count(*) FROM singer").rows == ((6,),)  # the refused DELETE never ran
