"""The state store: examples (question and SQL pairs) and notes, per database, in the state directory.

    store = open_state_store(settings)
    store.add_example(key, fingerprint, "How many singers?", "SELECT count(*) FROM singer")
    store.examples(key, schema_fingerprint=fingerprint)

A database is named by its key (dialect and location, no credentials) and its schema fingerprint (see
sqlwright.db.identity): lookups match either, so examples stored for a file still serve a copy of it under
another path, as long as its schema is the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlwright.errors import ExampleRejected, StateStoreError, UserError
from sqlwright.store.connection import SQLiteStateConnection, StateConnection
from sqlwright.store.types import SOURCE_RANK, SOURCES, Note, StoredExample

if TYPE_CHECKING:
    from sqlwright.config import Settings

log = logging.getLogger(__name__)

STATE_FILE = "state.db"
SCHEMA_VERSION = 1

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
}

_EXAMPLE_COLUMNS = "id, db_key, schema_fingerprint, question, sql_text, source, verified, created, provenance"
_NOTE_COLUMNS = "id, db_key, schema_fingerprint, body, created"


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


class StateStore:
    """Examples and notes per database. Safe to share between threads and between processes."""

    def __init__(self, connection: StateConnection) -> None:
        self._db = connection
        self.location = connection.location
        self._migrate()

    # --- schema --------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._db.transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            rows = self._db.execute("SELECT value FROM meta WHERE name = ?", ("schema_version",))
            try:
                version = int(rows[0][0]) if rows else 0
            except (TypeError, ValueError):
                raise StateStoreError(f"the state file {self.location} is corrupt (schema version "
                                      f"{rows[0][0]!r}): move it away to start afresh") from None
            if version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"the state file {self.location} was written by a newer sqlwright (schema version {version}; "
                    f"this one knows up to {SCHEMA_VERSION}): upgrade sqlwright or set SQLWRIGHT_STATE_DIR")
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
    """The state store in `settings.state_dir` (created if missing), or in the folder given as a path.

    Raises StateStoreError, one line, when the folder cannot be created or written, or the file is corrupt
    or from a newer sqlwright."""
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
    connection = SQLiteStateConnection(path)
    try:
        return StateStore(connection)
    except BaseException:
        connection.close()
        raise
