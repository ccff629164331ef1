"""Rendering per dialect: the M-Schema-like prompt text and the DDL, both deterministic; the DDL is
checked by running it on a scratch database of the same dialect."""

from __future__ import annotations

import contextlib
import re
import sqlite3

import pytest
import sqlglot

from conftest import TEST_DB_NAME
from quoted_names import DIALECTS as QUOTED_DIALECTS
from quoted_names import opened_quoted_database
from sqlwright.db import (
    Column,
    ForeignKey,
    Schema,
    Table,
    get_dialect,
    open_database,
    render_ddl,
    render_schema,
)
from sqlwright.db.render import quote_identifier, quote_table_name

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


# --- names that need quoting ---------------------------------------------------------------------
@pytest.fixture(scope="module", params=QUOTED_DIALECTS)
def quoted_db(request, tmp_path_factory):
    """`order details` and `products` (tests/quoted_names.py), opened through `open_database`."""
    with opened_quoted_database(request, tmp_path_factory, timeout=5) as db:
        yield db


_HEADER = re.compile(r"^# Table: (.+?) \(\d+ rows?\)", re.MULTILINE)
_COLUMN = re.compile(r"^\((.+?):", re.MULTILINE)


def _rendered_names(text: str) -> dict[str, list[str]]:
    """Table name -> column names, as `render_schema` wrote them (quotes included)."""
    names: dict[str, list[str]] = {}
    for block in text.split("\n# Table: ")[1:]:
        header = _HEADER.match("# Table: " + block)
        assert header is not None, block
        names[header.group(1)] = _COLUMN.findall(block.split("\n]")[0])
    return names


def test_names_that_need_quoting_are_rendered_quoted(quoted_db):
    schema = quoted_db.schema()
    text = render_schema(schema)
    q = "`" if quoted_db.dialect == "mysql" else '"'
    names = _rendered_names(text)
    order_date = '"OrderDate"' if quoted_db.dialect == "postgres" else "OrderDate"  # PostgreSQL folds case
    assert names == {
        f"{q}order details{q}": ["id", "product_id", f"{q}select{q}", f"{q}Unit Price{q}", "naïve", f"{q}it's{q}",
                                 order_date],
        "products": ["product_id", "name"],  # plain names stay as they are
    }
    assert f"# Table: {q}order details{q} (3 rows)" in text
    assert f"{q}order details{q}.product_id=products.product_id" in text
    ddl = render_ddl(schema)
    assert f"CREATE TABLE {q}order details{q} (" in ddl and f"{q}Unit Price{q}" in ddl
    assert "CREATE TABLE products (" in ddl


def test_each_rendered_name_runs_on_its_database(quoted_db):
    """`SELECT <column> FROM <table>` and `SELECT <table>.<column> FROM <table>`, pasted from the
    rendering, run and read the column the name means (not, say, a keyword's value)."""
    names = _rendered_names(render_schema(quoted_db.schema()))
    spec = get_dialect(quoted_db.dialect)
    for table_text, columns in names.items():
        table = quoted_db.schema().table(table_text.strip(spec.identifier_quote))
        assert table is not None
        assert [c.name for c in table.columns] == [c.strip(spec.identifier_quote) for c in columns]
        for column_text, column in zip(columns, table.columns, strict=True):
            expected = quoted_db.execute(f"SELECT {spec.quote(column.name)} FROM {spec.quote(table.name)}").rows
            assert quoted_db.execute(f"SELECT {column_text} FROM {table_text}").rows == expected
            assert quoted_db.execute(f"SELECT {table_text}.{column_text} FROM {table_text}").rows == expected


def test_quote_identifier_follows_each_dialects_rules():
    assert quote_identifier("select", "sqlite") == '"select"'
    assert quote_identifier("it's", "mysql") == "`it's`"
    assert quote_identifier("a`b", "mysql") == "`a``b`"
    assert quote_identifier('say "hi"', "postgres") == '"say ""hi"""'
    assert quote_identifier("1st place", "duckdb") == '"1st place"'
    assert quote_identifier("Name", "postgres") == '"Name"'  # unquoted, PostgreSQL would read `name`
    for dialect in ("sqlite", "mysql", "duckdb"):
        assert quote_identifier("Name", dialect) == "Name"
    for plain in ("singer_id", "name", "date", "year", "count", "type", "naïve"):
        for dialect in ("sqlite", "postgres", "mysql", "duckdb"):
            assert quote_identifier(plain, dialect) == plain
    namespaced = Table("sales Dept.orders", (), schema="sales Dept")
    assert quote_table_name(namespaced, "postgres") == '"sales Dept".orders'


def _keywords(dialect: str, admin) -> list[str]:
    """The engine's own list of its keywords, lower case (skips where it offers none)."""
    if dialect == "sqlite":
        import _sqlite3
        import ctypes

        try:
            lib = ctypes.CDLL(_sqlite3.__file__)
            count = lib.sqlite3_keyword_count()
        except (OSError, AttributeError) as exc:
            pytest.skip(f"SQLite's keyword list is not reachable through ctypes: {exc}")
        words = []
        name, size = ctypes.c_char_p(), ctypes.c_int()
        for i in range(count):
            lib.sqlite3_keyword_name(i, ctypes.byref(name), ctypes.byref(size))
            words.append(name.value[: size.value].decode().lower())
        return words
    if dialect == "duckdb":
        return [r[0].lower() for r in admin.execute("SELECT keyword_name FROM duckdb_keywords()").fetchall()]
    if dialect == "postgres":
        return [r[0] for r in admin.run("SELECT word FROM pg_get_keywords()")]
    try:
        return [r[0].lower() for r in admin.run("SELECT word FROM information_schema.keywords")]
    except Exception as exc:  # MySQL before 8.0, MariaDB before 10.6: no such table
        pytest.skip(f"the server lists no keywords: {exc}")


@pytest.mark.parametrize("dialect", QUOTED_DIALECTS)
def test_every_keyword_the_engine_cannot_read_unquoted_is_quoted(dialect, request):
    """Each word of the engine's own keyword list names a column; where the engine reads it unquoted
    wrongly (an error, or another value: `SELECT user` is the session's user on PostgreSQL), the
    rendering must quote it."""
    if dialect in ("sqlite", "duckdb"):
        admin = sqlite3.connect(":memory:") if dialect == "sqlite" else pytest.importorskip("duckdb").connect()

        def run(sql: str) -> list[tuple]:
            return admin.execute(sql).fetchall()
    else:
        admin = request.getfixturevalue(f"{dialect}_testdb").admin
        run = admin.run
    words = sorted(set(_keywords(dialect, admin)))
    spec = get_dialect(dialect)
    columns = ", ".join(f"{spec.quote(w)} INTEGER" for w in words)
    temporary = "" if dialect in ("sqlite", "duckdb") else "TEMPORARY "
    run(f"CREATE {temporary}TABLE kw ({columns})")
    try:
        run(f"INSERT INTO kw VALUES ({', '.join(str(1000 + i) for i in range(len(words)))})")
        misread = []
        for i, word in enumerate(words):
            try:
                rows = [tuple(r) for r in run(f"SELECT {word} FROM kw")]
            except Exception:  # each driver's own error: the engine cannot read the word unquoted
                rows = None
            if rows != [(1000 + i,)]:
                misread.append(word)
        assert misread, "the sweep should find reserved words"
        assert [w for w in misread if quote_identifier(w, dialect) == w] == [], misread
    finally:
        run("DROP TABLE kw")
