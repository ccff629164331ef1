"""Rendering per dialect: the M-Schema-like prompt text and the DDL, both deterministic; the DDL is
checked by running it on a scratch database of the same dialect."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
import sqlglot

from conftest import TEST_DB_NAME
from sqlwright.db import Column, ForeignKey, Schema, Table, open_database, render_ddl, render_schema

SQLITE_EXPECTED = """\
【DB_ID】 test
【Schema】
# Table: singer (5 rows)
[
(singer_id:INTEGER, Primary Key, Examples: [1, 2, 3]),
(name:TEXT, Examples: ['Joe Sharp', 'Timbaland', 'Justin Brown']),
(country:TEXT, Examples: ['Netherlands', 'United States', 'France']),
(age:INTEGER, Examples: [52, 32, 29]),
]
# Table: singer_in_concert (5 rows)
[
(concert_id:INTEGER, Primary Key, Examples: [1, 2, 3]),
(singer_id:INTEGER, Primary Key, Examples: [2, 3, 5]),
]
【Foreign keys】
singer_in_concert.singer_id=singer.singer_id"""


def test_render_schema_sqlite_exact(sqlite_testdb):
    with open_database(sqlite_testdb.url) as db:
        text = render_schema(db.schema(), tables=["singer", "SINGER_IN_CONCERT"])
    assert text == SQLITE_EXPECTED


def test_render_schema_per_dialect(opened, testdb):
    schema = opened.schema()
    text = render_schema(schema)
    assert text == render_schema(opened.schema(refresh=True))  # deterministic
    assert "# Table: singer (5 rows)" in text
    assert "# Table: nums (1000 rows)" in text
    assert "(singer_id:" in text and "Primary Key, " in text
    assert "Examples: ['Joe Sharp', 'Timbaland', 'Justin Brown']" in text
    assert "【Foreign keys】" in text
    assert "singer_in_concert.singer_id=singer.singer_id" in text
    assert "singer_in_concert.concert_id=concert.concert_id" in text
    assert "payload" in text and "(payload:" in text and "\\x00" not in text  # blobs: no examples
    if testdb.dialect == "sqlite":
        assert "People who sing" not in text
    else:
        assert "# Table: singer (5 rows), People who sing" in text
        assert "Full name of the singer, Examples:" in text
    if testdb.dialect == "postgres":
        assert "# Table: sales.orders (2 rows)" in text
        assert "sales.orders.singer_id=singer.singer_id" in text


def test_render_schema_options(opened):
    schema = opened.schema()
    bare = render_schema(schema, samples=False)
    assert "Examples" not in bare and "# Table: singer" in bare
    short = render_schema(schema, max_sample_chars=5, tables=["notes"])
    assert "'a lo…'" in short and "# Table: singer" not in short
    only = render_schema(schema, tables=["singer"])
    assert "【Foreign keys】" not in only  # no key whose both ends are shown


def test_render_schema_formats_values():
    import datetime
    import decimal

    schema = Schema(
        "postgres",
        (Table("t", (Column("d", "date", samples=(datetime.date(2024, 1, 2),)),
                     Column("n", "numeric", samples=(decimal.Decimal("1.50"), 2, 2.5)),
                     Column("s", "text", samples=("it's",)),
                     Column("b", "boolean", samples=(True,))), row_count=1),),
    )
    text = render_schema(schema)
    assert "(d:date, Examples: ['2024-01-02'])" in text
    assert "(n:numeric, Examples: [1.50, 2, 2.5])" in text
    assert "(s:text, Examples: ['it\\'s'])" in text
    assert "(b:boolean, Examples: [True])" in text
    assert "# Table: t (1 row)" in text


AWKWARD = Schema(
    "sqlite",
    (
        Table("order", (Column("id", "INTEGER", primary_key=True, nullable=False),
                        Column("group by", "TEXT", nullable=False, comment="it's odd")),
              primary_key=("id",), comment="reserved names"),
        Table("Line Item", (Column("order", "INTEGER"),),
              foreign_keys=(ForeignKey(("order",), "order", ("id",)),)),
    ),
)


@pytest.mark.parametrize("dialect", ["sqlite", "duckdb", "postgres", "mysql"])
def test_ddl_quotes_awkward_names_and_parses(dialect):
    schema = Schema(dialect, AWKWARD.tables)
    ddl = render_ddl(schema)
    assert ddl == render_ddl(schema)
    statements = [s for s in sqlglot.parse(ddl, read=get_sqlglot(dialect)) if s is not None]
    assert sum(isinstance(s, sqlglot.exp.Create) for s in statements) == 2
    q = "`" if dialect == "mysql" else '"'
    assert f"CREATE TABLE {q}order{q}" in ddl and f"{q}group by{q}" in ddl


def get_sqlglot(dialect: str) -> str:
    from sqlwright.db import get_dialect

    return get_dialect(dialect).sqlglot


def test_ddl_runs_on_sqlite_and_duckdb():
    duckdb = pytest.importorskip("duckdb")
    for dialect in ("sqlite", "duckdb"):
        ddl = render_ddl(Schema(dialect, AWKWARD.tables))
        if dialect == "sqlite":
            conn = sqlite3.connect(":memory:")
            conn.executescript(ddl)
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        else:
            conn = duckdb.connect()
            conn.execute(ddl)
            names = {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert names == {"order", "Line Item"}
        conn.close()


def test_ddl_of_introspected_schema_recreates_it(opened, testdb):
    """The DDL of the test database, run on a scratch database, gives back the same tables, keys and
    comments when introspected again."""
    schema = opened.schema()
    ddl = render_ddl(schema)
    assert ddl.count("CREATE TABLE") == len(schema.tables)
    if testdb.dialect == "sqlite":
        conn = sqlite3.connect(":memory:")
        conn.executescript(ddl)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {t.name for t in schema.tables}
        fks = conn.execute("SELECT * FROM pragma_foreign_key_list('singer_in_concert')").fetchall()
        assert len(fks) == 2
    elif testdb.dialect == "duckdb":
        import duckdb

        conn = duckdb.connect()
        conn.execute(_topological(ddl, schema))
        comment = conn.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'singer'").fetchone()[0]
        assert comment == "People who sing"
    elif testdb.dialect == "postgres":
        admin = testdb.admin
        admin.run("BEGIN")
        try:
            admin.run("CREATE SCHEMA ddl_check")
            admin.run("CREATE SCHEMA IF NOT EXISTS sales")
            admin.run("SET LOCAL search_path = ddl_check")
            admin.run(_topological(ddl, schema).replace("sales.orders", "ddl_check_orders"))
            rows = admin.run("SELECT obj_description('ddl_check.singer'::regclass, 'pg_class')")
            assert rows == [("People who sing",)]
        finally:
            admin.run("ROLLBACK")
    else:
        admin = testdb.admin
        scratch = f"{TEST_DB_NAME}_ddl"
        admin.run(f"CREATE DATABASE {scratch}")
        try:
            admin.run(f"USE {scratch}")
            for statement in _topological(ddl, schema).split(";\n\n"):
                admin.run(statement)
            rows = admin.run(
                "SELECT table_comment FROM information_schema.tables "
                f"WHERE table_schema = '{scratch}' AND table_name = 'singer'"
            )
            assert rows == [("People who sing",)]
        finally:
            with contextlib.suppress(Exception):
                admin.run(f"USE {TEST_DB_NAME}")
            admin.run(f"DROP DATABASE {scratch}")


def _topological(ddl: str, schema: Schema) -> str:
    """Order the DDL so referenced tables come first (servers check references at CREATE time)."""
    order = [t.name for t in schema.tables]
    done: list[str] = []
    while len(done) < len(order):
        for t in schema.tables:
            if t.name not in done and all(fk.ref_table in done or fk.ref_table == t.name for fk in t.foreign_keys):
                done.append(t.name)
    return render_ddl(schema, tables=None) if done == order else ";\n\n".join(
        render_ddl(schema, tables=[name]).rstrip(";") for name in done
    ) + ";"
