"""A database's identity: its key (dialect and location, no credentials) and its schema fingerprint (the
shape of its schema, not its content)."""

from __future__ import annotations

import shutil
import sqlite3
from types import SimpleNamespace

import pytest

from sqlwright.db import Column, ForeignKey, Schema, Table, database_key, open_database, schema_fingerprint


def _fingerprint(path) -> str:
    with open_database(f"sqlite:///{path}") as db:
        return schema_fingerprint(db.schema())


@pytest.fixture()
def shop(tmp_path):
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
        CREATE TABLE purchase (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer (id), amount REAL);
        INSERT INTO customer VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome');
        INSERT INTO purchase VALUES (1, 1, 9.5);
    """)
    conn.close()
    return path


def _run(path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()


def test_fingerprint_ignores_rows_and_sees_columns(shop):
    before = _fingerprint(shop)
    assert len(before) == 64 and before == _fingerprint(shop)
    _run(shop, "INSERT INTO customer VALUES (3, 'Cy', 'Lima'); DELETE FROM purchase;")
    assert _fingerprint(shop) == before  # new rows, new sample values, new row counts: same schema
    _run(shop, "ALTER TABLE customer ADD COLUMN email TEXT")
    added = _fingerprint(shop)
    assert added != before
    _run(shop, "ALTER TABLE customer RENAME COLUMN email TO mail")
    assert _fingerprint(shop) not in (before, added)
    _run(shop, "ALTER TABLE customer DROP COLUMN mail")
    assert _fingerprint(shop) == before  # back to the same shape


def test_fingerprint_sees_types_and_keys_but_not_comments_or_column_order():
    def schema(id_type="INTEGER", pk=("id",), fks=(), comment=None, reverse=False):
        cols = [Column("id", id_type, primary_key=True, samples=(1, 2)), Column("name", "TEXT", comment=comment)]
        table = Table("t", tuple(reversed(cols) if reverse else cols), pk, fks, comment, row_count=5)
        return Schema("sqlite", (table, Table("u", (Column("t_id", "INTEGER"),))))

    base = schema_fingerprint(schema())
    assert schema_fingerprint(schema(comment="people", reverse=True)) == base
    assert schema_fingerprint(schema(id_type="TEXT")) != base
    assert schema_fingerprint(schema(pk=())) != base
    assert schema_fingerprint(schema(fks=(ForeignKey(("id",), "u", ("t_id",)),))) != base
    tables = schema().tables
    assert schema_fingerprint(Schema("sqlite", tables[::-1])) == base
    assert schema_fingerprint(Schema("duckdb", tables)) != base  # the same shape in another dialect


def test_key_of_one_file_by_different_paths_is_equal(shop, tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    link = tmp_path / "sub" / "link.sqlite"
    link.symlink_to(shop)
    monkeypatch.chdir(tmp_path / "sub")
    keys = set()
    for url in ("../shop.sqlite", "./../sub/../shop.sqlite", f"sqlite:///{shop}", "sqlite:///../shop.sqlite",
                "link.sqlite"):
        with open_database(url) as db:
            keys.add(database_key(db))
    assert keys == {f"sqlite:{shop.resolve()}"}
    copy = tmp_path / "copy.sqlite"
    shutil.copy(shop, copy)
    with open_database(str(copy)) as db:
        assert database_key(db) != f"sqlite:{shop.resolve()}"
        assert schema_fingerprint(db.schema()) == _fingerprint(shop)  # but the copy's schema is the same


def test_duckdb_key(duckdb_testdb):
    with open_database(duckdb_testdb.url) as db:
        assert database_key(db) == f"duckdb:{db.path}" and db.path.is_absolute()


@pytest.mark.parametrize(("dialect", "url", "key"), [
    ("postgres", "postgresql://ann:s3cret@DB.example.com:6543/sales", "postgres://db.example.com:6543/sales"),
    ("postgres", "postgres://ann:***@127.0.0.1/sales", "postgres://localhost:5432/sales"),
    ("postgres", "postgresql://bob@/sales?host=/var/run/postgresql", "postgres://localhost:5432/sales"),
    ("postgres", "postgresql://bob:pw@h1:5433,h2/app", "postgres://h1:5433,h2:5432/app"),
    ("postgres", "postgresql://bob:pw@localhost", "postgres://localhost:5432/bob"),
    ("mysql", "mysql://root:hunter2@[::1]:3307/shop", "mysql://localhost:3307/shop"),
    ("mysql", "mysql+pymysql://root:hunter2@db:3306/shop", "mysql://db:3306/shop"),
])
def test_server_key_has_location_and_no_credentials(dialect, url, key):
    assert database_key(SimpleNamespace(dialect=dialect, url=url)) == key


@pytest.mark.postgres
def test_postgres_key_has_no_password(postgres_testdb):
    with open_database(postgres_testdb.url) as db:
        key = database_key(db)
    assert key.startswith("postgres://") and key.endswith(postgres_testdb.url.rsplit("/", 1)[1])
    user_part = postgres_testdb.url.split("://", 1)[1].split("@", 1)[0]
    with_password = postgres_testdb.url.replace(f"{user_part}@", f"{user_part.split(':')[0]}:hunter2@", 1)
    try:
        db = open_database(with_password)
    except Exception as exc:  # a server that checks passwords refuses this one: the key is still computed
        pytest.skip(f"the server refuses the made-up password: {exc}")
    with db:
        assert database_key(db) == key and "hunter2" not in key and "***" not in key
