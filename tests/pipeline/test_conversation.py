"""Follow-up questions: earlier turns go to the model after the schema block, which stays byte-identical."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import ClassVar

import pytest

import sqlwright
from sqlwright.db import open_database
from sqlwright.errors import InvalidQuestion
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine, Turn
from sqlwright.pipeline.conversation import MAX_TURNS, NO_SQL_REPLY, checked_turns
from sqlwright.pipeline.prompt import FOLLOW_UP_NOTE, schema_block, system_message


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


class PrefixRecordingLLM(ScriptedLLM):
    """The scripted LLM, declaring prompt-state support so that the pipeline tells it the shared prefix."""

    supports_shared_prefix: ClassVar[bool] = True

    def __init__(self, replies) -> None:
        super().__init__(replies)
        self.shared_prefixes: list[str | None] = []

    def complete(self, messages, *, shared_prefix: str | None = None, **kwargs):
        self.shared_prefixes.append(shared_prefix)
        return super().complete(messages, **kwargs)


@pytest.fixture()
def sales(tmp_path: Path):
    path = tmp_path / "sales.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE sale (id INTEGER PRIMARY KEY, country TEXT, year INTEGER, amount REAL);"
        "INSERT INTO sale VALUES (1, 'Netherlands', 2022, 10), (2, 'France', 2022, 20), "
        "(3, 'Netherlands', 2023, 30), (4, 'France', 2023, 40), (5, 'Japan', 2023, 5);"
    )
    con.commit()
    con.close()
    with open_database(f"sqlite:///{path}") as db:
        yield db


TURNS = [Turn("What were the total sales in 2022?", "SELECT sum(amount) FROM sale WHERE year = 2022"),
         Turn("Per country?", "SELECT country, sum(amount) FROM sale WHERE year = 2022 GROUP BY country")]


def test_turns_follow_the_schema_block_and_leave_the_prefix_byte_identical(sales, tmp_path: Path) -> None:
    llm = PrefixRecordingLLM([fenced("SELECT 1")] * 2)
    engine = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path)
    engine.ask(sales, "How many sales were there?")
    engine.ask(sales, "and in 2023?", turns=TURNS)
    alone, follow_up = (r["messages"] for r in llm.requests)
    prefix = schema_block(engine._context(sales).text, dialect="sqlite")
    # The system message and the start of the first user message, the part a backend keeps, are equal.
    assert alone[0] == follow_up[0] == {"role": "system", "content": system_message("sqlite")}
    assert alone[1]["content"].startswith(prefix) and follow_up[1]["content"].startswith(prefix)
    assert alone[1]["content"][: len(prefix)] == follow_up[1]["content"][: len(prefix)]
    assert llm.shared_prefixes == [prefix, prefix]  # the same prefix is announced with and without turns
    # Then the conversation, in order: question, its SQL as the assistant's turn, ..., the new question last.
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert follow_up[1]["content"].endswith("Question:\nWhat were the total sales in 2022?")
    assert follow_up[2]["content"] == fenced(TURNS[0].sql)
    assert follow_up[3]["content"] == "Question:\nPer country?"
    assert follow_up[4]["content"] == fenced(TURNS[1].sql)
    last = follow_up[5]["content"]
    assert FOLLOW_UP_NOTE in last and last.endswith("Question:\nand in 2023?")
    assert "# Table" not in last  # the schema is sent once, at the start


def test_without_turns_the_prompt_is_what_it_was(sales, tmp_path: Path) -> None:
    llm = ScriptedLLM([fenced("SELECT 1")] * 2)
    engine = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path)
    engine.ask(sales, "How many sales were there?")
    engine.ask(sales, "How many sales were there?", turns=())
    first, second = (r["messages"] for r in llm.requests)
    assert first == second and len(first) == 2 and FOLLOW_UP_NOTE not in first[1]["content"]


def test_the_follow_up_is_answered_and_its_evidence_and_hints_come_with_it(sales, tmp_path: Path) -> None:
    llm = ScriptedLLM([fenced("SELECT sum(amount) FROM sale WHERE year = 2023 AND country = 'Netherlands'")])
    engine = Engine(llm, AskOptions.greedy(values=True), cache_dir=tmp_path / "cache")
    answer = engine.ask(sales, "and in 2023?", evidence="Amounts are in euros.",
                        turns=[Turn("What did the netherlands sell in 2022?",
                                    "SELECT sum(amount) FROM sale WHERE country = 'Netherlands' AND year = 2022")])
    assert answer.rows == ((30.0,),)
    messages = llm.requests[0]["messages"]
    last = messages[-1]["content"]
    # The value the earlier question named is hinted for the follow-up, which does not name it itself.
    assert "'Netherlands'" in last and "Amounts are in euros." in last
    assert last.index("Amounts are in euros.") < last.index("Question:\nand in 2023?")
    assert "Amounts are in euros." not in messages[1]["content"]


def test_only_the_last_turns_are_sent(sales, tmp_path: Path) -> None:
    turns = [Turn(f"Question number {i}?", f"SELECT {i}") for i in range(MAX_TURNS + 3)]
    llm = ScriptedLLM([fenced("SELECT 1")])
    Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(sales, "and the next?", turns=turns)
    text = "\n".join(m["content"] for m in llm.requests[0]["messages"])
    assert "Question number 2?" not in text and "Question number 3?" in text
    assert text.count("Question number") == MAX_TURNS


def test_a_turn_without_sql_says_so_and_bad_turns_are_refused() -> None:
    assert Turn("Who won?", None).reply() == NO_SQL_REPLY
    assert checked_turns([Turn("  ", "SELECT 1"), Turn(" Who? ", "  ")]) == (Turn("Who?", None),)
    assert checked_turns(None) == ()
    for bad in ("What?", [("What?", "SELECT 1")], [Turn("What?", 3)], 7):
        with pytest.raises(InvalidQuestion, match="Turn"):
            checked_turns(bad)  # type: ignore[arg-type]


def test_an_earlier_question_is_held_to_the_length_cap(sales, tmp_path: Path) -> None:
    llm = ScriptedLLM([fenced("SELECT 1")])
    engine = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path, max_question_chars=50)
    with pytest.raises(InvalidQuestion, match="too long"):
        engine.ask(sales, "and in 2023?", turns=[Turn("x" * 51, "SELECT 1")])
    assert llm.requests == []


def test_connection_ask_passes_turns_through(sales, tmp_path: Path) -> None:
    llm = ScriptedLLM([fenced("SELECT count(*) FROM sale WHERE year = 2023")])
    with sqlwright.connect(sales.url.removeprefix("sqlite:///"), llm=llm, cache_dir=tmp_path,
                           options=AskOptions.greedy()) as conn:
        answer = conn.ask("and in 2023?", turns=[sqlwright.Turn("How many sales in 2022?",
                                                                "SELECT count(*) FROM sale WHERE year = 2022")])
    assert answer.rows == ((3,),)
    roles = [m["role"] for m in llm.requests[0]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


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
def test_linking_a_follow_up_keeps_the_tables_of_the_conversation(tmp_path: Path) -> None:
    path = tmp_path / "wide.sqlite"
    _wide_database(path)
    llm = ScriptedLLM([fenced("SELECT min(salary) FROM employee")])
    engine = Engine(llm, AskOptions.greedy(linking=True, schema_budget_tokens=400), cache_dir=tmp_path / "c")
    with open_database(f"sqlite:///{path}") as db:
        answer = engine.ask(db, "and the lowest?",
                            turns=[Turn("What is the highest employee salary?", "SELECT max(salary) FROM employee")])
    first_user = llm.requests[0]["messages"][1]["content"]
    assert "# Table: employee" in first_user and first_user.count("# Table:") < 41
    assert answer.rows == ((90.0,),)
