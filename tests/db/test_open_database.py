"""Opening databases: the dialect registry, URL forms, and every error a user can cause reported as
one clear line (ConnectionFailed / UnsupportedDatabase), never a driver traceback."""

from __future__ import annotations

import importlib
import os
import socket
import sqlite3
import time

import pytest

import sqlwright.db as db_api
from conftest import MYSQL_HOST, MYSQL_PORT, PG_ADMIN_URL
from sqlwright.db import dialect_names, get_dialect, open_database
from sqlwright.db.backend import mask_url
from sqlwright.db.dialects import Dialect, dialect_for_suffix
from sqlwright.errors import ConnectionFailed, UnsupportedDatabase


# --- the registry ---------------------------------------------------------------------------------
def test_registered_dialects():
    assert dialect_names() == ["duckdb", "mysql", "postgres", "sqlite"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sqlite", "sqlite"), ("SQLite", "sqlite"), ("postgresql", "postgres"), ("postgres", "postgres"),
     ("mariadb", "mysql"), ("mysql+pymysql", "mysql"), ("duckdb", "duckdb")],
)
def test_lookup_by_name_or_scheme(name, expected):
    assert get_dialect(name).name == expected


@pytest.mark.parametrize(("name", "hint"), [("postgress", "postgres"), ("sqlit", "sqlite"), ("duckd", "duckdb"),
                                            ("mysq", "mysql")])
def test_unknown_dialect_suggests_the_closest(name, hint):
    with pytest.raises(UnsupportedDatabase, match=f"Did you mean '{hint}'"):
        get_dialect(name)


def test_unknown_dialect_without_close_match_lists_supported():
    with pytest.raises(UnsupportedDatabase, match="Supported: duckdb, mysql, postgres, sqlite"):
        get_dialect("oracle")


def test_subclass_registers_itself():
    class Toy(Dialect):
        name = "toy_for_test"
        sqlglot = "sqlite"

    try:
        assert get_dialect("toy_for_test") is Toy
    finally:
        from sqlwright.db import dialects

        dialects._REGISTRY.pop("toy_for_test")


def test_suffixes():
    assert dialect_for_suffix(".sqlite").name == "sqlite"
    assert dialect_for_suffix(".DB").name == "sqlite"
    assert dialect_for_suffix(".duckdb").name == "duckdb"
    assert dialect_for_suffix(".csv") is None


def test_public_exports():
    for name in ["Database", "Result", "Schema", "Table", "Column", "ForeignKey", "open_database",
                 "render_schema", "render_ddl", "check_sql"]:
        assert name in db_api.__all__ and hasattr(db_api, name)


# --- URL forms --------------------------------------------------------------------------------------
@pytest.fixture
def small_sqlite(tmp_path):
    path = tmp_path / "small.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (42)")
    return path


def test_sqlite_url_forms(small_sqlite, monkeypatch):
    for url in [f"sqlite:///{small_sqlite}", f"sqlite:////{str(small_sqlite).lstrip('/')}", str(small_sqlite)]:
        with open_database(url) as db:
            assert db.dialect == "sqlite"
            assert db.execute("SELECT x FROM t").rows == ((42,),)
    monkeypatch.chdir(small_sqlite.parent)
    with open_database("sqlite:///small.sqlite") as db:  # relative, as SQLAlchemy reads it
        assert db.execute("SELECT x FROM t").rows == ((42,),)
    for suffix in (".db", ".sqlite3"):
        other = small_sqlite.with_suffix(suffix)
        other.write_bytes(small_sqlite.read_bytes())
        with open_database(str(other)) as db:
            assert db.dialect == "sqlite"


def test_duckdb_bare_path(duckdb_testdb):
    path = duckdb_testdb.url.removeprefix("duckdb://")
    with open_database(path) as db:
        assert db.dialect == "duckdb"
        assert db.execute("SELECT count(*) FROM singer").rows == ((5,),)


@pytest.mark.parametrize(
    "dialect", [pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]
)
def test_server_url_variants(request, dialect):
    testdb = request.getfixturevalue(f"{dialect}_testdb")
    if dialect == "postgres":
        variants = [testdb.url, testdb.url.replace("postgresql://", "postgres://", 1)]
    else:
        variants = [testdb.url, testdb.url.replace("mysql://", "mariadb://", 1),
                    testdb.url.replace("mysql://", "mysql+pymysql://", 1)]
    for url in variants:
        with open_database(url) as db:
            assert db.dialect == testdb.dialect
            assert db.execute("SELECT count(*) FROM singer").rows == ((5,),)


