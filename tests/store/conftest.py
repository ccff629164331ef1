"""The state store's tests run on both of its engines: a SQLite state file in a fresh folder, and a
PostgreSQL database created for each test module (`sqlwright_state_test_<pid>_<module>`, dropped at the
end; the store's schema is dropped before each test so that every test starts from an empty store).
PostgreSQL tests skip with the reason when the server is not reachable."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from sqlwright.store import PG_SCHEMA, StateStore, open_state_store

PG_ADMIN_URL = os.environ.get("SQLWRIGHT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_url(dbname: str) -> str:
    """The admin URL pointed at database `dbname`."""
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{dbname}"


def pg_run(url: str, sql: str) -> list[tuple]:
    """Run one statement on `url` in its own autocommit session (as an administrator would)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="session")
def pg():
    """The PostgreSQL helpers for tests: `pg.run(url, sql)`, `pg.url(dbname)`."""
    return SimpleNamespace(run=pg_run, url=pg_url)


@pytest.fixture(scope="module")
def pg_state_url(request) -> str:
    """The URL of a fresh PostgreSQL database for this test module (skips when the server is down)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        server = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}")
    name = f"sqlwright_state_test_{os.getpid()}_{request.module.__name__.rpartition('.')[2]}"[:63]
    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.execute(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    with contextlib.suppress(psycopg.Error):
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.close()


@pytest.fixture()
def fresh_pg_state_url(pg_state_url: str) -> str:
    """The module's PostgreSQL database with no state in it yet (the store's schema dropped)."""
    pg_run(pg_state_url, f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')
    return pg_state_url


ENGINES = [pytest.param("sqlite", id="sqlite"),
           pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def state_place(request, tmp_path) -> str:
    """Where an empty state store lives, once per engine: a state folder, or a PostgreSQL URL."""
    if request.param == "postgres":
        return request.getfixturevalue("fresh_pg_state_url")
    return str(tmp_path / "state")


@pytest.fixture()
def open_store(state_place: str) -> Callable[[], StateStore]:
    """Opens a store on the test's state place (another server or process would open the same); each store
    opened is closed after the test."""
    opened: list[StateStore] = []

    def open_one() -> StateStore:
        store = open_state_store(state_place)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture()
def store(open_store) -> StateStore:
    """An empty state store, once on SQLite and once on PostgreSQL."""
    return open_store()
