"""The one place the state store touches its database: a small connection interface, its SQLite
implementation (the state file) and its PostgreSQL one (SQLWRIGHT_STATE_URL: several servers sharing their
state).

The store's statements are written in the SQL both engines take: `?` placeholders (a backend that needs
another style translates them), `INSERT … ON CONFLICT DO NOTHING`, no RETURNING, and an auto-increment key
spelled by the backend (`id_column`).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from sqlwright.errors import StateStoreError
from sqlwright.urls import mask_url

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write to finish before giving up


class StateConnection(abc.ABC):
    """A connection to the store's database, safe to share between threads (calls are serialized)."""

    location: str  # for messages: a file path, or a URL without its password
    id_column: ClassVar[str]  # DDL of an auto-increment integer primary key column named `id`
    kind: ClassVar[str]  # what it is, for messages: "state file", "state database"
    setting: ClassVar[str]  # the environment variable that points elsewhere, for messages

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
    kind = "state file"
    setting = "SQLWRIGHT_STATE_DIR"

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


# --- PostgreSQL ------------------------------------------------------------------------------------
PG_SCHEMA = "sqlwright"  # the store's tables live in their own schema: no clash with a database's own tables
PG_CONNECT_TIMEOUT = 5  # seconds to reach the server
# The key of the transaction-level advisory lock every write transaction takes first: writers from every
# server queue on it (as SQLite's BEGIN IMMEDIATE makes them queue on the file), so two servers starting at
# once never run the migrations together, and a read-then-write block sees no other writer's change.
PG_WRITE_LOCK = int.from_bytes(hashlib.sha256(b"sqlwright state store").digest()[:8], "big", signed=True)
PG_SCHEMES = ("postgresql", "postgres")
_URL_SHAPE = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"

_CONNECT_NOISE = re.compile(r"^(connection failed: )?(connection to server at [^:]* failed: )?(FATAL: +)?")


def is_postgres_url(text: object) -> bool:
    """True for a `postgresql://…` or `postgres://…` URL (a driver suffix such as `+psycopg` allowed)."""
    if not isinstance(text, str) or "://" not in text:
        return False
    return text.partition("://")[0].lower().split("+")[0] in PG_SCHEMES


