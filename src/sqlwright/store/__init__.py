"""sqlwright's own state: examples (question–SQL pairs people teach or sqlwright synthesizes) and notes
per database, the history of questions answered and feedback on them. In the state directory (`state_dir`,
a SQLite file used safely by several processes), or in a PostgreSQL database (`state_url`) that several
servers share.

    from sqlwright.store import open_state_store
    with open_state_store(settings) as store:
        store.add_example(key, fingerprint, "How many singers?", "SELECT count(*) FROM singer")

It imports nothing above it (no sqlwright.db, llm or pipeline): callers pass the database's key and schema
fingerprint (sqlwright.db.database_key and schema_fingerprint).
"""

from sqlwright.errors import StateStoreError, UnknownHistoryEntry
from sqlwright.store.connection import (
    PG_SCHEMA,
    PostgresStateConnection,
    SQLiteStateConnection,
    StateConnection,
)
from sqlwright.store.jsonsafe import json_safe
from sqlwright.store.state import SCHEMA_VERSION, STATE_FILE, StateStore, open_state_store
from sqlwright.store.types import (
    HISTORY_SOURCES,
    RATINGS,
    SOURCES,
    Feedback,
    HistoryEntry,
    Note,
    StoredExample,
)

__all__ = [
    "HISTORY_SOURCES",
    "PG_SCHEMA",
    "RATINGS",
    "SCHEMA_VERSION",
    "SOURCES",
    "STATE_FILE",
    "Feedback",
    "HistoryEntry",
    "Note",
    "PostgresStateConnection",
    "SQLiteStateConnection",
    "StateConnection",
    "StateStore",
    "StateStoreError",
    "StoredExample",
    "UnknownHistoryEntry",
    "json_safe",
    "open_state_store",
]
