"""The state store: examples and notes per database key and schema fingerprint, idempotent adds, several
processes writing at once, and one clear error for a state directory that cannot be used. Tests taking the
`store` fixture run on SQLite and on PostgreSQL (tests/store/conftest.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sqlwright.config import load_settings
from sqlwright.errors import ExampleRejected, StateStoreError, UserError
from sqlwright.store import SCHEMA_VERSION, STATE_FILE, Note, StoredExample, open_state_store

KEY = "sqlite:/data/shop.db"
FP = "f" * 64


def test_state_dir_setting_follows_env_and_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("SQLWRIGHT_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load_settings().state_dir == tmp_path / "xdg" / "sqlwright"
    monkeypatch.setenv("SQLWRIGHT_STATE_DIR", str(tmp_path / "mine"))
    assert load_settings().state_dir == tmp_path / "mine"
    assert load_settings(state_dir=tmp_path / "flag").state_dir == tmp_path / "flag"


def test_opens_in_the_state_dir_with_wal_and_a_schema_version(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLWRIGHT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SQLWRIGHT_STATE_URL", raising=False)
    store = open_state_store(load_settings())
    path = tmp_path / "state" / STATE_FILE
    assert path.is_file()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()
    assert store.schema_version == SCHEMA_VERSION
    store.close()


def test_add_and_list_examples(store):
    example = store.add_example(KEY, FP, "  How many singers?\n", " SELECT count(*) FROM singer ",
                                provenance={"model": "qwen", "seed": 3})
    assert isinstance(example, StoredExample)
    assert (example.database, example.schema_fingerprint, example.question, example.sql) == (
        KEY, FP, "How many singers?", "SELECT count(*) FROM singer")
    assert example.source == "taught" and example.verified is True and example.provenance == {"model": "qwen", "seed": 3}
    other = store.add_example(KEY, FP, "Oldest singer?", "SELECT name FROM singer ORDER BY age DESC LIMIT 1",
                              source="synthesized", verified=False)
    assert [e.id for e in store.examples(KEY)] == [example.id, other.id]
    assert store.examples("sqlite:/elsewhere.db") == []
    assert store.examples(KEY)[1].verified is False


def test_add_example_is_idempotent_and_taught_upgrades_synthesized(store):
    first = store.add_example(KEY, FP, "How many?", "SELECT 1", source="synthesized", verified=False,
                              provenance={"style": "vague"})
    again = store.add_example(KEY, FP, "How many? ", "\nSELECT 1", source="synthesized", verified=False)
    assert again == first and len(store.examples(KEY)) == 1
    taught = store.add_example(KEY, FP, "How many?", "SELECT 1")
    assert taught.id == first.id and taught.source == "taught" and taught.verified is True
    assert taught.provenance == {"style": "vague"}  # the first provenance is kept
    # A synthesized copy of a taught pair does not downgrade it.
    assert store.add_example(KEY, FP, "How many?", "SELECT 1", source="synthesized", verified=False).source == "taught"
    assert [(e.source, e.verified) for e in store.examples(KEY)] == [("taught", True)]
    # The same pair for another database is another example.
    assert store.add_example("sqlite:/other.db", FP, "How many?", "SELECT 1").id != first.id


def test_examples_fall_back_to_the_schema_fingerprint(store):
    a = store.add_example("sqlite:/a.db", FP, "Q1", "SELECT 1")
    b = store.add_example("sqlite:/b.db", FP, "Q2", "SELECT 2")
    store.add_example("sqlite:/c.db", "0" * 64, "Q3", "SELECT 3")
    # A copy of a.db at another path, same schema: sees the examples of every database with that schema.
    assert [e.id for e in store.examples("sqlite:/copy.db", schema_fingerprint=FP)] == [a.id, b.id]
    assert store.examples("sqlite:/copy.db") == []
    # The same pair stored for two databases is listed once, the asking database's own row first.
    own = store.add_example("sqlite:/copy.db", FP, "Q1", "SELECT 1")
    listed = store.examples("sqlite:/copy.db", schema_fingerprint=FP)
    assert [e.id for e in listed] == [b.id, own.id] and {e.question for e in listed} == {"Q1", "Q2"}


def test_remove_example_only_for_its_database(store):
    a = store.add_example("sqlite:/a.db", FP, "Q1", "SELECT 1")
    assert store.remove_example("sqlite:/b.db", a.id) is False
    assert store.remove_example("sqlite:/b.db", a.id, schema_fingerprint="0" * 64) is False
    assert store.remove_example("sqlite:/b.db", a.id, schema_fingerprint=FP) is True  # listed there, removable
    assert store.examples("sqlite:/a.db") == []
    assert store.remove_example("sqlite:/a.db", a.id) is False
    with pytest.raises(UserError):
        store.remove_example("sqlite:/a.db", "1")  # type: ignore[arg-type]


@pytest.mark.parametrize(("question", "sql", "kwargs", "message"), [
    ("   ", "SELECT 1", {}, "question is empty"),
    ("Q", "", {}, "SQL is empty"),
    ("Q", "SELECT 1", {"source": "guessed"}, "unknown example source 'guessed'"),
    ("Q", "SELECT 1", {"provenance": ["model"]}, "provenance must be a JSON object"),
    ("Q", "SELECT 1", {"provenance": {"seed": object()}}, "provenance is not JSON"),
])
def test_add_example_refuses_bad_input(store, question, sql, kwargs, message):
    with pytest.raises(ExampleRejected, match=message):
        store.add_example(KEY, FP, question, sql, **kwargs)
    assert store.examples(KEY) == []


def test_created_can_be_given_for_imports(store):
    assert store.add_example(KEY, FP, "Q", "SELECT 1", created=1_700_000_000.5).created == 1_700_000_000.5


def test_notes(store):
    note = store.add_note(KEY, FP, " An active customer ordered in the last 90 days. ")
    assert isinstance(note, Note) and note.text == "An active customer ordered in the last 90 days."
    assert store.add_note(KEY, FP, "An active customer ordered in the last 90 days.") == note
    second = store.add_note(KEY, FP, "Revenue excludes cancelled orders.")
    assert [n.id for n in store.notes(KEY)] == [note.id, second.id]
    assert [n.id for n in store.notes("sqlite:/copy.db", schema_fingerprint=FP)] == [note.id, second.id]
    assert store.notes("sqlite:/copy.db") == []
    assert store.remove_note("sqlite:/copy.db", note.id) is False
    assert store.remove_note(KEY, note.id) is True
    assert [n.text for n in store.notes(KEY)] == ["Revenue excludes cancelled orders."]
    with pytest.raises(UserError, match="empty"):
        store.add_note(KEY, FP, "  ")


def test_data_survives_reopening(state_place):
    with open_state_store(state_place) as s:
        s.add_example(KEY, FP, "Q", "SELECT 1", provenance={"k": [1, 2]})
        s.add_note(KEY, FP, "n")
    with open_state_store(state_place) as s:
        assert [(e.question, e.provenance) for e in s.examples(KEY)] == [("Q", {"k": [1, 2]})]
        assert [n.text for n in s.notes(KEY)] == ["n"]


def test_closed_store_says_so(state_place):
    s = open_state_store(state_place)
    s.close()
    with pytest.raises(StateStoreError, match="closed"):
        s.examples(KEY)


# --- several processes ----------------------------------------------------------------------------
def _writer(state_dir: str, worker: int, count: int, start) -> None:
    start.wait(60)  # all four create the state directory and file, and write, at the same moment
    with open_state_store(state_dir) as s:
        for i in range(count):
            s.add_example(KEY, FP, f"question {worker}-{i}", f"SELECT {i}")
            s.add_example(KEY, FP, f"shared {i}", f"SELECT {i}", source="synthesized", verified=False)
            s.add_note(KEY, FP, f"note {i}")


def test_four_processes_add_at_once_into_a_new_state_dir(tmp_path):
    state_dir = tmp_path / "fresh" / "state"  # created by whichever process comes first
    count = 40
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    workers = [ctx.Process(target=_writer, args=(str(state_dir), w, count, start)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with open_state_store(state_dir) as s:
        examples = s.examples(KEY)
        questions = [e.question for e in examples]
        assert len(questions) == len(set(questions)) == 4 * count + count  # each shared pair stored once
        assert len(s.notes(KEY)) == count
        assert len({e.id for e in examples}) == len(examples)


# --- a state directory that cannot be used --------------------------------------------------------
def test_state_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(StateStoreError, match=r"is a file, not a folder.*SQLWRIGHT_STATE_DIR"):
        open_state_store(blocker)
    with pytest.raises(StateStoreError, match="cannot create the state directory"):
        open_state_store(blocker / "below")


def test_corrupt_state_file(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"this is not a SQLite database at all" * 200)
    with pytest.raises(StateStoreError, match="is corrupt") as info:
        open_state_store(tmp_path)
    assert "\n" not in str(info.value)


def test_state_file_from_a_newer_sqlwright(tmp_path):
    with open_state_store(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / STATE_FILE)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StateStoreError, match="newer sqlwright"):
        open_state_store(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_unwritable_state_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StateStoreError, match="not writable"):
            open_state_store(locked)
    finally:
        locked.chmod(0o700)


def test_unusable_state_dir_is_one_line_and_exit_2_in_the_cli(tmp_path, sqlite_testdb):
    blocker = tmp_path / "state"
    blocker.write_text("x")
    env = {**os.environ, "SQLWRIGHT_STATE_DIR": str(blocker)}
    script = textwrap.dedent("""
        from sqlwright.cli import main
        main()
    """)
    result = subprocess.run([sys.executable, "-c", script, "examples", "list", sqlite_testdb.url],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "state directory" in lines[0] and "Traceback" not in result.stderr


def test_store_package_imports_nothing_above_it():
    code = ("import sys, sqlwright.store; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('sqlwright.'))))")
    result = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).parent)
    loaded = json.loads(result.stdout)
    assert not [m for m in loaded if m.split(".")[1] in ("db", "llm", "pipeline", "api", "cli")], loaded
