"""A small database whose names need quoting, in any dialect: Northwind's `order details` with columns
`select`, `Unit Price`, `naïve`, `it's` and `OrderDate` (mixed case: PostgreSQL folds it unquoted),
beside a plain `products` table it references. Shared by the rendering and the model tests."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

ROWS = 3
TOTAL_UNIT_PRICE = 47  # 18 + 19 + 10

DIALECTS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("duckdb", id="duckdb"),
]


def _statements(dialect: str) -> list[str]:
    q = "`" if dialect == "mysql" else '"'
    text = "VARCHAR(100)" if dialect == "mysql" else "TEXT"
    money = "REAL" if dialect == "sqlite" else "DECIMAL(10, 2)"
    return [
        f"CREATE TABLE products (product_id INTEGER PRIMARY KEY, name {text})",
        f"CREATE TABLE {q}order details{q} (id INTEGER PRIMARY KEY, "
        f"product_id INTEGER REFERENCES products (product_id), {q}select{q} {text}, "
        f"{q}Unit Price{q} {money}, {q}naïve{q} {text}, {q}it's{q} {text}, {q}OrderDate{q} {text})",
        "INSERT INTO products VALUES (1, 'Chai'), (2, 'Chang'), (3, 'Aniseed Syrup')",
        f"INSERT INTO {q}order details{q} VALUES (1, 1, 'express', 18, 'yes', 'a', '2024-01-02'), "
        "(2, 2, 'standard', 19, 'no', 'b', '2024-01-03'), (3, 3, 'express', 10, 'yes', 'c', '2024-01-04')",
    ]


@contextlib.contextmanager
def quoted_database(dialect: str, folder: Path, server=None) -> Iterator[str]:
    """Create the database in `dialect` and yield its URL: a file in `folder`, or on PostgreSQL and
    MariaDB a throwaway database beside `server` (conftest's `postgres_testdb` / `mysql_testdb`, whose
    admin connection creates it), dropped afterwards."""
    if dialect == "sqlite":
        path = folder / "quoted.sqlite"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            for statement in _statements(dialect):
                conn.execute(statement)
            conn.commit()
        yield f"sqlite:///{path}"
        return
    if dialect == "duckdb":
        duckdb = pytest.importorskip("duckdb")
        path = folder / "quoted.duckdb"
        with duckdb.connect(str(path)) as conn:
            for statement in _statements(dialect):
                conn.execute(statement)
        yield f"duckdb:///{path}"
        return
    base, _, home = server.url.rpartition("/")
    name = f"{home}_quoted"
    admin = server.admin
    admin.run(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if dialect == "postgres" else ""))
    try:
        if dialect == "postgres":
            import psycopg

            admin.run(f"CREATE DATABASE {name}")
            with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
                for statement in _statements(dialect):
                    conn.execute(statement)
                conn.execute("ANALYZE")
        else:
            admin.run(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
            try:
                admin.run(f"USE {name}")
                for statement in _statements(dialect):
                    admin.run(statement)
            finally:
                admin.run(f"USE {home}")
        yield f"{base}/{name}"
    finally:
        admin.run(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if dialect == "postgres" else ""))


@contextlib.contextmanager
def opened_quoted_database(request, tmp_path_factory, *, timeout: float):
    """`quoted_database` for the fixture's dialect parameter (the servers' fixtures for postgres/mysql),
    opened through `open_database`."""
    from sqlwright.db import open_database

    dialect = request.param
    server = request.getfixturevalue(f"{dialect}_testdb") if dialect in ("postgres", "mysql") else None
    with quoted_database(dialect, tmp_path_factory.mktemp("quoted"), server) as url:
        db = open_database(url, timeout=timeout)
        try:
            yield db
        finally:
            db.close()
