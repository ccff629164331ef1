"""Both safety walls against the real databases.

The hostile corpus goes through `Database.execute` (the guard refuses each with its reason) and the
database is provably unchanged: a checksum of its catalog and every table's rows (DuckDB: the file's
bytes) is the same before and after. Then wall (a) alone: with the guard switched off, writes are
refused by the read-only connection itself (QueryFailed), and again nothing changed.
"""

from __future__ import annotations

import pytest
from hostile_sql import hostile_for

from sqlwright.errors import QueryFailed, QueryRefused


def test_hostile_corpus_refused_and_database_unchanged(opened, testdb):
    before = testdb.admin.checksum()
    cases = hostile_for(testdb.dialect)
    assert len(cases) >= 40
    for sql, words in cases:
        with pytest.raises(QueryRefused) as info:
            opened.execute(sql)
        assert words.lower() in str(info.value).lower(), sql
    # The connection is still good, and nothing changed.
    assert opened.execute("SELECT count(*) FROM singer").rows == ((5,),)
    assert testdb.admin.checksum() == before


WRITES = {
    "common": [
        "INSERT INTO singer VALUES (99, 'Mallory', 'Nowhere', 66)",
        "UPDATE singer SET age = age + 1",
        "DELETE FROM singer_in_concert",
        "CREATE TABLE evil (x INTEGER)",
        "DROP TABLE notes",
        "ALTER TABLE singer ADD COLUMN evil INTEGER",
    ],
    "sqlite": ["PRAGMA query_only = OFF", "PRAGMA user_version = 7", "ATTACH DATABASE ':memory:' AS evil"],
    "postgres": [
        "SELECT nextval('counter')",
        "WITH gone AS (DELETE FROM singer RETURNING *) SELECT count(*) FROM gone",
        "SELECT * INTO evil FROM singer",
        "COMMENT ON TABLE singer IS 'pwned'",
    ],
    "mysql": ["REPLACE INTO singer VALUES (1, 'x', 'y', 1)", "TRUNCATE TABLE notes"],
    "duckdb": ["COPY singer TO '/tmp/sqlwright_wall_a.csv'", "SELECT * FROM read_csv('/etc/hostname')",
               "SET enable_external_access = true", "INSTALL httpfs"],
}


def test_read_only_connection_refuses_writes_without_the_guard(opened, testdb):
    before = testdb.admin.checksum()
    for sql in WRITES["common"] + WRITES[testdb.dialect]:
        with pytest.raises(QueryFailed):
            opened.execute(sql, guard=False)
        # a refused write leaves a working session behind
        assert opened.execute("SELECT count(*) FROM singer").rows == ((5,),), sql
    assert testdb.admin.checksum() == before


def test_sqlite_session_stays_query_only(sqlite_testdb):
    from sqlwright.db import open_database

    with open_database(sqlite_testdb.url) as db:
        assert db.execute("PRAGMA query_only", guard=False).rows == ((1,),)
        with pytest.raises(QueryFailed, match="read-only"):
            db.execute("PRAGMA query_only = OFF", guard=False)
        assert db.execute("PRAGMA query_only", guard=False).rows == ((1,),)
