"""The state store: examples (question and SQL pairs) and notes per database, the history of questions
answered and the feedback on them; in the state directory (SQLite), or in the PostgreSQL database of
SQLWRIGHT_STATE_URL when several servers share their state.

    store = open_state_store(settings)
    store.add_example(key, fingerprint, "How many singers?", "SELECT count(*) FROM singer")
    store.examples(key, schema_fingerprint=fingerprint)
    entry = store.add_history(database=key, label="shop", question="How many?", sql="SELECT 1",
                              columns=["n"], rows=[(1,)])
    store.add_feedback(entry.id, "up")

A database is named by its key (dialect and location, no credentials) and its schema fingerprint (see
sqlwright.db.identity): lookups match either, so examples stored for a file still serve a copy of it under
another path, as long as its schema is the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlwright.errors import ExampleRejected, StateStoreError, UnknownHistoryEntry, UserError
from sqlwright.store.connection import (
    PostgresStateConnection,
    SQLiteStateConnection,
    StateConnection,
    is_postgres_url,
)
from sqlwright.store.jsonsafe import clean_text, json_safe, json_safe_rows
from sqlwright.store.types import (
    HISTORY_SOURCES,
    RATINGS,
    SOURCE_RANK,
    SOURCES,
    Feedback,
    HistoryEntry,
    Note,
    StoredExample,
)

if TYPE_CHECKING:
    from sqlwright.config import Settings

log = logging.getLogger(__name__)

STATE_FILE = "state.db"
SCHEMA_VERSION = 2

# Each version's statements, applied in order to bring an older state file up to SCHEMA_VERSION.
# `{id}` is the backend's auto-increment key. `key_hash` (sha256 of the identifying fields) carries the
# uniqueness, because a unique index over long texts is limited in some engines (PostgreSQL's B-tree).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS examples ({id}, db_key TEXT NOT NULL, schema_fingerprint TEXT NOT NULL, "
        "question TEXT NOT NULL, sql_text TEXT NOT NULL, source TEXT NOT NULL, verified INTEGER NOT NULL, "
        "created DOUBLE PRECISION NOT NULL, provenance TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE)",
        "CREATE INDEX IF NOT EXISTS examples_db_key ON examples (db_key)",
        "CREATE INDEX IF NOT EXISTS examples_fingerprint ON examples (schema_fingerprint)",
        "CREATE TABLE IF NOT EXISTS notes ({id}, db_key TEXT NOT NULL, schema_fingerprint TEXT NOT NULL, "
        "body TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, key_hash TEXT NOT NULL UNIQUE)",
        "CREATE INDEX IF NOT EXISTS notes_db_key ON notes (db_key)",
        "CREATE INDEX IF NOT EXISTS notes_fingerprint ON notes (schema_fingerprint)",
    ),
    # History: `id` orders entries stored at the same second; `entry_id` (uuid4 hex) names them across
    # servers. Columns, rows, chart and timings are JSON text. Feedback names its entry by `entry_id`.
    2: (
        "CREATE TABLE IF NOT EXISTS history ({id}, entry_id TEXT NOT NULL UNIQUE, db_key TEXT NOT NULL, "
        "label TEXT NOT NULL, question TEXT NOT NULL, sql_text TEXT, columns_json TEXT NOT NULL, "
        "rows_json TEXT NOT NULL, truncated INTEGER NOT NULL, confidence DOUBLE PRECISION NOT NULL, "
        "abstained INTEGER NOT NULL, reason TEXT, conversation_id TEXT, summary TEXT, chart_json TEXT, "
        "timings_json TEXT NOT NULL, source TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS history_created ON history (created, id)",
        "CREATE INDEX IF NOT EXISTS history_db_key ON history (db_key, created, id)",
        "CREATE INDEX IF NOT EXISTS history_conversation ON history (conversation_id, created, id)",
        "CREATE TABLE IF NOT EXISTS feedback ({id}, history_id TEXT NOT NULL, rating TEXT NOT NULL, "
        "corrected_sql TEXT, comment TEXT, example_id BIGINT, created DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS feedback_history ON feedback (history_id, id)",
    ),
}

_EXAMPLE_COLUMNS = "id, db_key, schema_fingerprint, question, sql_text, source, verified, created, provenance"
_NOTE_COLUMNS = "id, db_key, schema_fingerprint, body, created"
_HISTORY_COLUMNS = ("entry_id, db_key, label, question, sql_text, columns_json, rows_json, truncated, "
                    "confidence, abstained, reason, conversation_id, summary, chart_json, timings_json, "
                    "source, created")
_FEEDBACK_COLUMNS = "id, history_id, rating, corrected_sql, comment, example_id, created"


def _key_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _example(row: tuple) -> StoredExample:
    try:
        provenance = json.loads(row[8]) if row[8] else {}
    except ValueError:  # written by hand or damaged: the example is still usable
        provenance = {}
    return StoredExample(id=int(row[0]), database=row[1], schema_fingerprint=row[2], question=row[3],
                         sql=row[4], source=row[5], verified=bool(row[6]), created=float(row[7]),
                         provenance=provenance if isinstance(provenance, dict) else {})


def _note(row: tuple) -> Note:
    return Note(id=int(row[0]), database=row[1], schema_fingerprint=row[2], text=row[3], created=float(row[4]))


def _matching(database: str, schema_fingerprint: str | None) -> tuple[str, list[str]]:
    """The condition (and its parameters) for rows of `database`, or of any database with the same schema."""
    if schema_fingerprint:
        return "(db_key = ? OR schema_fingerprint = ?)", [database, schema_fingerprint]
    return "db_key = ?", [database]


def _prefer_own(rows: list, database: str, identity) -> list:
    """Rows in id order, one per identity: the database's own row wins over a copy stored for another
    database with the same schema."""
    chosen: dict[object, Any] = {}
    for row in rows:
        key = identity(row)
        if key not in chosen or (row.database == database and chosen[key].database != database):
            chosen[key] = row
    return sorted(chosen.values(), key=lambda r: r.id)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ExampleRejected(f"the {what} must be text, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ExampleRejected(f"the {what} is empty")
    return text


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:  # written by hand or damaged: the entry is still listed
        return default


def _history_entry(row: tuple) -> HistoryEntry:
    columns = _loads(row[5], [])
    rows = _loads(row[6], [])
    chart = _loads(row[13], None)
    timings = _loads(row[14], {})
    return HistoryEntry(
        id=row[0], database=row[1], label=row[2], question=row[3], sql=row[4],
        columns=tuple(str(c) for c in columns) if isinstance(columns, list) else (),
        rows=tuple(tuple(r) if isinstance(r, list) else (r,) for r in rows) if isinstance(rows, list) else (),
        truncated=bool(row[7]), confidence=float(row[8]), abstained=bool(row[9]), reason=row[10],
        conversation_id=row[11], summary=row[12], chart=chart if isinstance(chart, dict) else None,
        timings=timings if isinstance(timings, dict) else {}, source=row[15], created=float(row[16]))


def _feedback(row: tuple) -> Feedback:
    return Feedback(id=int(row[0]), history_id=row[1], rating=row[2], corrected_sql=row[3], comment=row[4],
                    example_id=None if row[5] is None else int(row[5]), created=float(row[6]))


def _optional_text(value: object, what: str) -> str | None:
    """Text to store as given (cleaned, see clean_text), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"the {what} must be text, not {type(value).__name__}")
    return clean_text(value)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"the {what} must be a finite number, not {value!r}")
    return float(value)


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"a limit is a whole number of at least 1, not {value!r}")
    return min(value, 2**31 - 1)


