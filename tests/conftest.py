"""Shared fixtures: benchmark data location and small test databases in every supported dialect.

Each dialect gets the same small database (singer / concert / singer_in_concert / nums / notes), created
with a privileged connection and then opened through `open_database` by the tests. The servers'
databases are named per test process and dropped at the end of the session. PostgreSQL and MariaDB
tests skip with the reason when the server is not reachable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

PG_ADMIN_URL = os.environ.get("SQLWRIGHT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_HOST = os.environ.get("SQLWRIGHT_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("SQLWRIGHT_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("SQLWRIGHT_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("SQLWRIGHT_TEST_MYSQL_PASSWORD", "")
TEST_DB_NAME = f"sqlwright_test_{os.getpid()}"

NUMS = 1000  # rows in `nums`: nums^4 is a cartesian product no engine finishes in seconds
LONG_TEXT = "a long note " * 20


# --- isolation -----------------------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="session")
def _isolated_state_dir(tmp_path_factory: pytest.TempPathFactory):
    """No test reads or writes the user's own examples and notes: the state directory is a fresh one per
    session unless SQLWRIGHT_STATE_DIR is set by the test itself."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SQLWRIGHT_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    yield
    patch.undo()


# --- the real model ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def real_llm():
    """The embedded model the tests marked `model` use (SQLWRIGHT_TEST_MODEL, default the 0.5B), loaded once
    per session; skips when llama-cpp-python or the model is not installed."""
    pytest.importorskip("llama_cpp")
    from sqlwright.errors import ModelMissing
    from sqlwright.llm import load_llm

    try:
        return load_llm(os.environ.get("SQLWRIGHT_TEST_MODEL", "qwen2.5-coder-0.5b"))
    except ModelMissing as exc:
        pytest.skip(f"model not installed: {exc}")


