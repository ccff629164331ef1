"""History and feedback in the state store, on SQLite and on PostgreSQL: entries kept as shown (rows capped,
cells JSON-safe), listed newest first by page, conversations in order, feedback only on known entries, and
an older SQLite state file (schema version 1) brought up to date in place."""

from __future__ import annotations

import datetime
import json
import sqlite3
import uuid
from decimal import Decimal

import pytest

from sqlwright.errors import StateStoreError, UnknownHistoryEntry, UserError
from sqlwright.store import SCHEMA_VERSION, STATE_FILE, Feedback, HistoryEntry, json_safe, open_state_store

KEY = "sqlite:/data/shop.db"
OTHER = "postgres://localhost:5432/shop"
FP = "f" * 64


def _add(store, question: str = "How many singers?", **kwargs) -> HistoryEntry:
    values = {"database": KEY, "label": "shop", "question": question, "sql": "SELECT count(*) FROM singer",
              "columns": ["n"], "rows": [(5,)]}
    values.update(kwargs)
    return store.add_history(**values)


def test_add_history_returns_the_entry_and_reads_back_the_same(store):
    entry = _add(store, confidence=0.8, conversation_id="c1", summary="There are 5 singers.",
                 chart={"kind": "bar", "x": {"field": "n", "type": "quantitative"}},
                 timings={"generate": 1.25, "execute": 0.01}, created=1_700_000_000.25)
    assert isinstance(entry, HistoryEntry)
    assert len(entry.id) == 32 and uuid.UUID(hex=entry.id).version == 4
    assert (entry.database, entry.label, entry.question, entry.sql) == (
        KEY, "shop", "How many singers?", "SELECT count(*) FROM singer")
    assert entry.columns == ("n",) and entry.rows == ((5,),) and entry.truncated is False
    assert entry.source == "ask" and entry.abstained is False and entry.reason is None
    assert store.history_entry(entry.id) == entry
    data = entry.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["rows"] == [[5]] and data["timings"] == {"generate": 1.25, "execute": 0.01}
    assert data["chart"]["kind"] == "bar" and data["created"] == 1_700_000_000.25
    assert store.history_entry("0" * 32) is None
    assert store.history_entry(None) is None  # type: ignore[arg-type]


def test_an_abstention_and_an_sql_run_are_entries_too(store):
    abstained = _add(store, question="Who will win?", sql=None, columns=[], rows=[], abstained=True,
                     reason="the candidates disagree", confidence=0.2)
    ran = _add(store, question="", sql="SELECT 1 AS one", columns=["one"], rows=[[1]], source="sql")
    assert store.history_entry(abstained.id).reason == "the candidates disagree"
    assert store.history_entry(abstained.id).sql is None and store.history_entry(abstained.id).abstained
    assert store.history_entry(ran.id).source == "sql" and store.history_entry(ran.id).rows == ((1,),)
    with pytest.raises(UserError, match="unknown history source 'shell'"):
        _add(store, source="shell")


def test_rows_are_capped_at_max_rows(store):
    entry = _add(store, columns=["i"], rows=((i,) for i in range(25)), max_rows=10)
    assert entry.truncated is True and [r[0] for r in entry.rows] == list(range(10))
    stored = store.history_entry(entry.id)
    assert stored.truncated is True and len(stored.rows) == 10
    # Exactly max_rows is not truncated, unless the caller says its result was.
    assert _add(store, rows=[(1,), (2,)], max_rows=2).truncated is False
    assert store.history_entry(_add(store, rows=[(1,)], truncated=True).id).truncated is True
    assert _add(store, rows=[(1,)], max_rows=0).rows == ()


