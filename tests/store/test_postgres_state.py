"""The state store in a PostgreSQL database (SQLWRIGHT_STATE_URL): two servers on one URL see each other's
writes at once, servers starting together migrate once without error, a dropped session is reconnected,
and a URL that cannot be used is one line that never shows the password."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest

from sqlwright.config import load_settings
from sqlwright.errors import StateStoreError, UnknownHistoryEntry
from sqlwright.store import (
    PG_SCHEMA,
    SCHEMA_VERSION,
    PostgresStateConnection,
    StateStore,
    open_state_store,
)

pytestmark = pytest.mark.postgres

KEY = "postgres://localhost:5432/shop"
FP = "e" * 64
SECRET = "s3cr3t-Passw0rd"


@pytest.fixture()
def two_stores(fresh_pg_state_url):
    """Two stores on one URL, as two servers behind a load balancer would have."""
    first, second = open_state_store(fresh_pg_state_url), open_state_store(fresh_pg_state_url)
    yield first, second
    first.close()
    second.close()


def test_the_store_lives_in_its_own_schema(fresh_pg_state_url, pg):
    with open_state_store(fresh_pg_state_url) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert "***" not in store.location and store.location == fresh_pg_state_url
    tables = {r[0] for r in pg.run(fresh_pg_state_url, f"SELECT tablename FROM pg_tables WHERE schemaname = "
                                                        f"'{PG_SCHEMA}'")}
    assert tables == {"meta", "examples", "notes", "history", "feedback"}
    assert pg.run(fresh_pg_state_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_state_url_setting_chooses_postgres(fresh_pg_state_url, pg, monkeypatch, tmp_path):
    monkeypatch.setenv("SQLWRIGHT_STATE_URL", fresh_pg_state_url)
    monkeypatch.setenv("SQLWRIGHT_STATE_DIR", str(tmp_path / "unused"))
    settings = load_settings()
    assert settings.state_url == fresh_pg_state_url
    with open_state_store(settings) as store:
        assert isinstance(store._db, PostgresStateConnection)
        store.add_note(KEY, FP, "stored in PostgreSQL")
    assert not (tmp_path / "unused").exists()
    assert pg.run(fresh_pg_state_url, f"SELECT body FROM {PG_SCHEMA}.notes") == [("stored in PostgreSQL",)]
    monkeypatch.delenv("SQLWRIGHT_STATE_URL")
    with open_state_store(load_settings()) as store:  # without the URL: the state file again
        assert store.notes(KEY) == [] and (tmp_path / "unused" / "state.db").is_file()


def test_two_stores_see_each_others_writes_at_once(two_stores):
    first, second = two_stores
    example = first.add_example(KEY, FP, "How many orders?", "SELECT count(*) FROM orders")
    assert second.examples(KEY) == [example]
    note = second.add_note(KEY, FP, "An order is paid when paid_at is set.")
    assert first.notes(KEY) == [note]
    entry = first.add_history(database=KEY, label="shop", question="How many orders?", sql=example.sql,
                              columns=["count"], rows=[(3,)], conversation_id="conv")
    assert second.history_entry(entry.id) == entry and second.history() == [entry]
    follow_up = second.add_history(database=KEY, label="shop", question="and paid ones?", sql="SELECT 2",
                                   columns=["count"], rows=[(2,)], conversation_id="conv")
    assert [e.id for e in first.conversation("conv")] == [entry.id, follow_up.id]
    feedback = second.add_feedback(entry.id, "up", example_id=example.id)
    assert first.feedback(entry.id) == [feedback]
    assert first.remove_example(KEY, example.id) is True
    assert second.examples(KEY) == [] and second.remove_example(KEY, example.id) is False
    with pytest.raises(UnknownHistoryEntry):
        first.add_feedback("a" * 32, "down")


def test_add_example_is_idempotent_across_two_stores(two_stores):
    first, second = two_stores
    synthesized = first.add_example(KEY, FP, "Q", "SELECT 1", source="synthesized", verified=False)
    again = second.add_example(KEY, FP, " Q ", "SELECT 1 ", source="synthesized", verified=False)
    assert again == synthesized
    taught = second.add_example(KEY, FP, "Q", "SELECT 1")
    assert taught.id == synthesized.id and (taught.source, taught.verified) == ("taught", True)
    assert [(e.id, e.source) for e in first.examples(KEY)] == [(synthesized.id, "taught")]
    assert first.add_note(KEY, FP, "same note") == second.add_note(KEY, FP, " same note ")
    assert len(second.notes(KEY)) == 1


def _server(url: str, worker: int, count: int, start) -> None:
    start.wait(60)  # every process connects, migrates and writes at the same moment
    with open_state_store(url) as store:
        for i in range(count):
            store.add_example(KEY, FP, f"question {worker}-{i}", f"SELECT {i}")
            store.add_example(KEY, FP, f"shared {i}", f"SELECT {i}", source="synthesized", verified=False)
            entry = store.add_history(database=KEY, label="shop", question=f"q {worker}-{i}", sql="SELECT 1",
                                      columns=["x"], rows=[(i,)], conversation_id=f"w{worker}")
            store.add_feedback(entry.id, "up")


def test_processes_starting_at_once_on_a_fresh_database_migrate_once(fresh_pg_state_url, pg):
    workers, count = 4, 15
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers)
    processes = [ctx.Process(target=_server, args=(fresh_pg_state_url, w, count, start))
                 for w in range(workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    assert [p.exitcode for p in processes] == [0] * workers
    with open_state_store(fresh_pg_state_url) as store:
        assert store.schema_version == SCHEMA_VERSION
        questions = [e.question for e in store.examples(KEY)]
        assert len(questions) == len(set(questions)) == workers * count + count  # each shared pair once
        history = store.history(limit=1000)
        assert len(history) == len({e.id for e in history}) == workers * count  # none lost, none twice
        for w in range(workers):
            assert [e.question for e in store.conversation(f"w{w}", limit=100)] == [
                f"q {w}-{i}" for i in range(count)]
        assert all(len(store.feedback(e.id)) == 1 for e in history)
    assert pg.run(fresh_pg_state_url, f"SELECT value FROM {PG_SCHEMA}.meta") == [(str(SCHEMA_VERSION),)]


def test_a_dropped_session_is_reconnected(fresh_pg_state_url, pg):
    with open_state_store(fresh_pg_state_url) as store:
        store.add_note(KEY, FP, "before")
        pg.run(fresh_pg_state_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = 'sqlwright' AND pid <> pg_backend_pid()")
        with pytest.raises(StateStoreError):  # the call that finds the session gone fails, one line
            store.notes(KEY)
        assert [n.text for n in store.notes(KEY)] == ["before"]  # the next one reconnects
        store.add_note(KEY, FP, "after")
        assert len(store.notes(KEY)) == 2


def test_a_newer_schema_is_refused(fresh_pg_state_url, pg):
    with open_state_store(fresh_pg_state_url):
        pass
    pg.run(fresh_pg_state_url, f"UPDATE {PG_SCHEMA}.meta SET value = '{SCHEMA_VERSION + 1}'")
    with pytest.raises(StateStoreError, match=r"state database .* newer sqlwright.*SQLWRIGHT_STATE_URL"):
        open_state_store(fresh_pg_state_url)


# --- a URL that cannot be used ---------------------------------------------------------------------
def _with_password(url: str) -> str:
    scheme, _, rest = url.partition("://")
    user_host = rest.split("@", 1)
    return f"{scheme}://{user_host[0]}:{SECRET}@{user_host[1]}" if len(user_host) == 2 else url


@pytest.mark.parametrize(("make_url", "message"), [
    (lambda pg: f"postgresql://postgres:{SECRET}@127.0.0.1:1/state", r"cannot reach the state database"),
    (lambda pg: _with_password(pg.url("sqlwright_no_such_state_db")),
     r"state database .*sqlwright_no_such_state_db does not exist: create it \(createdb"),
    (lambda pg: f"postgresql://postgres:{SECRET}@127.0.0.1:notaport/state", r"bad state database URL"),
    (lambda pg: f"postgresql://postgres@127.0.0.1/state?password={SECRET}&sslmode=bogus",
     r"bad state database URL .*password=\*\*\*.*invalid sslmode"),
    (lambda pg: f"mysql://root:{SECRET}@127.0.0.1/state", r"is not a PostgreSQL URL"),
], ids=["server-down", "missing-database", "bad-port", "bad-option", "not-postgres"])
def test_an_unusable_url_is_one_line_without_the_password(pg_state_url, pg, make_url, message):
    with pytest.raises(StateStoreError, match=message) as info:
        open_state_store(load_settings(state_url=make_url(pg)))
    text = str(info.value)
    assert "\n" not in text and SECRET not in text and "***" in text, text


def test_cli_uses_the_state_url_and_fails_in_one_line(fresh_pg_state_url, sqlite_testdb, tmp_path):
    env = {**os.environ, "SQLWRIGHT_STATE_URL": fresh_pg_state_url,
           "SQLWRIGHT_STATE_DIR": str(tmp_path / "no")}
    cli = [sys.executable, "-c", "from sqlwright.cli import main; main()"]
    added = subprocess.run([*cli, "examples", "add", sqlite_testdb.url, "How many singers?",
                            "SELECT count(*) FROM singer"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert added.returncode == 0, added.stderr
    with open_state_store(fresh_pg_state_url) as store:
        assert [e.question for e in _all_examples(store)] == ["How many singers?"]
    assert not (tmp_path / "no").exists()
    env["SQLWRIGHT_STATE_URL"] = f"postgresql://postgres:{SECRET}@127.0.0.1:1/state"
    failed = subprocess.run([*cli, "examples", "list", sqlite_testdb.url], capture_output=True, text=True,
                            env=env, timeout=120)
    assert failed.returncode == 2, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "state database" in lines[0] and SECRET not in failed.stderr, failed.stderr


def _all_examples(store: StateStore) -> list:
    keys = [r[0] for r in store._db.execute("SELECT DISTINCT db_key FROM examples")]
    return [e for key in keys for e in store.examples(key)]
