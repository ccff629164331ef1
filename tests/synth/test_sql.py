"""Stage 1: the filters on crafted SQL (refused, error, timeout, too large, empty, degenerate, duplicate) and
generation with the scripted model."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from synth_helpers import NUMS, make_db

from sqlwright.db import open_database
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.synth.prompts import COMPLEXITY, LEVELS, dialect_functions
from sqlwright.synth.sql import (
    REJECTIONS,
    SAMPLE_ROWS,
    check_query,
    database_context,
    dedupe,
    degenerate_reason,
    item_seed,
    plan_sql_request,
    result_hash,
    sql_template,
    synthesize_sql,
)


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return make_db(tmp_path / "concerts.sqlite")


@pytest.fixture()
def db(db_path: Path):
    with open_database(f"sqlite:///{db_path}", timeout=5) as database:
        yield database


# --- degenerate results ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("rows", "reason"), [
    ([], "empty"),
    ([()], "empty"),  # a row without columns says nothing either
    ([(None,)], "degenerate"),  # all NULL, one cell
    ([(None, None), (None, None)], "degenerate"),  # all NULL
    ([(1,), (1,), (1,)], "degenerate"),  # one constant down a column
    ([("x", "x")], "degenerate"),  # one constant across columns
    ([(7, 7), (7, 7)], "degenerate"),
    ([(1, 1.0)], "degenerate"),  # 1 and 1.0 are the same value
    ([(5,)], None),  # one cell: a count, a maximum — an answer
    ([(0,)], None),
    ([("France",)], None),
    ([(1,), (2,)], None),
    ([(1, None)], None),  # a value and a NULL differ
    ([(True, 1)], None),  # a boolean is not the number 1
    ([(None,), (3,)], None),
])
def test_degenerate_reason(rows, reason) -> None:
    assert degenerate_reason(rows) == reason


# --- templates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), [
    ("SELECT name FROM singer WHERE age > 40", "select name from singer where age > 52"),
    ("SELECT name FROM singer WHERE country = 'France'", "SELECT name FROM singer WHERE country='Netherlands'"),
    ("SELECT name FROM singer WHERE age IN (1, 2)", "SELECT name FROM singer WHERE age IN (3, 4, 5)"),
    ("SELECT name FROM singer WHERE age > -3 LIMIT 5", "SELECT name FROM singer WHERE age > 3 LIMIT 10"),
    ("SELECT Name FROM Singer", "SELECT name FROM singer"),  # SQLite reads unquoted names case-blind
    ("SELECT name FROM singer -- a note\nWHERE age > 1", "SELECT name  FROM singer WHERE age > 2"),
])
def test_queries_differing_only_in_literals_share_a_template(a: str, b: str) -> None:
    assert sql_template(a, "sqlite") == sql_template(b, "sqlite")


@pytest.mark.parametrize(("a", "b"), [
    ("SELECT name FROM singer WHERE age > 40", "SELECT name FROM singer WHERE age < 40"),
    ("SELECT name FROM singer", "SELECT country FROM singer"),
    ("SELECT name FROM singer WHERE age > 40", "SELECT name FROM singer WHERE age > 40 ORDER BY age"),
    ("SELECT count(*) FROM singer", "SELECT count(DISTINCT country) FROM singer"),
])
def test_different_queries_have_different_templates(a: str, b: str) -> None:
    assert sql_template(a, "sqlite") != sql_template(b, "sqlite")


def test_templates_follow_the_dialects_identifier_rules() -> None:
    # PostgreSQL folds unquoted names to lower case, but "Name" quoted is another column
    assert sql_template("SELECT Name FROM t", "postgres") == sql_template("SELECT name FROM t", "postgres")
    assert sql_template('SELECT "Name" FROM t', "postgres") != sql_template("SELECT name FROM t", "postgres")


def test_an_unparsable_query_has_no_template() -> None:
    with pytest.raises(ValueError):
        sql_template("SELECT FROM WHERE (((", "sqlite")


# --- the filters on real executions ---------------------------------------------------------------------
@pytest.mark.parametrize("sql", [
    "DELETE FROM singer",
    "INSERT INTO singer VALUES (9, 'x', 'y', 1)",
    "UPDATE singer SET age = 0",
    "DROP TABLE singer",
    "PRAGMA writable_schema = 1",
    "ATTACH DATABASE '/tmp/x.sqlite' AS x",
    "SELECT 1; DELETE FROM singer",
])
def test_write_statements_are_refused_and_change_nothing(db, db_path: Path, sql: str) -> None:
    kept, fields = check_query(db, sql)
    assert not kept and fields["reason"] == "refused"
    assert fields["detail"]
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT count(*) FROM singer").fetchone()[0] == 6
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'singer'").fetchone()[0] == 1
    con.close()


def test_each_rejection_has_its_reason(db) -> None:
    cases = {
        None: "unparsable",
        "SELECT nope FROM singer": "error",
        "SELECT count(*) FROM nums a, nums b, nums c": "timeout",
        "SELECT n FROM nums": "too_large",
        "SELECT name FROM singer WHERE age > 500": "empty",
        "SELECT max(age) FROM singer WHERE age > 500": "degenerate",  # one NULL
        "SELECT 'x' FROM singer": "degenerate",
    }
    for sql, reason in cases.items():
        kept, fields = check_query(db, sql, timeout=0.3, max_rows=NUMS // 2)
        assert (kept, fields["reason"]) == (False, reason), sql
        assert reason in REJECTIONS


def test_a_good_query_is_kept_with_its_template_and_result_hash(db) -> None:
    kept, fields = check_query(db, "SELECT name, age FROM singer WHERE country = 'France';")
    assert kept
    assert fields["sql"] == "SELECT name, age FROM singer WHERE country = 'France'"  # guard-trimmed
    assert fields["columns"] == ("name", "age") and fields["row_count"] == 3
    assert fields["template"] == sql_template(fields["sql"], "sqlite")
    rows = db.execute(fields["sql"]).rows
    assert fields["result_hash"] == result_hash(rows, fields["sql"], "sqlite")


def test_names_a_small_model_left_unquoted_are_quoted_when_that_makes_it_run(tmp_path: Path) -> None:
    path = tmp_path / "spaces.sqlite"
    con = sqlite3.connect(path)
    con.executescript('CREATE TABLE "order items" ("unit price" REAL); INSERT INTO "order items" VALUES (2.5), (4);')
    con.commit()
    con.close()
    with open_database(str(path)) as db:
        kept, fields = check_query(db, 'SELECT max("unit price") FROM order items')
    assert kept
    assert fields["sql"] == 'SELECT max("unit price") FROM "order items"'  # what ran is what is kept
    assert fields["template"] == sql_template(fields["sql"], "sqlite")
    assert fields["row_count"] == 1


def test_result_hash_ignores_row_order_unless_the_query_orders() -> None:
    rows, reversed_rows = [(1, "a"), (2, "b")], [(2, "b"), (1, "a")]
    plain = "SELECT id, v FROM t"
    ordered = "SELECT id, v FROM t ORDER BY id"
    assert result_hash(rows, plain, "sqlite") == result_hash(reversed_rows, plain, "sqlite")
    assert result_hash(rows, ordered, "sqlite") != result_hash(reversed_rows, ordered, "sqlite")
    assert result_hash([(3.0,)], plain, "sqlite") == result_hash([(3,)], plain, "sqlite")
    assert result_hash([(3.5,)], plain, "sqlite") != result_hash([(3,)], plain, "sqlite")


def test_dedupe_rejects_a_template_already_kept(db) -> None:
    ctx = database_context(db, "concerts")
    first = synthesize_sql(ScriptedLLM(["```sql\nSELECT name FROM singer WHERE age > 40\n```"]), db, ctx,
                           plan_sql_request(ctx, "simple", 0, seed=0))
    again = synthesize_sql(ScriptedLLM(["```sql\nSELECT name FROM singer WHERE age > 30\n```"]), db, ctx,
                           plan_sql_request(ctx, "simple", 1, seed=0))
    assert first.kept and again.kept  # each runs and says something
    kept_templates = {first.template}
    assert dedupe(first, set()).kept
    rejected = dedupe(again, kept_templates)
    assert not rejected.kept and rejected.reason == "duplicate"
    other = synthesize_sql(ScriptedLLM(["```sql\nSELECT country FROM singer WHERE age > 30\n```"]), db, ctx,
                           plan_sql_request(ctx, "simple", 2, seed=0))
    assert dedupe(other, kept_templates).kept


# --- requests and prompts -------------------------------------------------------------------------------
def test_requests_are_reproducible_from_the_seed(db) -> None:
    ctx = database_context(db, "concerts")
    a = plan_sql_request(ctx, "complex", 3, seed=7)
    assert a == plan_sql_request(ctx, "complex", 3, seed=7)
    assert a.seed == item_seed(7, "concerts", "complex", 3)
    assert plan_sql_request(ctx, "complex", 4, seed=7).seed != a.seed
    assert plan_sql_request(ctx, "complex", 3, seed=8).seed != a.seed
    requests = [plan_sql_request(ctx, level, i, seed=0) for level in LEVELS for i in range(40)]
    assert all(1 <= r.column_count <= 6 for r in requests)
    assert {r.column_count for r in requests} >= {1, 2, 3}
    assert {r.focus_table for r in requests} == {"singer", "concert", "singer_in_concert", "nums"}
    assert all(set(r.functions) <= set(dialect_functions("sqlite")) and len(r.functions) == 5 for r in requests)
    with pytest.raises(ValueError):
        plan_sql_request(ctx, "trivial", 0, seed=0)


def test_sample_rows_are_bounded(db) -> None:
    ctx = database_context(db, "concerts")
    nums_block = ctx.rows_text.split("# nums\n", 1)[1].split("\n\n")[0]
    assert len(nums_block.splitlines()) == 1 + SAMPLE_ROWS  # header + 3 of its 1,000 rows
    assert "Joe Sharp" in ctx.rows_text


def test_the_prompt_carries_schema_rows_level_functions_and_column_count(db) -> None:
    ctx = database_context(db, "concerts")
    request = plan_sql_request(ctx, "highly-complex", 0, seed=1)
    llm = ScriptedLLM(["Here it is:\n```sql\nSELECT name, age FROM singer WHERE age > 40\n```"])
    attempt = synthesize_sql(llm, db, ctx, request, temperature=0.9)
    [call] = llm.requests
    prompt = call["messages"][-1]["content"]
    assert ctx.schema_text in prompt and "Joe Sharp" in prompt
    assert COMPLEXITY["highly-complex"] in prompt and "highly complex level" in prompt
    assert all(f in prompt for f in request.functions)
    assert f"exactly {request.column_count} column" in prompt
    assert call["temperature"] == 0.9 and call["seed"] == request.seed and call["n"] == 1
    assert attempt.kept and attempt.sql == "SELECT name, age FROM singer WHERE age > 40"
    assert attempt.draft.reply.startswith("Here it is")


def test_a_reply_without_sql_is_unparsable(db) -> None:
    ctx = database_context(db, "concerts")
    attempt = synthesize_sql(ScriptedLLM(["I would rather not."]), db, ctx, plan_sql_request(ctx, "simple", 0, seed=0))
    assert not attempt.kept and attempt.reason == "unparsable"


def test_a_backend_that_keeps_prompt_states_is_given_the_shared_schema_prefix(db) -> None:
    class PrefixLLM(ScriptedLLM):
        supports_shared_prefix = True

        def complete(self, messages, *, shared_prefix=None, **kwargs):
            self.prefixes = [*getattr(self, "prefixes", []), shared_prefix]
            return super().complete(messages, **kwargs)

    ctx = database_context(db, "concerts")
    llm = PrefixLLM(["```sql\nSELECT name FROM singer\n```"] * 2)
    for level, index in (("simple", 0), ("complex", 5)):
        synthesize_sql(llm, db, ctx, plan_sql_request(ctx, level, index, seed=0))
    first, second = (r["messages"][-1]["content"] for r in llm.requests)
    [prefix] = set(llm.prefixes)  # the same for every item of the database
    assert prefix.endswith(ctx.rows_text.strip())
    end = first.index(prefix) + len(prefix)
    assert first[:end] == second[:end] and first[end:] != second[end:]  # items differ only after it
    assert synthesize_sql(ScriptedLLM(["x"]), db, ctx, plan_sql_request(ctx, "simple", 0, seed=0)).reason == \
        "unparsable"  # a backend without prompt states is not given one
