"""vote_by_result: grouping by normalised execution result, tie-breaks, confidence, ORDER BY sensitivity."""

from __future__ import annotations

import decimal
import sqlite3
from pathlib import Path

import pytest

from sqlwright.db import open_database
from sqlwright.pipeline.execute import Executor
from sqlwright.pipeline.generate import Draft
from sqlwright.pipeline.select import has_top_level_order_by, result_key, vote_by_result, voters
from sqlwright.pipeline.types import Candidate


@pytest.fixture()
def people_db(tmp_path: Path):
    path = tmp_path / "people.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, height REAL);"
        "INSERT INTO person VALUES (1, 'Ann', 30, 1.7), (2, 'Bob', 25, 1.8), (3, 'Cid', 35, 1.65);"
    )
    con.commit()
    con.close()
    with open_database(f"sqlite:///{path}") as db:
        yield db


def run(db, *sqls: str, logprobs: list[float] | None = None) -> list[Candidate]:
    executor = Executor(db)
    logprobs = logprobs or [None] * len(sqls)
    return [executor.candidate(Draft(f"sample-{i}", sql, sql, mean_logprob=lp))
            for i, (sql, lp) in enumerate(zip(sqls, logprobs, strict=True))]


def test_majority_result_wins_with_its_share_as_confidence(people_db) -> None:
    pool = run(people_db,
               "SELECT name FROM person WHERE age > 28",
               "SELECT name FROM person WHERE age >= 30",
               "SELECT name FROM person WHERE age > 20",
               "SELECT nam FROM person")
    sel = vote_by_result(pool, "sqlite")
    assert sel.chosen is not None and set(sel.chosen.rows) == {("Ann",), ("Cid",)}
    assert sel.group_sizes == (2, 1)
    assert sel.confidence == pytest.approx(2 / 4)  # the failed candidate counts in the denominator
    assert [c.group for c in sel.candidates] == [0, 0, 1, None]


def test_tie_broken_by_mean_logprob(people_db) -> None:
    pool = run(people_db, "SELECT name FROM person WHERE age > 28", "SELECT name FROM person",
               logprobs=[-0.9, -0.2])
    assert vote_by_result(pool, "sqlite").chosen.sql == "SELECT name FROM person"
    pool = run(people_db, "SELECT name FROM person WHERE age > 28", "SELECT name FROM person",
               logprobs=[-0.1, -0.2])
    assert vote_by_result(pool, "sqlite").chosen.sql == "SELECT name FROM person WHERE age > 28"


def test_tie_then_broken_by_the_simplest_sql(people_db) -> None:
    long_sql = "SELECT p.name FROM person AS p WHERE p.age BETWEEN 26 AND 40"
    short_sql = "SELECT name FROM person WHERE age < 30"
    for order in ([long_sql, short_sql], [short_sql, long_sql]):
        pool = run(people_db, *order, logprobs=[-0.3, -0.3])
        assert vote_by_result(pool, "sqlite").chosen.sql == short_sql


def test_representative_of_the_winning_group_is_its_simplest_sql(people_db) -> None:
    pool = run(people_db, "SELECT person.name AS n FROM person WHERE person.age = 30",
               "SELECT name FROM person WHERE age = 30")
    sel = vote_by_result(pool, "sqlite")
    assert sel.group_sizes == (2,) and sel.chosen.sql == "SELECT name FROM person WHERE age = 30"


def test_order_by_makes_row_order_matter(people_db) -> None:
    pool = run(people_db,
               "SELECT name FROM person ORDER BY age",
               "SELECT name FROM person ORDER BY age DESC",
               "SELECT name FROM person ORDER BY height DESC, age")  # Bob, Ann, Cid = by age
    sel = vote_by_result(pool, "sqlite")
    assert sel.group_sizes == (2, 1)
    assert sel.candidates[0].group == sel.candidates[2].group == 0
    assert sel.candidates[1].group == 1


def test_without_order_by_row_order_is_ignored(people_db) -> None:
    pool = run(people_db, "SELECT name FROM person", "SELECT name FROM person WHERE id > 0 GROUP BY name")
    assert vote_by_result(pool, "sqlite").group_sizes == (2,)


def test_order_by_inside_a_subquery_does_not_count(people_db) -> None:
    sql = "SELECT name FROM (SELECT name, age FROM person ORDER BY age DESC)"
    assert not has_top_level_order_by(sql, "sqlite")
    assert has_top_level_order_by("WITH x AS (SELECT 1 AS a) SELECT a FROM x ORDER BY a", "sqlite")
    assert has_top_level_order_by("SELECT 1 UNION SELECT 2 ORDER BY 1", "sqlite")


def test_one_row_results_ignore_order_by(people_db) -> None:
    pool = run(people_db, "SELECT name FROM person ORDER BY age LIMIT 1", "SELECT name FROM person WHERE age = 25")
    assert vote_by_result(pool, "sqlite").group_sizes == (2,)


def test_column_names_and_order_ignored_floats_rounded(people_db) -> None:
    pool = run(people_db,
               "SELECT name, age FROM person",
               "SELECT age AS years, name AS who FROM person",
               "SELECT name, age * 1.0 FROM person",  # 30.0 == 30
               "SELECT name, age + 0.0000000001 FROM person")  # within rounding
    assert vote_by_result(pool, "sqlite").group_sizes == (4,)


def test_result_key_normalises_values() -> None:
    a = Candidate("SELECT 1", "x", ("a",), ((decimal.Decimal("1.50"),), (True,)))
    b = Candidate("SELECT 2", "y", ("b",), ((1,), (1.5000000001,)))
    assert result_key(a, "postgres") == result_key(b, "postgres")
    assert result_key(Candidate("SELECT x", "z", error="boom"), "sqlite") is None


def test_mixed_types_and_nulls_sort_without_error() -> None:
    c = Candidate("SELECT x", "a", ("x",), ((None,), ("b",), (2,), (b"\x00",)))
    d = Candidate("SELECT x", "b", ("x",), ((b"\x00",), (2,), ("b",), (None,)))
    assert result_key(c, "sqlite") == result_key(d, "sqlite")


def test_repaired_candidates_are_replaced_by_their_repair(people_db) -> None:
    pool = run(people_db, "SELECT nam FROM person", "SELECT name FROM person")
    repaired = run(people_db, "SELECT name FROM person")[0]
    pool.append(Candidate(repaired.sql, "repair-of-0", repaired.columns, repaired.rows))
    assert voters(pool) == [1, 2]
    sel = vote_by_result(pool, "sqlite")
    assert sel.confidence == 1.0 and sel.group_sizes == (2,)
    assert sel.candidates[0].group is None


def test_nothing_executed_means_no_winner(people_db) -> None:
    sel = vote_by_result(run(people_db, "SELECT nope FROM person", "DELETE FROM person"), "sqlite")
    assert sel.winner is None and sel.chosen is None and sel.confidence == 0.0
    assert sel.candidates[1].error.startswith("Refused")