def test_cells_are_made_json_safe(store):
    when = datetime.datetime(2024, 3, 1, 12, 30, tzinfo=datetime.UTC)
    row = (Decimal("9.50"), Decimal("12345678901234567890.123456789"), Decimal("42"),
           datetime.date(2024, 1, 2), when, datetime.time(8, 15), datetime.timedelta(minutes=90), b"\x00\xff",
           memoryview(b"\x01"), uuid.UUID(int=1), float("nan"), float("-inf"), [1, Decimal("2.5")],
           {"a": b"\x02"}, True, None)
    entry = _add(store, columns=[f"c{i}" for i in range(len(row))], rows=[row])
    expected = (9.5, "12345678901234567890.123456789", 42, "2024-01-02", "2024-03-01T12:30:00+00:00",
                "08:15:00", 5400.0, "00ff", "01", "00000000-0000-0000-0000-000000000001", "NaN", "-Infinity",
                [1, 2.5], {"a": "02"}, True, None)
    assert entry.rows == (expected,)
    assert store.history_entry(entry.id).rows == (expected,)
    json.dumps(store.history_entry(entry.id).to_dict(), allow_nan=False)  # no NaN, no bytes, no Decimal


def test_unicode_control_characters_and_huge_cells_survive(store):
    huge = "数据库 " * 300_000  # 1.2 M characters, 3.6 MB of UTF-8
    text = "naïve 🦆 \u202e reversed \t tab \x00 nul \ud800 lone"
    entry = _add(store, question="Qui a chanté « Ça » ? 🎤", label="café", columns=["données", "🔢"],
                 rows=[(huge, text), ("", None)], conversation_id="會話", summary="Résumé: ✓")
    stored = store.history_entry(entry.id)
    assert stored == entry
    assert stored.rows[0][0] == huge and stored.question == "Qui a chanté « Ça » ? 🎤"
    # NUL and a lone surrogate cannot be stored as text by every engine: they become U+FFFD, the rest stays.
    assert stored.rows[0][1] == "naïve 🦆 \u202e reversed \t tab \ufffd nul \ufffd lone"
    assert stored.columns == ("données", "🔢") and stored.label == "café"
    assert [e.id for e in store.history(conversation_id="會話")] == [entry.id]
    assert _add(store, question="nul \x00 in the question").question == "nul \ufffd in the question"


