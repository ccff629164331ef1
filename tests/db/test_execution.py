"""Execution per dialect: results as plain values, the row cap, the wall-clock limit (a cartesian
product stopped at its timeout, the connection usable after), and fingerprints."""

from __future__ import annotations

import time

import pytest

from conftest import NUMS
from sqlwright.db import Result, open_database
from sqlwright.errors import QueryFailed, QueryTimeout


def test_select_returns_columns_and_plain_rows(opened):
    result = opened.execute("SELECT singer_id, name FROM singer WHERE age > 40 ORDER BY singer_id")
    assert isinstance(result, Result)
    assert result.columns == ("singer_id", "name")
    assert result.rows == ((1, "Joe Sharp"), (4, "Rose White"), (5, "O'Neil"))
    assert result.truncated is False and result.row_count == 3
    assert result.seconds >= 0


def test_aggregate_and_join(opened):
    result = opened.execute(
        "SELECT c.concert_name, count(*) AS n FROM concert c JOIN singer_in_concert sc "
        "ON sc.concert_id = c.concert_id GROUP BY c.concert_name ORDER BY n DESC, c.concert_name"
    )
    assert [r[0] for r in result.rows] == ["Auditions", "Home Visits", "Super bootcamp"]
    assert [int(r[1]) for r in result.rows] == [2, 2, 1]


def test_percent_signs_reach_the_database_unchanged(opened):
    assert opened.execute("SELECT name FROM singer WHERE name LIKE '%Sharp%'").rows == (("Joe Sharp",),)


def test_row_cap_truncates_and_flags(opened):
    result = opened.execute("SELECT n FROM nums ORDER BY n", max_rows=10)
    assert result.rows == tuple((i,) for i in range(10))
    assert result.truncated is True
    exact = opened.execute("SELECT n FROM nums WHERE n < 10 ORDER BY n", max_rows=10)
    assert exact.row_count == 10 and exact.truncated is False
    default = opened.execute("SELECT n FROM nums")  # opened with the default cap of 1000 = NUMS rows
    assert default.row_count == NUMS and default.truncated is False


def test_row_cap_default_comes_from_open(testdb):
    with open_database(testdb.url, max_rows=7) as db:
        result = db.execute("SELECT n FROM nums")
    assert result.row_count == 7 and result.truncated


def test_huge_result_is_capped_without_being_fetched(opened):
    start = time.perf_counter()
    result = opened.execute("SELECT a.n, b.n FROM nums a, nums b", max_rows=5)  # a million rows
    assert result.row_count == 5 and result.truncated
    assert time.perf_counter() - start < 5


def test_capped_results_leave_the_session_usable(opened):
    """A capped result's remaining rows are dropped (MySQL: its statement is stopped); whatever the
    result's size, the next statements run normally."""
    for sql in ("SELECT a.n, b.n FROM nums a, nums b", "SELECT n FROM nums WHERE n < 3"):
        for _ in range(3):
            assert opened.execute(sql, max_rows=2).truncated
            assert opened.execute("SELECT count(*) FROM singer").rows == ((5,),)


def test_errors_become_query_failed_and_session_survives(opened):
    with pytest.raises(QueryFailed) as info:
        opened.execute("SELECT no_such_column FROM singer")
    assert "\n" not in str(info.value)
    with pytest.raises(QueryFailed):
        opened.execute("SELECT * FROM no_such_table")
    assert opened.execute("SELECT count(*) FROM concert").rows == ((3,),)


CARTESIAN = "SELECT count(*) FROM nums a, nums b, nums c, nums d"


@pytest.mark.slow
def test_cartesian_product_stops_at_timeout(opened):
    start = time.perf_counter()
    with pytest.raises(QueryTimeout) as info:
        opened.execute(CARTESIAN, timeout=1.0)
    elapsed = time.perf_counter() - start
    assert 0.9 <= elapsed < 2.5, elapsed
    message = str(info.value)
    assert "--timeout" in message and "SQLWRIGHT_TIMEOUT" in message
    # the connection is still usable, with the normal limit again
    assert opened.execute("SELECT count(*) FROM singer").rows == ((5,),)
    assert opened.execute("SELECT count(*) FROM nums").rows == ((NUMS,),)


