"""Names that need quoting (`order details`, `select`, `Unit Price`, `it's`, mixed case on PostgreSQL) reach
the model quoted in its database's dialect: in the schema, the value hints and the repair's hints; and
the real model's SQL about such a table runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from quoted_names import DIALECTS, ROWS, TOTAL_UNIT_PRICE, opened_quoted_database
from sqlwright.db.schema import Column, Schema, Table
from sqlwright.errors import DatabaseError
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine
from sqlwright.pipeline.bare_names import quote_bare_names
from sqlwright.pipeline.error_hints import schema_hint
from sqlwright.pipeline.values import ValueIndex, ValueMatch, render_value_hints


@pytest.fixture(scope="module", params=DIALECTS)
def quoted_db(request, tmp_path_factory):
    """`order details` and `products` (tests/quoted_names.py) in each dialect."""
    with opened_quoted_database(request, tmp_path_factory, timeout=10) as db:
        yield db


def _q(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql", "duckdb"])
def test_value_hints_quote_table_and_column(dialect: str) -> None:
    schema = Schema(dialect, (Table("order details", (Column("select", "TEXT"), Column("ship_via", "TEXT"))),
                              Table("sales.Region", (Column("RegionName", "TEXT"),), schema="sales")))
    matches = [ValueMatch("order details", "select", "express", 1.0), ValueMatch("order details", "ship_via", "it's", 1.0),
               ValueMatch("sales.Region", "RegionName", "Eastern", 1.0)]
    region = '"Region"."RegionName"' if dialect == "postgres" else "Region.RegionName"
    q = _q(dialect, "order details")
    assert render_value_hints(matches, schema=schema).splitlines() == [
        f"{q}.{_q(dialect, 'select')}: 'express'", f"{q}.ship_via: 'it''s'", f"sales.{region}: 'Eastern'",
    ]
    # without a schema (no dialect known) the names are shown as they are
    assert render_value_hints(matches[:1]) == "order details.select: 'express'"


def test_values_of_a_table_in_a_namespace_are_read_from_it() -> None:
    from sqlwright.pipeline.values import _distinct_values_sql

    table = Table("sales.orders", (Column("Status", "text"),), schema="sales")
    sql = _distinct_values_sql("postgres", table, table.columns[0], 10, 100)
    assert 'FROM "sales"."orders"' in sql  # not "sales"."sales.orders"


def test_the_repair_hint_quotes_the_table_it_names() -> None:
    schema = Schema("postgres", (Table("order details", (Column("Unit Price", "numeric"), Column("qty", "int"))),
                                 Table("products", (Column("name", "text"),))))
    hint = schema_hint('PostgreSQL error: column "Unit Price" does not exist', 'SELECT "Unit Price" FROM products',
                       schema)
    assert hint is not None
    assert '"Unit Price" is a column of "order details" ("order details"."Unit Price")' in hint
    hint = schema_hint('PostgreSQL error: relation "order_details" does not exist', "SELECT 1 FROM order_details",
                       schema)
    assert hint == 'There is no table order_details; similar tables: "order details".'


def test_hints_from_each_databases_own_errors_and_values(quoted_db, tmp_path: Path) -> None:
    """On the real database: an error about a column of `order details`, read in a query of another
    table, gets a hint naming the table quoted; its stored values are hinted under the quoted name."""
    schema = quoted_db.schema()
    sql = "SELECT naïve FROM products"
    with pytest.raises(DatabaseError) as failed:
        quoted_db.execute(sql)
    hint = schema_hint(str(failed.value), sql, schema)
    q = _q(quoted_db.dialect, "order details")
    assert hint is not None and f"naïve is a column of {q} ({q}.naïve)" in hint, (str(failed.value), hint)
    index = ValueIndex.for_database(quoted_db, tmp_path)
    hints = render_value_hints(index.match("Which orders were shipped express?"), schema=schema)
    assert f"{q}.{_q(quoted_db.dialect, 'select')}: 'express'" in hints.splitlines()


def test_the_prompt_shows_the_names_quoted(quoted_db, tmp_path: Path) -> None:
    q = _q(quoted_db.dialect, "order details")
    llm = ScriptedLLM([f"```sql\nSELECT count(*) FROM {q}\n```"])
    engine = Engine(llm, AskOptions(candidates=1, repair_rounds=0), cache_dir=tmp_path)
    answer = engine.ask(quoted_db, "How many order details were shipped express?")
    assert [int(v) for v in answer.rows[0]] == [ROWS]
    prompt = llm.requests[0]["messages"][1]["content"]
    assert f"# Table: {q} (3 rows)" in prompt and f"({_q(quoted_db.dialect, 'Unit Price')}:" in prompt
    assert f"{q}.{_q(quoted_db.dialect, 'select')}: 'express'" in prompt


SCHEMA = Schema("postgres", (
    Table("order details", (Column("select", "text"), Column("Unit Price", "numeric"), Column("OrderDate", "text"),
                            Column("it's", "text"), Column("name", "text"))),
    Table("products", (Column("Name", "text"), Column("product_id", "int"))),
))


@pytest.mark.parametrize(("sql", "fixed"), [
    ("SELECT count(*) FROM order details", 'SELECT count(*) FROM "order details"'),
    ("SELECT SUM(T1.unit  price) FROM Order Details AS T1", 'SELECT SUM(T1."Unit Price") FROM "order details" AS T1'),
    ("SELECT orderdate FROM order details WHERE x = 'order details' -- order details",
     """SELECT "OrderDate" FROM "order details" WHERE x = 'order details' -- order details"""),
    ('SELECT "Unit Price" FROM "order details"', None),  # already quoted
    ("SELECT name FROM products", None),  # `name` is a plain column too: a bare `name` may be it
    ("SELECT select FROM t", None),  # a reserved word written bare cannot be told from SQL
    ("SELECT it's FROM t", None),
    ("SELECT order_details FROM details", None),  # only whole names
])
def test_bare_names_that_need_quoting_are_quoted(sql: str, fixed: str | None) -> None:
    assert quote_bare_names(sql, SCHEMA) == fixed


def test_bare_names_are_quoted_in_each_dialects_quotes() -> None:
    mysql = Schema("mysql", SCHEMA.tables)
    assert quote_bare_names("SELECT SUM(Unit Price) FROM order details", mysql) == (
        "SELECT SUM(`Unit Price`) FROM `order details`")
    assert quote_bare_names("SELECT orderdate FROM t", mysql) is None  # MySQL does not fold case


def test_a_failing_query_with_bare_names_runs_quoted(quoted_db, tmp_path: Path) -> None:
    """What small models write (the rendering's names without their quotes) is answered all the same; the
    candidate holds the SQL that ran."""
    llm = ScriptedLLM(["```sql\nSELECT SUM(Unit Price) FROM order details\n```"])
    engine = Engine(llm, AskOptions(candidates=1, repair_rounds=0), cache_dir=tmp_path)
    answer = engine.ask(quoted_db, "What is the total Unit Price of all order details?")
    assert float(answer.rows[0][0]) == pytest.approx(TOTAL_UNIT_PRICE)
    q = _q(quoted_db.dialect, "order details")
    assert answer.sql == f"SELECT SUM({_q(quoted_db.dialect, 'Unit Price')}) FROM {q}"
    assert answer.candidates[0].error is None


# --- the real model ------------------------------------------------------------------------------
QUESTIONS = {  # one question per dialect: each costs the model a few seconds
    "sqlite": ("How many order details are there?", ROWS),
    "postgres": ("What is the total Unit Price of all order details?", TOTAL_UNIT_PRICE),
    "mysql": ("How many order details are there?", ROWS),
    "duckdb": ("What is the total Unit Price of all order details?", TOTAL_UNIT_PRICE),
}


@pytest.mark.model
@pytest.mark.slow
def test_the_real_model_answers_about_a_table_that_needs_quoting(real_llm, quoted_db, tmp_path: Path) -> None:
    question, expected = QUESTIONS[quoted_db.dialect]
    engine = Engine(real_llm, AskOptions(candidates=1, repair_rounds=0), cache_dir=tmp_path)
    answer = engine.ask(quoted_db, question)
    greedy = answer.candidates[0]
    assert greedy.origin == "greedy" and greedy.error is None, (greedy.sql, greedy.error)
    assert not answer.abstained and len(answer.rows) == 1, answer.sql
    assert float(answer.rows[0][0]) == pytest.approx(expected), answer.sql