def test_password_masked():
    assert mask_url("postgresql://bob:s3cret@db.example:5432/app") == "postgresql://bob:***@db.example:5432/app"
    assert mask_url("mysql://root@localhost/x") == "mysql://root@localhost/x"
    assert mask_url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"


# --- errors a user can cause ----------------------------------------------------------------------------
def _one_line_error(exc_type, url, match):
    with pytest.raises(exc_type, match=match) as info:
        open_database(url)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_file_is_not_created(tmp_path):
    missing = tmp_path / "nope.sqlite"
    _one_line_error(ConnectionFailed, f"sqlite:///{missing}", "not found")
    _one_line_error(ConnectionFailed, str(missing), "not found")
    _one_line_error(ConnectionFailed, f"duckdb:///{tmp_path / 'nope.duckdb'}", "not found")
    assert not missing.exists() and not (tmp_path / "nope.duckdb").exists()


def test_corrupt_files(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database, just some bytes " * 100)
    _one_line_error(ConnectionFailed, str(bad), "not a database")
    bad_duck = tmp_path / "bad.duckdb"
    bad_duck.write_bytes(b"garbage" * 1000)
    _one_line_error(ConnectionFailed, str(bad_duck), "Could not open DuckDB")


def test_directory_and_unknown_suffix(tmp_path):
    folder = tmp_path / "dir.sqlite"
    folder.mkdir()
    _one_line_error(ConnectionFailed, str(folder), "directory")
    other = tmp_path / "data.csv"
    other.write_text("a,b\n")
    _one_line_error(UnsupportedDatabase, str(other), "Cannot tell the database type")


@pytest.mark.parametrize(
    ("url", "exc_type", "match"),
    [
        ("", ConnectionFailed, "No database URL"),
        ("oracle://scott@host/db", UnsupportedDatabase, "Unsupported database dialect 'oracle'"),
        ("postgress://u@localhost/db", UnsupportedDatabase, "Did you mean 'postgres"),
        ("sqlite://relative.db", ConnectionFailed, "three slashes"),
        ("sqlite:///", ConnectionFailed, "no file path"),
        ("mysql://root@127.0.0.1:3306", ConnectionFailed, "names no database"),
        ("mysql://root@127.0.0.1:notaport/x", ConnectionFailed, "Bad MySQL URL"),
    ],
)
def test_bad_urls(url, exc_type, match):
    _one_line_error(exc_type, url, match)


@pytest.mark.parametrize(
    ("url", "form"),
    [
        ("postgres:/x", "postgresql://user@host:5432/dbname"),
        ("postgresql:x", "postgresql://user@host:5432/dbname"),
        ("POSTGRESQL:/u@localhost/db", "postgresql://user@host:5432/dbname"),
        ("mysql:/", "mysql://user@host:3306/dbname"),
        ("mariadb:root@localhost/db", "mysql://user@host:3306/dbname"),
        ("sqlite:/x.db", "sqlite:///path/to.db"),
        ("sqlite:x.db", "sqlite:///path/to.db"),
        ("sqlite//x", "sqlite:///path/to.db"),
        ("sqlite:\\\\x.db", "sqlite:///path/to.db"),
        ("duckdb:/x.duckdb", "duckdb:///path/to.duckdb"),
        ("postgress:/x", "postgresql://user@host:5432/dbname"),
    ],
)
def test_malformed_url_names_the_right_form(url, form):
    message = _one_line_error(ConnectionFailed, url, "Malformed database URL")
    assert message == f"Malformed database URL {url!r}: write {form}"


def test_malformed_url_hides_its_password():
    message = _one_line_error(ConnectionFailed, "postgresql:/bob:s3cret@db.example/app", "Malformed database URL")
    assert "s3cret" not in message and "bob:***@db.example" in message


@pytest.mark.parametrize("url", ["http://example.com/db", "https://x/y.sqlite", "http:/x.db", "file:///tmp/x.db"])
def test_web_address_is_not_a_database_url(url):
    message = _one_line_error(UnsupportedDatabase, url, "is not a database URL")
    assert "sqlite:///path/to.db" in message and "postgresql://user@host:5432/dbname" in message


def test_missing_paths_still_say_not_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in ["nope.sqlite", "data/nope.db", "sqlite/nope.db", "postgres", "C:/nope.db", "other:x"]:
        _one_line_error(ConnectionFailed, path, "not found")


def test_existing_file_with_a_scheme_like_name_opens(small_sqlite, monkeypatch):
    monkeypatch.chdir(small_sqlite.parent)
    (small_sqlite.parent / "sqlite:x.db").write_bytes(small_sqlite.read_bytes())
    with open_database("sqlite:x.db") as db:
        assert db.execute("SELECT x FROM t").rows == ((42,),)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sqlite:///a\nb.db", "control character"),
        ("sqlite:///a%0Ab.db", "control character"),
        ("sqlite:///a%00b.db", "control character"),
        ("postgresql://u@127.0.0.1:1/d%00b", "control character"),
        ("sqlite:///\ud800.db", "not valid text"),
        ("sqlite:///" + "x" * 5000 + ".db", "name too long"),
        ("~no_such_user_sqlwright/x.db", "no_such_user_sqlwright"),
        ("/dev/null.sqlite", "not found"),
    ],
)
def test_unusable_names_fail_cleanly(url, match):
    _one_line_error(ConnectionFailed, url, match)