# --- benchmark data ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark data (../shared/data from the repo root, or $SQLWRIGHT_DATA); skips if absent."""
    path = Path(os.environ.get("SQLWRIGHT_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path} (set SQLWRIGHT_DATA)")
    return path


@pytest.fixture(scope="session")
def spider_db(data_dir: Path):
    """A function: Spider dev database name -> path of its .sqlite file (skips if missing)."""

    def locate(name: str) -> Path:
        path = data_dir / "spider" / "database" / name / f"{name}.sqlite"
        if not path.is_file():
            pytest.skip(f"Spider database {name} not found at {path}")
        return path

    return locate


# --- the test database, per dialect ---------------------------------------------------------------
def _ddl(dialect: str) -> list[str]:
    """Statements creating the test schema in `dialect` (types and comment syntax differ)."""
    text = "VARCHAR(200)" if dialect == "mysql" else "TEXT"
    blob = {"postgres": "BYTEA", "mysql": "BLOB", "sqlite": "BLOB", "duckdb": "BLOB"}[dialect]
    inline = dialect == "mysql"

    def cmt(s: str) -> str:
        return f" COMMENT '{s}'" if inline else ""

    stmts = [
        f"CREATE TABLE singer (singer_id INTEGER PRIMARY KEY{cmt('Singer identifier')}, "
        f"name {text} NOT NULL{cmt('Full name of the singer')}, country {text}, age INTEGER)"
        + (" COMMENT='People who sing'" if inline else ""),
        f"CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name {text}, year INTEGER)",
        "CREATE TABLE singer_in_concert (concert_id INTEGER NOT NULL, singer_id INTEGER NOT NULL, "
        "PRIMARY KEY (concert_id, singer_id), "
        "FOREIGN KEY (concert_id) REFERENCES concert (concert_id), "
        "FOREIGN KEY (singer_id) REFERENCES singer (singer_id))",
        "CREATE TABLE nums (n INTEGER PRIMARY KEY)",
        f"CREATE TABLE notes (id INTEGER PRIMARY KEY, body {'TEXT' if inline else text}, payload {blob})",
    ]
    if dialect in ("postgres", "duckdb"):
        stmts += [
            "COMMENT ON TABLE singer IS 'People who sing'",
            "COMMENT ON COLUMN singer.singer_id IS 'Singer identifier'",
            "COMMENT ON COLUMN singer.name IS 'Full name of the singer'",
        ]
    if dialect == "postgres":
        stmts += [
            "CREATE SCHEMA sales",
            "CREATE TABLE sales.orders (order_id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES singer (singer_id), "
            "amount NUMERIC(10, 2))",
            "CREATE SEQUENCE counter",
        ]
    stmts += [
        "INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32), "
        "(3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41), (5, 'O''Neil', NULL, 43)",
        "INSERT INTO concert VALUES (1, 'Auditions', 2014), (2, 'Super bootcamp', 2014), (3, 'Home Visits', 2015)",
        "INSERT INTO singer_in_concert VALUES (1, 2), (1, 3), (2, 5), (3, 1), (3, 2)",
        "INSERT INTO nums VALUES " + ", ".join(f"({i})" for i in range(NUMS)),
    ]
    blob_literal = {"postgres": "'\\x00ff'::bytea", "mysql": "x'00ff'", "sqlite": "x'00ff'", "duckdb": "'\\x00\\xFF'::BLOB"}[
        dialect
    ]
    stmts.append(f"INSERT INTO notes VALUES (1, '{LONG_TEXT}', {blob_literal}), (2, 'short', NULL)")
    if dialect == "postgres":
        stmts.append("INSERT INTO sales.orders VALUES (1, 1, 9.50), (2, 2, 12.00)")
    return stmts


class Admin:
    """A privileged connection to a test database: runs setup statements and checksums everything."""

    dialect: str

    def run(self, sql: str) -> list[tuple]:
        raise NotImplementedError

    def tables(self) -> list[str]:
        raise NotImplementedError

    def catalog(self) -> list[tuple]:
        """Rows describing every relation and column (so that CREATE/DROP/ALTER show up)."""
        raise NotImplementedError

    def checksum(self) -> str:
        """A hash of the catalog and of every table's rows (order-independent)."""
        h = hashlib.sha256(repr(sorted(map(repr, self.catalog()))).encode())
        for table in self.tables():
            rows = sorted(repr(r) for r in self.run(f"SELECT * FROM {table}"))
            h.update(f"{table}:{len(rows)}:{rows}".encode())
        return h.hexdigest()

    def close(self) -> None:
        raise NotImplementedError


class SQLiteAdmin(Admin):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)

    def run(self, sql: str) -> list[tuple]:
        return self.conn.execute(sql).fetchall()

    def tables(self) -> list[str]:
        return [r[0] for r in self.run("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def catalog(self) -> list[tuple]:
        return self.run("SELECT type, name, tbl_name, sql FROM sqlite_master") + self.run("PRAGMA user_version")

    def close(self) -> None:
        self.conn.close()


class DuckDBAdmin(Admin):
    """DuckDB allows no second handle with another configuration while sqlwright has the file open, so
    the checksum is of the file's bytes (and its WAL): stricter than a content checksum."""

    dialect = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path

    def checksum(self) -> str:
        h = hashlib.sha256()
        for p in (self.path, Path(f"{self.path}.wal")):
            if p.exists():
                h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()

    def close(self) -> None:
        pass


class PostgresAdmin(Admin):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=3)

    def run(self, sql: str) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []

    def tables(self) -> list[str]:
        return [
            f'"{s}"."{t}"'
            for s, t in self.run(
                "SELECT schemaname, tablename FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            )
        ]

    def catalog(self) -> list[tuple]:
        return self.run(
            "SELECT n.nspname, c.relname, c.relkind, a.attname, a.atttypid::int "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
        ) + self.run("SELECT last_value::text FROM counter") + self.run(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c WHERE relname = 'singer'"
        )

    def close(self) -> None:
        self.conn.close()


class MySQLAdmin(Admin):
    dialect = "mysql"

    def __init__(self, database: str | None) -> None:
        import pymysql

        self.database = database
        self.conn = pymysql.connect(
            host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
            database=database, autocommit=True, connect_timeout=3,
        )

    def run(self, sql: str) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    def tables(self) -> list[str]:
        return [
            f"`{r[0]}`"
            for r in self.run(
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{self.database}' ORDER BY 1"
            )
        ]

    def catalog(self) -> list[tuple]:
        return self.run(
            "SELECT table_name, column_name, column_type, column_comment FROM information_schema.columns "
            f"WHERE table_schema = '{self.database}'"
        ) + self.run(f"SELECT routine_name FROM information_schema.routines WHERE routine_schema = '{self.database}'")

    def close(self) -> None:
        self.conn.close()


@dataclass
class TestDB:
    """One test database: its dialect, the URL to open it with, and the admin connection."""

    __test__ = False  # not a test class, despite the name

    dialect: str
    url: str
    admin: Admin


@pytest.fixture(scope="session")
def sqlite_testdb(tmp_path_factory) -> TestDB:
    path = tmp_path_factory.mktemp("sqlite") / "test.sqlite"
    admin = SQLiteAdmin(path)
    for stmt in _ddl("sqlite"):
        admin.run(stmt)
    yield TestDB("sqlite", f"sqlite:///{path}", admin)
    admin.close()


@pytest.fixture(scope="session")
def duckdb_testdb(tmp_path_factory) -> TestDB:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path_factory.mktemp("duckdb") / "test.duckdb"
    with duckdb.connect(str(path)) as conn:
        for stmt in _ddl("duckdb"):
            conn.execute(stmt)
    yield TestDB("duckdb", f"duckdb:///{path}", DuckDBAdmin(path))


@pytest.fixture(scope="session")
def postgres_testdb() -> TestDB:
    psycopg = pytest.importorskip("psycopg")
    try:
        server = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}")
    server.execute(f"DROP DATABASE IF EXISTS {TEST_DB_NAME} WITH (FORCE)")
    server.execute(f"CREATE DATABASE {TEST_DB_NAME}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{TEST_DB_NAME}"
    admin = PostgresAdmin(url)
    for stmt in _ddl("postgres"):
        admin.run(stmt)
    admin.run("ANALYZE")
    yield TestDB("postgres", url, admin)
    admin.close()
    with contextlib.suppress(psycopg.Error):
        server.execute(f"DROP DATABASE IF EXISTS {TEST_DB_NAME} WITH (FORCE)")
    server.close()


@pytest.fixture(scope="session")
def mysql_testdb() -> TestDB:
    pymysql = pytest.importorskip("pymysql")
    try:
        server = MySQLAdmin(None)
    except pymysql.Error as exc:
        pytest.skip(f"MariaDB/MySQL not reachable at {MYSQL_HOST}:{MYSQL_PORT}: {exc}")
    server.run(f"DROP DATABASE IF EXISTS {TEST_DB_NAME}")
    server.run(f"CREATE DATABASE {TEST_DB_NAME} CHARACTER SET utf8mb4")
    admin = MySQLAdmin(TEST_DB_NAME)
    for stmt in _ddl("mysql"):
        admin.run(stmt)
    auth = MYSQL_USER + (f":{MYSQL_PASSWORD}" if MYSQL_PASSWORD else "")
    yield TestDB("mysql", f"mysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{TEST_DB_NAME}", admin)
    admin.close()
    with contextlib.suppress(pymysql.Error):
        server.run(f"DROP DATABASE IF EXISTS {TEST_DB_NAME}")
    server.close()


ALL_DIALECTS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("duckdb", id="duckdb"),
]


@pytest.fixture(params=ALL_DIALECTS)
def testdb(request) -> TestDB:
    """The test database, once per dialect (PostgreSQL and MariaDB skip when unreachable)."""
    return request.getfixturevalue(f"{request.param}_testdb")


@pytest.fixture
def opened(testdb: TestDB):
    """The test database opened through `open_database` (closed afterwards)."""
    from sqlwright.db import open_database

    db = open_database(testdb.url, timeout=5)
    yield db
    db.close()
