"""Server settings that would make a database read a statement otherwise than the guard does are pinned
per session: PostgreSQL's standard_conforming_strings, MySQL's ANSI_QUOTES and NO_BACKSLASH_ESCAPES."""

from __future__ import annotations

import pytest

from sqlwright.db import open_database


def test_session_sql_mode_drops_the_quote_and_backslash_modes():
    from sqlwright.db.mysql import session_sql_mode

    assert session_sql_mode("REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI,"
                            "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES") == \
        "REAL_AS_FLOAT,PIPES_AS_CONCAT,IGNORE_SPACE,STRICT_TRANS_TABLES"
    assert session_sql_mode("") == ""


@pytest.mark.postgres
def test_postgres_keeps_standard_strings_even_when_the_url_asks_otherwise(postgres_testdb):
    url = postgres_testdb.url + "?options=-c%20standard_conforming_strings%3Doff"
    with open_database(url) as db:
        assert db.execute("SELECT current_setting('standard_conforming_strings') AS s").rows == (("on",),)
        assert db.execute(r"SELECT 'a\' AS s").rows == (("a\\",),)  # a backslash is a character


@pytest.mark.mysql
def test_mysql_session_reads_quotes_as_the_guard_does(mysql_testdb):
    with open_database(mysql_testdb.url) as db:
        db._plain("SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES'")
        db._pin_session()  # what every (re)connection does
        mode = db.execute("SELECT @@SESSION.sql_mode AS m").rows[0][0]
        assert "ANSI_QUOTES" not in mode and "NO_BACKSLASH_ESCAPES" not in mode and "STRICT_TRANS_TABLES" in mode
        assert db.execute('SELECT "x" AS s').rows == (("x",),)  # a string, not a column name