class PostgresStateConnection(StateConnection):
    """A PostgreSQL database shared by several servers (SQLWRIGHT_STATE_URL), its tables in the schema
    `sqlwright` (created when missing). One session, reconnected when the server dropped it; every write
    transaction takes one advisory lock first (PG_WRITE_LOCK), and waits for it at most `lock_timeout`."""

    id_column = "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    kind = "state database"
    setting = "SQLWRIGHT_STATE_URL"

    def __init__(self, url: str, *, lock_timeout: float = BUSY_TIMEOUT,
                 connect_timeout: float = PG_CONNECT_TIMEOUT) -> None:
        self.location = mask_url(url) if isinstance(url, str) else repr(type(url).__name__)
        self._lock = threading.RLock()
        self._lock_timeout = lock_timeout
        self._conn = None
        self._closed = False
        self._depth = 0  # transactions open: inside one a lost session is an error, never a silent reconnect
        if not is_postgres_url(url):
            raise StateStoreError(f"the state database URL {self.location!r} is not a PostgreSQL URL: set "
                                  f"SQLWRIGHT_STATE_URL to {_URL_SHAPE}")
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError as exc:
            raise StateStoreError("a PostgreSQL state database needs psycopg: "
                                  "pip install 'sqlwright[postgres]'") from exc
        self._psycopg = psycopg
        self._secrets: list[str] = []
        with contextlib.suppress(ValueError):
            if urlsplit(url).password:
                self._secrets.append(unquote(urlsplit(url).password))
        try:
            # libpq knows postgresql:// and postgres://, not driver suffixes
            params = conninfo_to_dict("postgresql://" + url.partition("://")[2])
        except psycopg.Error as exc:
            raise StateStoreError(f"bad state database URL {self.location} ({self._text(exc)}): set "
                                  f"SQLWRIGHT_STATE_URL to {_URL_SHAPE}") from exc
        if params.get("password"):
            self._secrets.append(str(params["password"]))
        self._dbname = str(params.get("dbname") or params.get("user") or "")
        params.setdefault("connect_timeout", int(connect_timeout))
        params.setdefault("application_name", "sqlwright")
        # search_path: the store's schema (a missing schema on the path is allowed; it is created below).
        # idle_in_transaction_session_timeout: a server frozen inside a transaction lets go of the write lock.
        params["options"] = (f"{params.get('options') or ''} -c search_path={PG_SCHEMA} "
                             f"-c lock_timeout={max(1, int(lock_timeout * 1000))} "
                             "-c idle_in_transaction_session_timeout=60000").strip()
        self._params = params
        self._conn = self._connect()
        try:
            with self.transaction():
                if not self.execute("SELECT 1 FROM pg_namespace WHERE nspname = ?", (PG_SCHEMA,)):
                    # Only when missing: CREATE SCHEMA IF NOT EXISTS needs the CREATE right even if it exists.
                    self.execute(f'CREATE SCHEMA "{PG_SCHEMA}"')
        except BaseException:
            self.close()
            raise

    def _connect(self):
        try:
            return self._psycopg.connect(autocommit=True, **self._params)
        except self._psycopg.Error as exc:
            raise self._error(exc, connecting=True) from exc

    def _text(self, exc: BaseException) -> str:
        """The library's message on one line, without connection noise or any password."""
        lines = [ln.strip().lstrip("- ").strip() for ln in str(exc).splitlines() if ln.strip()]
        text = _CONNECT_NOISE.sub("", " ".join(lines)) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, exc: BaseException, *, connecting: bool = False) -> StateStoreError:
        """A psycopg error as one line that names the state database (its password masked) and what to do."""
        text = self._text(exc)
        low = text.lower()
        errors = self._psycopg.errors
        if isinstance(exc, errors.LockNotAvailable):
            return StateStoreError(f"the state database {self.location} stayed locked by another process for "
                                   f"{self._lock_timeout:g} s ({text})")
        if connecting:
            if "invalid" in low and ("connection option" in low or "value" in low):  # libpq checks them late
                return StateStoreError(f"bad state database URL {self.location} ({text}): set "
                                       f"SQLWRIGHT_STATE_URL to {_URL_SHAPE}")
            if "database" in low and "does not exist" in low:
                return StateStoreError(f"the state database {self.location} does not exist: create it "
                                       f"(createdb {self._dbname}) or set SQLWRIGHT_STATE_URL to another "
                                       f"({text})")
            if "authentication" in low or "pg_hba" in low or "role" in low or "password" in low:
                return StateStoreError(f"the state database {self.location} refused the login ({text}): "
                                       "check the user and password in SQLWRIGHT_STATE_URL")
            return StateStoreError(f"cannot reach the state database {self.location} ({text}): is the "
                                   "PostgreSQL server running? (SQLWRIGHT_STATE_URL)")
        if isinstance(exc, errors.InsufficientPrivilege):
            return StateStoreError(f"the state database {self.location} refused a change ({text}): its user "
                                   f"needs the right to create the schema {PG_SCHEMA} and tables in it")
        return StateStoreError(f"state database {self.location}: {text}")

    def _live(self):
        """The session, reconnected first if the server dropped it."""
        if self._closed:
            raise StateStoreError(f"the state store {self.location} is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._depth:
                raise StateStoreError(f"the state database {self.location} dropped the session in a "
                                      "transaction")
            log.warning("state database connection lost; reconnecting to %s", self.location)
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None
            self._conn = self._connect()
        return self._conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        # `?` -> `%s`, and a literal `%` doubled (psycopg reads `%` as a placeholder whenever there are
        # parameters). The store's statements hold no `?` or `%` inside string literals.
        query = sql.replace("%", "%%").replace("?", "%s")
        with self._lock:
            conn = self._live()
            try:
                cursor = conn.execute(query, tuple(params))
                return cursor.fetchall() if cursor.description else []
            except self._psycopg.Error as exc:
                raise self._error(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            conn = self._live()
            self._depth += 1
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_WRITE_LOCK,))
                    yield
            except self._psycopg.Error as exc:  # BEGIN, the lock or COMMIT failed (the body's are converted)
                raise self._error(exc) from exc
            finally:
                self._depth -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