def test_history_is_newest_first_and_pages_with_before(store):
    # Pairs of entries share a creation time: the order between them is the order they were stored in.
    entries = [_add(store, question=f"q{i}", created=1_000.0 + i // 2) for i in range(7)]
    assert [e.question for e in store.history()] == [f"q{i}" for i in reversed(range(7))]
    seen, page = [], store.history(limit=3)
    while page:
        seen += [e.question for e in page]
        page = store.history(limit=3, before=page[-1].id)
    assert seen == [f"q{i}" for i in reversed(range(7))]  # every entry once, in order, across pages
    assert [e.question for e in store.history(before=entries[3].id)] == ["q2", "q1", "q0"]
    assert store.history(before=entries[0].id) == []
    with pytest.raises(UnknownHistoryEntry, match="no history entry has the id 'nope'"):
        store.history(before="nope")
    with pytest.raises(UserError, match="limit"):
        store.history(limit=0)


def test_history_filters_by_database_and_conversation(store):
    a1 = _add(store, question="a1", conversation_id="c-a")
    b1 = _add(store, question="b1", database=OTHER, label="pg")
    a2 = _add(store, question="a2", conversation_id="c-a")
    a3 = _add(store, question="a3")
    assert [e.id for e in store.history(database=KEY)] == [a3.id, a2.id, a1.id]
    assert [e.id for e in store.history(database=OTHER)] == [b1.id]
    assert [e.id for e in store.history(database=KEY, conversation_id="c-a")] == [a2.id, a1.id]
    assert store.history(database="sqlite:/nowhere.db") == []
    assert [e.id for e in store.history(limit=2)] == [a3.id, a2.id]


def test_conversation_is_the_last_turns_oldest_first(store):
    turns = [_add(store, question=f"turn {i}", conversation_id="chat-1") for i in range(5)]
    _add(store, question="elsewhere", conversation_id="chat-2")
    assert [e.question for e in store.conversation("chat-1")] == [f"turn {i}" for i in range(5)]
    assert [e.id for e in store.conversation("chat-1", limit=2)] == [turns[3].id, turns[4].id]
    assert store.conversation("no-such-chat") == []


def test_feedback_on_an_entry(store):
    entry = _add(store)
    up = store.add_feedback(entry.id, "up", example_id=7, comment="exactly right")
    assert isinstance(up, Feedback)
    assert (up.history_id, up.rating, up.example_id, up.comment, up.corrected_sql) == (
        entry.id, "up", 7, "exactly right", None)
    down = store.add_feedback(entry.id, "down", corrected_sql="SELECT count(DISTINCT name) FROM singer")
    assert down.id != up.id and down.created >= up.created
    assert store.feedback(entry.id) == [up, down]
    assert store.feedback(_add(store).id) == [] and store.feedback("nope") == []
    assert json.loads(json.dumps(down.to_dict())) == down.to_dict()


def test_feedback_on_an_unknown_entry_is_refused(store):
    entry = _add(store)
    with pytest.raises(UnknownHistoryEntry, match="no history entry has the id 'f00'") as info:
        store.add_feedback("f00", "up")
    assert isinstance(info.value, StateStoreError) and isinstance(info.value, UserError)
    with pytest.raises(UnknownHistoryEntry):
        store.add_feedback(None, "up")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="a rating is one of up, down, not 'meh'"):
        store.add_feedback(entry.id, "meh")
    with pytest.raises(UserError, match="example id"):
        store.add_feedback(entry.id, "up", example_id="3")  # type: ignore[arg-type]
    assert store.feedback(entry.id) == [] and store.feedback("f00") == []


def test_json_safe_leaves_plain_json_alone():
    assert json_safe({"a": [1, 2.5, "x", None, True]}) == {"a": [1, 2.5, "x", None, True]}
    assert json_safe(Decimal("0.1")) == 0.1 and json_safe(Decimal("1E+3")) == 1000
    assert json_safe(Decimal("NaN")) == "NaN" and json_safe(object.__new__(object)).startswith("<object")


# --- an older state file ------------------------------------------------------------------------------
# What sqlwright wrote as schema version 1 (before history and feedback), kept here as it was.
_VERSION_1 = [
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE examples (id INTEGER PRIMARY KEY, db_key TEXT NOT NULL, schema_fingerprint TEXT NOT NULL, "
    "question TEXT NOT NULL, sql_text TEXT NOT NULL, source TEXT NOT NULL, verified INTEGER NOT NULL, "
    "created DOUBLE PRECISION NOT NULL, provenance TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE)",
    "CREATE INDEX examples_db_key ON examples (db_key)",
    "CREATE INDEX examples_fingerprint ON examples (schema_fingerprint)",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, db_key TEXT NOT NULL, schema_fingerprint TEXT NOT NULL, "
    "body TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, key_hash TEXT NOT NULL UNIQUE)",
    "CREATE INDEX notes_db_key ON notes (db_key)",
    "CREATE INDEX notes_fingerprint ON notes (schema_fingerprint)",
    "INSERT INTO meta VALUES ('schema_version', '1')",
]


def test_a_version_1_state_file_is_migrated_in_place(tmp_path):
    path = tmp_path / STATE_FILE
    conn = sqlite3.connect(path)
    for statement in _VERSION_1:
        conn.execute(statement)
    conn.execute("INSERT INTO examples VALUES (1, ?, ?, 'Q', 'SELECT 1', 'taught', 1, 1.5, '{}', 'h1')",
                 (KEY, FP))
    conn.execute("INSERT INTO notes VALUES (1, ?, ?, 'a note', 2.5, 'h2')", (KEY, FP))
    conn.commit()
    conn.close()

    with open_state_store(tmp_path) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert [(e.id, e.question, e.sql, e.created) for e in store.examples(KEY)] == [
            (1, "Q", "SELECT 1", 1.5)]
        assert [n.text for n in store.notes(KEY)] == ["a note"]
        entry = _add(store)
        store.add_feedback(entry.id, "up")
        assert store.add_example(KEY, FP, "Q2", "SELECT 2").id == 2
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "examples", "notes", "history", "feedback"} <= tables
    assert conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == ("2",)
    conn.close()
    with open_state_store(tmp_path) as store:  # opening again changes nothing
        assert [e.question for e in store.history()] == ["How many singers?"]
        assert len(store.examples(KEY)) == 2