def test_devices_and_pipes_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.sqlite"
    os.mkfifo(fifo)
    _one_line_error(ConnectionFailed, str(fifo), "pipe")  # opening a FIFO would wait for a writer forever
    _one_line_error(ConnectionFailed, "sqlite:////dev/null", "device")
    _one_line_error(ConnectionFailed, f"duckdb:///{tmp_path / 'pipe.sqlite'}", "pipe")
    loop = tmp_path / "loop.db"
    loop.symlink_to(loop)
    _one_line_error(ConnectionFailed, str(loop), "Symlink loop")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("postgresql://u@" + "a" * 64 + "/db", "not a valid host name"),  # IDNA refuses the label
        ("mysql://u@a..b/db", "not a valid host name"),
        ("postgresql://u@127.0.0.1:1,a..b/db", "not a valid host name"),
        ("postgresql://u@127.0.0.1:1/%ff%fe", "not UTF-8"),
        ("postgresql://u:topsecret@127.0.0.1:65536/db", "invalid port"),
        ("mysql://u:topsecret@127.0.0.1:-1/db", "Bad MySQL URL"),
        ("mysql://u:topsecret@[::1/db", "Bad MySQL URL"),
    ],
)
def test_bad_server_urls_fail_cleanly_and_stay_masked(url, match):
    message = _one_line_error(ConnectionFailed, url, match)
    assert "topsecret" not in message


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, "5"])
def test_timeout_must_be_a_finite_positive_number(small_sqlite, timeout):
    with pytest.raises(ConnectionFailed, match="timeout"):
        open_database(str(small_sqlite), timeout=timeout)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_server_down_fails_fast(scheme):
    port = _closed_port()
    start = time.perf_counter()
    message = _one_line_error(ConnectionFailed, f"{scheme}://u:topsecret@127.0.0.1:{port}/db", "Could not connect")
    assert time.perf_counter() - start < 6
    assert "topsecret" not in message and "***" in message


@pytest.mark.timeout(30)  # before the read timeout, a MySQL URL at such a port waited forever
@pytest.mark.parametrize(("scheme", "module"), [("postgresql", "postgres"), ("mysql", "mysql")])
def test_a_port_that_never_answers_fails_fast(monkeypatch, scheme, module):
    """A listening port whose server never speaks (another server's port, e.g. PostgreSQL's to a MySQL URL,
    waits for the client to speak first): the connect timeout bounds the handshake too."""
    backend = importlib.import_module(f"sqlwright.db.{module}")
    monkeypatch.setattr(backend, "CONNECT_TIMEOUT", 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        start = time.perf_counter()
        _one_line_error(ConnectionFailed, f"{scheme}://u@127.0.0.1:{port}/db", "Could not connect")
        assert time.perf_counter() - start < 6


@pytest.mark.postgres
def test_postgres_unknown_database_and_bad_user(postgres_testdb):
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    msg = _one_line_error(ConnectionFailed, f"{base}/no_such_db_sqlwright", "Could not connect")
    assert "does not exist" in msg
    host = base.split("@", 1)[1]
    msg = _one_line_error(ConnectionFailed, f"postgresql://no_such_role_sqlwright@{host}/postgres", "Could not connect")
    assert "no_such_role_sqlwright" in msg


@pytest.mark.mysql
def test_mysql_unknown_database_and_bad_credentials(mysql_testdb):
    msg = _one_line_error(ConnectionFailed, f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/no_such_db_sqlwright",
                          "Could not connect")
    assert "Unknown database" in msg
    msg = _one_line_error(ConnectionFailed, f"mysql://nobody_sqlwright:wrong@{MYSQL_HOST}:{MYSQL_PORT}/x",
                          "Could not connect")
    assert "denied" in msg and "wrong@" not in msg


def test_bad_limits(small_sqlite):
    with pytest.raises(ConnectionFailed, match="timeout"):
        open_database(str(small_sqlite), timeout=0)
    with pytest.raises(ConnectionFailed, match="max_rows"):
        open_database(str(small_sqlite), max_rows=0)
