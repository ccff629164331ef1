"""The one place the state store touches its database: a small connection interface and its SQLite
implementation (a PostgreSQL one, for several servers sharing their state, can follow behind it).

The store's statements are written in the SQL both engines take: `?` placeholders (a backend that needs
another style translates them), `INSERT … ON CONFLICT DO NOTHING`, no RETURNING, and an auto-increment key
spelled by the backend (`id_column`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from sqlwright.errors import StateStoreError

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write to finish before giving up


class StateConnection(abc.ABC):
    """A connection to the store's database, safe to share between threads (calls are serialized)."""

    location: str  # for messages: a file path, or a URL without its password
    id_column: ClassVar[str]  # DDL of an auto-increment integer primary key column named `id`

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run one statement with `?` placeholders; return its rows (empty for statements without any).
        Outside `transaction()` a statement commits at once."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: every `execute` inside commits together, or none does if the block raises.
        It takes the write lock at its start, so a read inside it sees what no other writer can change."""

    @abc.abstractmethod
    def close(self) -> None: ...


class SQLiteStateConnection(StateConnection):
    """The state file, in WAL mode (readers never wait for a writer) with a busy timeout (writers from
    several processes queue instead of failing)."""

    id_column = "id INTEGER PRIMARY KEY"

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._lock = threading.RLock()
        self._busy_timeout = busy_timeout
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._set_wal()
            self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL keeps the file consistent after a crash
        except sqlite3.Error as exc:
            self._conn.close()
            self._conn = None
            raise self._error(exc) from exc

    def _set_wal(self) -> None:
        # Switching to WAL takes an exclusive lock; when another process is switching (or writing) at the same
        # moment SQLite may answer "locked" without waiting for the busy timeout, so retry until it passes.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":  # a file system without shared memory: the rollback journal still works
            log.warning("state file %s stays in %s journal mode (WAL not available)", self.path, mode)

    def _error(self, exc: sqlite3.Error) -> StateStoreError:
        """A SQLite error as one line that names the state file and what to do."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        low = text.lower()
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return StateStoreError(f"the state file {self.path} is corrupt ({text}): move it away to start "
                                   "afresh, or set SQLWRIGHT_STATE_DIR to another folder")
        if "unable to open" in low or "readonly" in low or "read-only" in low or "disk i/o" in low:
            return StateStoreError(f"cannot write the state file {self.path} ({text}): make its folder "
                                   "writable or set SQLWRIGHT_STATE_DIR to a writable folder")
        if "locked" in low or "busy" in low:
            return StateStoreError(f"the state file {self.path} stayed locked by another process for "
                                   f"{self._busy_timeout:g} s ({text})")
        return StateStoreError(f"state file {self.path}: {text}")

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateStoreError(f"the state store {self.path} is closed")
        return self._conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self.conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            try:
                # IMMEDIATE: take the write lock now, so that a read-then-write block never has to upgrade
                # a read lock (which another writer could make fail with "locked" without waiting).
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise self._error(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
