"""The answer in words: one sentence the (scripted) model writes over the capped rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sqlwright.db import open_database
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine
from sqlwright.pipeline.summary import SUMMARY_MAX_CHARS, clean_summary, summarize

COLUMNS = ("name", "points")
ROWS = tuple((f"player-{i:02d}", 100 - i) for i in range(30))


def test_summarize_asks_once_over_the_capped_rows_only() -> None:
    llm = ScriptedLLM(["  player-00 scored the most points, 100.  "])
    summary = summarize(llm, "Who scored the most?", "SELECT name, points FROM p ORDER BY points DESC", COLUMNS, ROWS)
    assert summary == "player-00 scored the most points, 100."
    [request] = llm.requests
    assert request["n"] == 1 and request["temperature"] == 0.0
    prompt = request["messages"][-1]["content"]
    assert "Who scored the most?" in prompt and "ORDER BY points DESC" in prompt
    assert "player-19" in prompt and "player-20" not in prompt and "player-29" not in prompt
    assert "(the first 20 rows of 30)" in prompt
    summarize(llm.queue("Fine."), "Who?", "SELECT 1", COLUMNS, ROWS, max_rows=3)
    capped = llm.requests[-1]["messages"][-1]["content"]
    assert "player-02" in capped and "player-03" not in capped


@pytest.mark.parametrize(("reply", "expected"), [
    ("**There are 5 singers.** Most are from France.", "There are 5 singers."),
    ("Answer: <b>5</b> singers sang\x07 in 2014\u200b.", "5 singers sang in 2014."),
    ("# Result\n- The average age is 3.5 years", "Result The average age is 3.5 years"),
    ('"Japan has the most stadiums."', "Japan has the most stadiums."),
    ("```sql\nSELECT 1\n```", None),
    ("   \n\t ", None),
    ("", None),
])
def test_the_reply_is_one_plain_sentence_or_none(reply: str, expected: str | None) -> None:
    assert clean_summary(reply) == expected
    assert summarize(ScriptedLLM([reply]), "Q?", "SELECT 1", ("a",), [(1,)]) == expected


def test_a_very_long_sentence_is_cut_at_a_word() -> None:
    text = clean_summary("word " * 200)
    assert text is not None and len(text) <= SUMMARY_MAX_CHARS + 1 and text.endswith("word…")


@pytest.fixture()
def players(tmp_path: Path):
    path = tmp_path / "p.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE player (name TEXT, points INTEGER)")
    con.executemany("INSERT INTO player VALUES (?, ?)", ROWS)
    con.commit()
    con.close()
    with open_database(f"sqlite:///{path}") as db:
        yield db


def test_engine_summarize_sets_the_answers_summary(players, tmp_path: Path) -> None:
    sql = "SELECT name, points FROM player ORDER BY points DESC"
    llm = ScriptedLLM([f"```sql\n{sql}\n```", "player-00 leads with **100** points."])
    answer = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(players, "Who leads?", summarize=True)
    assert answer.summary == "player-00 leads with 100 points." and answer.to_dict()["summary"] == answer.summary
    assert len(answer.rows) == 30 and len(llm.requests) == 2
    prompt = llm.requests[1]["messages"][-1]["content"]
    assert "player-19" in prompt and "player-20" not in prompt  # the capped rows only
    assert "summary" in answer.timings and answer.timings["total"] >= answer.timings["summary"]
    assert answer.completion_tokens > llm.count_tokens(f"```sql\n{sql}\n```")  # the summary's tokens count


def test_no_summary_unless_asked_and_none_for_an_abstention(players, tmp_path: Path) -> None:
    llm = ScriptedLLM(["```sql\nSELECT count(*) FROM player\n```"])
    answer = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(players, "How many players?")
    assert answer.summary is None and len(llm.requests) == 1 and "summary" not in answer.timings
    llm = ScriptedLLM(["-- UNANSWERABLE: there is no salary column"])
    events: list[tuple[str, dict]] = []
    answer = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(
        players, "What is the salary?", summarize=True, on_event=lambda k, d: events.append((k, d)))
    assert answer.abstained and answer.summary is None and len(llm.requests) == 1
    assert ("summary", {"summary": None}) in events
