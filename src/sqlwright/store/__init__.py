"""sqlwright's own state: examples (question–SQL pairs people teach or sqlwright synthesizes) and notes,
per database, in the state directory (`state_dir`, a SQLite file used safely by several processes).

    from sqlwright.store import open_state_store
    with open_state_store(settings) as store:
        store.add_example(key, fingerprint, "How many singers?", "SELECT count(*) FROM singer")

It imports nothing above it (no sqlwright.db, llm or pipeline): callers pass the database's key and schema
fingerprint (sqlwright.db.database_key and schema_fingerprint).
"""

from sqlwright.store.connection import SQLiteStateConnection, StateConnection
from sqlwright.store.state import SCHEMA_VERSION, STATE_FILE, StateStore, open_state_store
from sqlwright.store.types import SOURCES, Note, StoredExample

__all__ = [
    "SCHEMA_VERSION",
    "SOURCES",
    "STATE_FILE",
    "Note",
    "SQLiteStateConnection",
    "StateConnection",
    "StateStore",
    "StoredExample",
    "open_state_store",
]
