"""extract_sql / parse_reply over messy, real-looking model replies."""

from __future__ import annotations

import pytest

from sqlwright.pipeline.extract import clean_sql, extract_sql, parse_reply, unanswerable_reason

REPLIES = [
    # plain fenced block with end-of-turn token
    ("```sql\nSELECT name FROM singer;\n```<|im_end|>", "SELECT name FROM singer"),
    # prose around the block
    ("Here is the query:\n\n```sql\nSELECT count(*) FROM singer\n```\n\nThis counts the singers.",
     "SELECT count(*) FROM singer"),
    # chain of thought with an intermediate block: the last sql block wins
    ("Step 1: find the table.\n```sql\nSELECT a FROM t\n```\nWait, the column is b:\n```sql\nSELECT b FROM t;\n```\n"
     "That is the final answer.", "SELECT b FROM t"),
    # upper-case tag, Windows newlines
    ("```SQL\r\nSELECT Name FROM stadium\r\n```", "SELECT Name FROM stadium"),
    # dialect tag instead of sql
    ("```postgresql\nSELECT 1 AS one\n```", "SELECT 1 AS one"),
    # untagged block
    ("```\nselect * from t\n```", "select * from t"),
    # a python block and an untagged SQL block: the SQL one is taken
    ("```python\nprint('hi')\n```\n```\nSELECT x FROM y\n```", "SELECT x FROM y"),
    # unterminated block (the reply hit max_tokens)
    ("```sql\nSELECT a\nFROM t\nWHERE x > 1", "SELECT a\nFROM t\nWHERE x > 1"),
    # no fence: from SELECT to the semicolon, a ';' inside a string literal kept
    ("SELECT name FROM singer WHERE country = 'a;b'; -- done\nThis query lists the singers.",
     "SELECT name FROM singer WHERE country = 'a;b'"),
    # no fence: prose before, explanation after a blank line
    ("The answer is SELECT name FROM singer\n\nThis returns every name.", "SELECT name FROM singer"),
    # lower-case query on its own line after prose that uses the words 'select' and 'with'
    ("We select the rows with the largest age.\nselect max(age) from singer", "select max(age) from singer"),
    # a WITH query without fences
    ("WITH t AS (SELECT 1 AS x) SELECT x FROM t;", "WITH t AS (SELECT 1 AS x) SELECT x FROM t"),
    # label and trailing semicolons
    ("SQL: SELECT 1;;", "SELECT 1"),
    ("```sql\nFinal SQL query: SELECT 2\n```", "SELECT 2"),
    # comment lines inside the block are dropped
    ("```sql\n-- singers from France\nSELECT name FROM singer WHERE country = 'France'\n```",
     "SELECT name FROM singer WHERE country = 'France'"),
    # two statements in one block: the last is the model's final word
    ("```sql\nSELECT a FROM t;\nSELECT b FROM t;\n```", "SELECT b FROM t"),
    # a reasoning model's think section holding a decoy
    ("<think>I could SELECT x FROM nowhere</think>\n```sql\nSELECT y FROM t\n```", "SELECT y FROM t"),
    # other special tokens
    ("```sql\nSELECT 3\n```<|endoftext|>", "SELECT 3"),
    # a DML reply is extracted as-is: the guard, not the extractor, refuses it
    ("```sql\nDELETE FROM singer\n```", "DELETE FROM singer"),
    # quoted identifiers with semicolons inside them
    ('SELECT "a;b" FROM "t;u"', 'SELECT "a;b" FROM "t;u"'),
    # block comments survive in the middle (the guard accepts them)
    ("```sql\nSELECT /* all */ * FROM t\n```", "SELECT /* all */ * FROM t"),
]


@pytest.mark.parametrize(("reply", "expected"), REPLIES)
def test_extract_sql_from_messy_replies(reply: str, expected: str) -> None:
    assert extract_sql(reply) == expected


@pytest.mark.parametrize("reply", ["", "   ", "I don't know.", "Sorry, I cannot help with that.",
                                   "```\n\n```", "```sql\n-- nothing here\n```", "<|im_end|>"])
def test_no_sql_in_reply(reply: str) -> None:
    assert extract_sql(reply) is None
    assert parse_reply(reply).sql is None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("-- UNANSWERABLE: there is no salary column", "there is no salary column"),
        ("```sql\n-- UNANSWERABLE: no salary data\n```", "no salary data"),
        ("UNANSWERABLE: the database has no weather data<|im_end|>", "the database has no weather data"),
        ("The schema has no such table.\n\n-- unanswerable: no pets table", "no pets table"),
        ("-- UNANSWERABLE", "no reason given"),
        ("-- CANNOT_ANSWER: no prices", "no prices"),
    ],
)
def test_unanswerable_marker(reply: str, reason: str) -> None:
    parsed = parse_reply(reply)
    assert parsed.sql is None
    assert parsed.unanswerable == reason


def test_marker_with_a_query_counts_as_sql() -> None:
    reply = "-- UNANSWERABLE: not sure\n```sql\nSELECT name FROM singer\n```"
    parsed = parse_reply(reply)
    assert parsed.sql == "SELECT name FROM singer"
    assert parsed.unanswerable is None


def test_prose_mentioning_answerable_is_not_the_marker() -> None:
    assert unanswerable_reason("This question is answerable with one join.\nSELECT 1") is None
    assert parse_reply("This question is answerable with one join.\nSELECT 1").sql == "SELECT 1"


def test_clean_sql_drops_comment_only_statements() -> None:
    assert clean_sql("SELECT 1; -- trailing comment") == "SELECT 1"
    assert clean_sql(";;") is None