class StateStore:
    """Examples and notes per database, the history of answers and feedback on them. Safe to share between
    threads and between processes (and, on PostgreSQL, between servers)."""

    def __init__(self, connection: StateConnection) -> None:
        self._db = connection
        self.location = connection.location
        self._migrate()

    # --- schema --------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._db.transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            rows = self._db.execute("SELECT value FROM meta WHERE name = ?", ("schema_version",))
            what = f"the {self._db.kind} {self.location}"
            try:
                version = int(rows[0][0]) if rows else 0
            except (TypeError, ValueError):
                raise StateStoreError(f"{what} is corrupt (schema version {rows[0][0]!r}): move it away to "
                                      f"start afresh, or set {self._db.setting}") from None
            if version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"{what} was written by a newer sqlwright (schema version {version}; this one knows up "
                    f"to {SCHEMA_VERSION}): upgrade sqlwright or set {self._db.setting}")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                log.info("state store %s: schema version %d -> %d", self.location, step - 1, step)
                for statement in _MIGRATIONS[step]:
                    self._db.execute(statement.format(id=self._db.id_column))
            if version < SCHEMA_VERSION:
                self._db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                                 "SET value = excluded.value", ("schema_version", str(SCHEMA_VERSION)))

    @property
    def schema_version(self) -> int:
        rows = self._db.execute("SELECT value FROM meta WHERE name = ?", ("schema_version",))
        return int(rows[0][0])

    # --- examples ------------------------------------------------------------------------------
    def add_example(self, database: str, schema_fingerprint: str, question: str, sql: str, *,
                    source: str = "taught", verified: bool = True, provenance: dict | None = None,
                    created: float | None = None) -> StoredExample:
        """Store a question–SQL pair for `database` (its key) and return it.

        Idempotent: the same (database, question, SQL), each stripped of surrounding blanks, returns the row
        already stored. Re-adding it upgrades that row: `source` to the higher-ranked of the two (taught >
        feedback > synthesized), `verified` when either is, `schema_fingerprint` to the one given (the pair
        was just added under it). `provenance` is free JSON (model, prompt version, seed, style, …);
        `created` defaults to now (given when importing an export). Raises ExampleRejected for an empty
        question or SQL, an unknown source or provenance that is not a JSON object."""
        question = _text(question, "question")
        sql = _text(sql, "SQL")
        if source not in SOURCE_RANK:
            raise ExampleRejected(f"unknown example source {source!r}: use one of {', '.join(SOURCES)}")
        if provenance is None:
            provenance = {}
        if not isinstance(provenance, dict):
            raise ExampleRejected(f"the provenance must be a JSON object, not {type(provenance).__name__}")
        try:
            provenance_json = json.dumps(provenance, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ExampleRejected(f"the provenance is not JSON: {exc}") from exc
        key = _key_hash(database, question, sql)
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO examples (db_key, schema_fingerprint, question, sql_text, source, verified, created, "
                "provenance, key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING",
                (database, schema_fingerprint, question, sql, source, int(bool(verified)),
                 time.time() if created is None else float(created), provenance_json, key))
            row = _example(self._db.execute(f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE key_hash = ?",
                                            (key,))[0])
            upgraded_source = source if SOURCE_RANK[source] > SOURCE_RANK.get(row.source, -1) else row.source
            upgraded_verified = row.verified or bool(verified)
            if (upgraded_source, upgraded_verified, schema_fingerprint) != (
                    row.source, row.verified, row.schema_fingerprint):
                self._db.execute("UPDATE examples SET source = ?, verified = ?, schema_fingerprint = ? WHERE id = ?",
                                 (upgraded_source, int(upgraded_verified), schema_fingerprint, row.id))
                row = StoredExample(row.id, row.database, schema_fingerprint, row.question, row.sql,
                                    upgraded_source, upgraded_verified, row.created, row.provenance)
        return row

    def examples(self, database: str, *, schema_fingerprint: str | None = None) -> list[StoredExample]:
        """The examples stored for `database`, and for any database whose schema had `schema_fingerprint`
        (the same schema under another path), oldest first; a pair stored for both appears once."""
        where, params = _matching(database, schema_fingerprint)
        rows = [_example(r) for r in self._db.execute(
            f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE {where} ORDER BY id", params)]
        return _prefer_own(rows, database, lambda e: (e.question, e.sql))

    def remove_example(self, database: str, example_id: int, *, schema_fingerprint: str | None = None) -> bool:
        """Delete example `example_id` if it is stored for `database` (or, given `schema_fingerprint`, for a
        database with that schema: what `examples` lists can be removed). True if it was there."""
        return self._remove("examples", database, example_id, schema_fingerprint)

    # --- notes ---------------------------------------------------------------------------------
    def add_note(self, database: str, schema_fingerprint: str, text: str) -> Note:
        """Store a note for `database`; the same text (stripped) again returns the stored note."""
        if not isinstance(text, str) or not text.strip():
            raise UserError("the note is empty")
        body = text.strip()
        key = _key_hash(database, body)
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO notes (db_key, schema_fingerprint, body, created, key_hash) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key_hash) DO NOTHING", (database, schema_fingerprint, body, time.time(), key))
            if schema_fingerprint:
                self._db.execute("UPDATE notes SET schema_fingerprint = ? WHERE key_hash = ?",
                                 (schema_fingerprint, key))
            rows = self._db.execute(f"SELECT {_NOTE_COLUMNS} FROM notes WHERE key_hash = ?", (key,))
        return _note(rows[0])

    def notes(self, database: str, *, schema_fingerprint: str | None = None) -> list[Note]:
        """The notes for `database` and for any database whose schema had `schema_fingerprint`, oldest first."""
        where, params = _matching(database, schema_fingerprint)
        rows = [_note(r) for r in self._db.execute(f"SELECT {_NOTE_COLUMNS} FROM notes WHERE {where} ORDER BY id",
                                                   params)]
        return _prefer_own(rows, database, lambda n: n.text)

    def remove_note(self, database: str, note_id: int, *, schema_fingerprint: str | None = None) -> bool:
        """Delete note `note_id` if it belongs to `database` (or to its schema, as for remove_example)."""
        return self._remove("notes", database, note_id, schema_fingerprint)

    # --- history -------------------------------------------------------------------------------
    def add_history(self, *, database: str, label: str, question: str, sql: str | None,
                    columns: Iterable[object], rows: Iterable[Iterable[object]], truncated: bool = False,
                    confidence: float = 0.0, abstained: bool = False, reason: str | None = None,
                    conversation_id: str | None = None, summary: str | None = None,
                    chart: Mapping[str, object] | None = None, timings: Mapping[str, float] | None = None,
                    source: str = "ask", created: float | None = None, max_rows: int = 1000) -> HistoryEntry:
        """Store what was asked of `database` (its key; `label` the name it was shown under) and answered,
        and return the entry with a new id (uuid4 hex).

        At most `max_rows` rows are kept (`truncated` is set when more were given); every cell, the chart and
        the timings are made JSON-safe (sqlwright.store.jsonsafe), text is cleaned of what no engine stores
        (NUL, lone surrogates). `source` is "ask" (a question) or "sql" (SQL a person ran); `created`
        defaults to now. Raises UserError for a value of the wrong kind."""
        if source not in HISTORY_SOURCES:
            raise UserError(f"unknown history source {source!r}: use one of {', '.join(HISTORY_SOURCES)}")
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
            raise UserError(f"max_rows is a whole number of at least 0, not {max_rows!r}")
        if chart is not None and not isinstance(chart, Mapping):
            raise UserError(f"the chart must be a JSON object, not {type(chart).__name__}")
        if timings is not None and not isinstance(timings, Mapping):
            raise UserError(f"the timings must be a JSON object, not {type(timings).__name__}")
        kept_rows, cut = json_safe_rows(rows, max_rows)
        entry = HistoryEntry(
            id=uuid.uuid4().hex,
            database=_optional_text(database, "database") or "",
            label=_optional_text(label, "label") or "",
            question=_optional_text(question, "question") or "",
            sql=_optional_text(sql, "SQL"),
            columns=tuple(clean_text(str(c)) for c in columns),
            rows=kept_rows,
            truncated=bool(truncated) or cut,
            confidence=_number(confidence, "confidence"),
            abstained=bool(abstained),
            reason=_optional_text(reason, "reason"),
            conversation_id=_optional_text(conversation_id, "conversation id"),
            summary=_optional_text(summary, "summary"),
            chart=json_safe(chart) if chart is not None else None,
            timings={clean_text(str(k)): json_safe(v) for k, v in (timings or {}).items()},
            source=source,
            created=time.time() if created is None else _number(created, "created time"),
        )
        self._db.execute(
            f"INSERT INTO history ({_HISTORY_COLUMNS}) VALUES ({', '.join(['?'] * 17)})",
            (entry.id, entry.database, entry.label, entry.question, entry.sql, _dumps(list(entry.columns)),
             _dumps([list(r) for r in entry.rows]), int(entry.truncated), entry.confidence,
             int(entry.abstained), entry.reason, entry.conversation_id, entry.summary,
             None if entry.chart is None else _dumps(entry.chart), _dumps(entry.timings), entry.source,
             entry.created))
        return entry

    def history_entry(self, entry_id: str) -> HistoryEntry | None:
        """The entry with id `entry_id`, or None."""
        if not isinstance(entry_id, str):
            return None
        rows = self._db.execute(f"SELECT {_HISTORY_COLUMNS} FROM history WHERE entry_id = ?", (entry_id,))
        return _history_entry(rows[0]) if rows else None

    def history(self, *, database: str | None = None, conversation_id: str | None = None, limit: int = 50,
                before: str | None = None) -> list[HistoryEntry]:
        """The newest `limit` entries, newest first: of `database` (its key) and of `conversation_id` when
        given. `before` is an entry's id: only entries older than it are listed (the next page after a page
        that ended with it). Raises UnknownHistoryEntry when `before` names no entry."""
        where, params = ["1 = 1"], []
        if database is not None:
            where.append("db_key = ?")
            params.append(database)
        if conversation_id is not None:
            where.append("conversation_id = ?")
            params.append(conversation_id)
        if before is not None:
            found = self._db.execute("SELECT created, id FROM history WHERE entry_id = ?", (before,)) \
                if isinstance(before, str) else []
            if not found:
                raise UnknownHistoryEntry(f"no history entry has the id {before!r}")
            created, seq = found[0]
            where.append("(created < ? OR (created = ? AND id < ?))")
            params += [created, created, seq]
        rows = self._db.execute(f"SELECT {_HISTORY_COLUMNS} FROM history WHERE {' AND '.join(where)} "
                                "ORDER BY created DESC, id DESC LIMIT ?", [*params, _limit(limit)])
        return [_history_entry(r) for r in rows]

    def conversation(self, conversation_id: str, *, limit: int = 10) -> list[HistoryEntry]:
        """The last `limit` entries of a conversation, oldest first (the turns to send with a follow-up)."""
        return list(reversed(self.history(conversation_id=conversation_id, limit=limit)))

    # --- feedback ------------------------------------------------------------------------------
    def add_feedback(self, history_id: str, rating: str, *, corrected_sql: str | None = None,
                     comment: str | None = None, example_id: int | None = None) -> Feedback:
        """Store a verdict ("up" or "down") on history entry `history_id`, with the SQL that should have
        been written and the example stored from it, if any. Raises UnknownHistoryEntry for an id no entry
        has, UserError for another rating."""
        if rating not in RATINGS:
            raise UserError(f"a rating is one of {', '.join(RATINGS)}, not {rating!r}")
        if example_id is not None and (isinstance(example_id, bool) or not isinstance(example_id, int)
                                       or not -(2**63) <= example_id < 2**63):
            raise UserError(f"an example id is a whole number, not {example_id!r}")
        corrected = _optional_text(corrected_sql, "corrected SQL")
        note = _optional_text(comment, "comment")
        with self._db.transaction():
            if not isinstance(history_id, str) or not self._db.execute(
                    "SELECT 1 FROM history WHERE entry_id = ?", (history_id,)):
                raise UnknownHistoryEntry(f"no history entry has the id {history_id!r}")
            self._db.execute("INSERT INTO feedback (history_id, rating, corrected_sql, comment, example_id, "
                             "created) VALUES (?, ?, ?, ?, ?, ?)",
                             (history_id, rating, corrected, note, example_id, time.time()))
            # The write lock is held (see StateConnection.transaction): the newest row is this one.
            rows = self._db.execute(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE history_id = ? "
                                    "ORDER BY id DESC LIMIT 1", (history_id,))
        return _feedback(rows[0])

    def feedback(self, history_id: str) -> list[Feedback]:
        """The feedback on history entry `history_id`, oldest first (none for an unknown id)."""
        if not isinstance(history_id, str):
            return []
        rows = self._db.execute(f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE history_id = ? ORDER BY id",
                                (history_id,))
        return [_feedback(r) for r in rows]

    # --- shared --------------------------------------------------------------------------------
    def _remove(self, table: str, database: str, row_id: int, schema_fingerprint: str | None) -> bool:
        if isinstance(row_id, bool) or not isinstance(row_id, int):
            raise UserError(f"an id is a whole number, not {row_id!r}")
        if not -(2**63) <= row_id < 2**63:  # beyond a 64-bit integer: no row has it (and SQLite cannot bind it)
            return False
        where, params = _matching(database, schema_fingerprint)
        with self._db.transaction():
            found = self._db.execute(f"SELECT id FROM {table} WHERE id = ? AND {where}", [row_id, *params])
            if found:
                self._db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
        return bool(found)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<StateStore {self.location}>"


def open_state_store(settings: Settings | os.PathLike | str) -> StateStore:
    """The state store in the PostgreSQL database of `settings.state_url` when set, else in
    `settings.state_dir` (created if missing); or in the folder, or PostgreSQL URL, given instead of settings.

    Raises StateStoreError, one line, when the folder cannot be created or written, the file is corrupt or
    from a newer sqlwright, or the database cannot be reached (its password never shown)."""
    url = getattr(settings, "state_url", None) or (settings if is_postgres_url(settings) else None)
    if url:
        return _open(PostgresStateConnection(url))
    folder = Path(getattr(settings, "state_dir", settings)).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StateStoreError(f"the state directory {folder} is a file, not a folder: set SQLWRIGHT_STATE_DIR "
                              "to a folder") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StateStoreError(f"cannot create the state directory {folder} ({reason}): set SQLWRIGHT_STATE_DIR "
                              "to a writable folder") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StateStoreError(f"the state directory {folder} is not writable: make it writable or set "
                              "SQLWRIGHT_STATE_DIR to a writable folder")
    path = folder / STATE_FILE
    if path.exists() and not path.is_file():
        raise StateStoreError(f"the state file {path} is not a file: move it away or set SQLWRIGHT_STATE_DIR")
    return _open(SQLiteStateConnection(path))


def _open(connection: StateConnection) -> StateStore:
    try:
        return StateStore(connection)
    except BaseException:
        connection.close()
        raise