def test_timeout_default_comes_from_open(testdb):
    with open_database(testdb.url, timeout=0.5) as db:
        start = time.perf_counter()
        with pytest.raises(QueryTimeout):
            db.execute(CARTESIAN)
        assert time.perf_counter() - start < 2.0
        assert db.execute("SELECT 1").rows[0][0] == 1


def test_spider_world_1_cartesian_times_out(spider_db):
    with open_database(str(spider_db("world_1"))) as db:
        start = time.perf_counter()
        with pytest.raises(QueryTimeout):
            db.execute("SELECT count(*) FROM city a, city b, city c", timeout=0.5)
        assert time.perf_counter() - start < 1.5
        assert db.execute("SELECT count(*) FROM city").rows == ((4079,),)


def test_fingerprint_is_stable_for_unchanged_data(opened):
    first = opened.fingerprint()
    opened.execute("SELECT * FROM singer")
    assert opened.fingerprint() == first and first


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    import sqlite3

    path = tmp_path / "f.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    with open_database(str(path)) as db:
        before = db.fingerprint()
        time.sleep(0.01)
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO t VALUES (1)")
        assert db.fingerprint() != before


@pytest.mark.postgres
def test_postgres_fingerprint_changes_with_schema(postgres_testdb):
    with open_database(postgres_testdb.url) as db:
        before = db.fingerprint()
        postgres_testdb.admin.run("CREATE TABLE fp_probe (x INTEGER)")
        try:
            assert db.fingerprint() != before
        finally:
            postgres_testdb.admin.run("DROP TABLE fp_probe")


@pytest.mark.mysql
def test_mysql_fingerprint_changes_with_schema(mysql_testdb):
    with open_database(mysql_testdb.url) as db:
        before = db.fingerprint()
        mysql_testdb.admin.run("CREATE TABLE fp_probe (x INTEGER)")
        try:
            assert db.fingerprint() != before
        finally:
            mysql_testdb.admin.run("DROP TABLE fp_probe")


def test_closed_database_says_so(testdb):
    db = open_database(testdb.url)
    db.close()
    with pytest.raises(QueryFailed, match="closed"):
        db.execute("SELECT 1")


# --- the client-side backstops, with the server's own limit switched off --------------------------------
def test_watchdog_fires_once_unless_cancelled():
    from sqlwright.db.backend import Watchdog

    calls = []
    with Watchdog(0.05, lambda: calls.append(1)) as dog:
        time.sleep(0.2)
    assert calls == [1] and dog.fired
    with Watchdog(0.2, lambda: calls.append(2)) as dog:
        pass
    time.sleep(0.3)
    assert calls == [1] and not dog.fired


@pytest.mark.slow
@pytest.mark.parametrize(
    "dialect", [pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]
)
def test_backstop_stops_a_query_the_server_does_not(request, dialect, monkeypatch):
    testdb = request.getfixturevalue(f"{dialect}_testdb")
    with open_database(testdb.url) as db:
        if dialect == "postgres":
            monkeypatch.setattr(db, "_set_timeout", lambda conn, _t: conn.execute("SET statement_timeout = 0"))
        else:
            monkeypatch.setattr(db, "_set_timeout", lambda _t: db._plain("SET SESSION max_statement_time = 0"))
        start = time.perf_counter()
        with pytest.raises(QueryTimeout):
            db.execute(CARTESIAN, timeout=0.5)
        elapsed = time.perf_counter() - start
        assert 1.4 <= elapsed < 3.5, elapsed  # timeout + the backstop's grace second
        monkeypatch.undo()
        db._timeout_ms = db._timeout = None  # force the real limit back on
        assert db.execute("SELECT count(*) FROM singer").rows == ((5,),)
