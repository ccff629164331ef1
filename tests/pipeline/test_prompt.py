"""Prompt building: dialect, layout (schema first, question last), modes, repair follow-up."""

from __future__ import annotations

import pytest

from sqlwright.pipeline.extract import parse_reply
from sqlwright.pipeline.prompt import UNANSWERABLE_MARKER, build_messages, repair_messages

SCHEMA = "# Table: singer\n[\n(Singer_ID:INT, Primary Key),\n(Name:TEXT),\n(Country:TEXT)\n]"


@pytest.mark.parametrize(("dialect", "engine"), [("sqlite", "SQLite"), ("postgres", "PostgreSQL"),
                                                 ("mysql", "MySQL"), ("duckdb", "DuckDB")])
def test_dialect_appears_in_system_and_user_messages(dialect: str, engine: str) -> None:
    system, user = build_messages(SCHEMA, "How many singers?", dialect=dialect)
    assert system["role"] == "system" and user["role"] == "user"
    assert f"expert in {engine} SQL" in system["content"]
    assert f"Database engine: {engine}" in user["content"]


def test_schema_first_question_last_with_hints_and_evidence_between() -> None:
    _, user = build_messages(SCHEMA, "Which singers are from France?", dialect="sqlite",
                             value_hints="singer.Country: 'France'", evidence="France is a country.")
    text = user["content"]
    assert text.index(SCHEMA) < text.index("singer.Country: 'France'") < text.index("France is a country.")
    assert text.rstrip().endswith("Which singers are from France?")


def test_optional_parts_are_left_out_when_empty() -> None:
    _, user = build_messages(SCHEMA, "How many singers?", dialect="sqlite", value_hints="  ", evidence=None)
    assert "Values in the database" not in user["content"]
    assert "Hints" not in user["content"]


def test_questions_on_one_database_share_the_schema_prefix() -> None:
    a = build_messages(SCHEMA, "How many singers?", dialect="sqlite")
    b = build_messages(SCHEMA, "List the countries.", dialect="sqlite")
    assert a[0] == b[0]
    common = len(_common_prefix(a[1]["content"], b[1]["content"]))
    assert common >= a[1]["content"].index(SCHEMA) + len(SCHEMA)


def _common_prefix(x: str, y: str) -> str:
    i = 0
    while i < min(len(x), len(y)) and x[i] == y[i]:
        i += 1
    return x[:i]


def test_plain_and_cot_modes_differ_in_output_format() -> None:
    plain = build_messages(SCHEMA, "q?", dialect="sqlite")[0]["content"]
    cot = build_messages(SCHEMA, "q?", dialect="sqlite", cot=True)[0]["content"]
    assert "return only the SQL" in plain and "step by step" not in plain
    assert "step by step" in cot and "```sql" in cot
    for text in (plain, cot):
        assert UNANSWERABLE_MARKER in text


def test_the_unanswerable_convention_is_one_the_extractor_understands() -> None:
    assert parse_reply(f"{UNANSWERABLE_MARKER} no salary column").unanswerable == "no salary column"


def test_repair_message_holds_the_sql_and_the_error() -> None:
    base = build_messages(SCHEMA, "How many singers?", dialect="postgres")
    msgs = repair_messages(base, "SELECT count(*) FROM singers", "The query failed: relation does not exist",
                           dialect="postgres")
    assert msgs[:2] == base
    assert msgs[2] == {"role": "assistant", "content": "```sql\nSELECT count(*) FROM singers\n```"}
    assert msgs[3]["role"] == "user"
    assert "relation does not exist" in msgs[3]["content"] and "PostgreSQL" in msgs[3]["content"]


def test_repair_of_a_reply_without_sql_shows_the_reply() -> None:
    base = build_messages(SCHEMA, "q?", dialect="sqlite")
    msgs = repair_messages(base, "", "Your reply did not contain a SQL query.", dialect="sqlite",
                           reply="I think you should look at the singer table.")
    assert msgs[2]["content"] == "I think you should look at the singer table."
