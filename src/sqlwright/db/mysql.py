"""MySQL and MariaDB backend (PyMySQL): a session whose transactions are read-only, each statement
inside `START TRANSACTION READ ONLY` and rolled back after, the server's statement time limit
(MariaDB `max_statement_time`, MySQL `max_execution_time`) with a `KILL QUERY` from a second
connection as the backstop, and an unbuffered cursor so the row cap bounds memory."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.cursors

from sqlwright.db.backend import (
    COUNT_LIMIT,
    INTROSPECTION_TIMEOUT,
    SAMPLE_SCAN_ROWS,
    Backend,
    Watchdog,
    one_line,
    sample_values,
    timeout_error,
)
from sqlwright.db.base import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT
from sqlwright.db.dialects import MySQL
from sqlwright.db.schema import Column, ForeignKey, Schema, Table
from sqlwright.errors import ConnectionFailed, QueryFailed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5
KILL_GRACE = 1.0  # the KILL QUERY backstop fires this long after the server's own limit
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DRAIN_ROWS = 10_000  # rows past the cap read to finish a result; a longer one has its connection dropped
# Server error codes meaning "stopped for time": MariaDB max_statement_time, MySQL max_execution_time,
# and "query execution was interrupted" (our KILL QUERY).
_TIMEOUT_CODES = {1969, 3024, 1317}

_TABLES_SQL = """
SELECT table_name, table_comment, table_rows FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name
"""
_COLUMNS_SQL = """
SELECT table_name, column_name, column_type, is_nullable, column_comment FROM information_schema.columns
WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position
"""
_KEYS_SQL = """
SELECT table_name, constraint_name, column_name, referenced_table_name, referenced_column_name
FROM information_schema.key_column_usage
WHERE table_schema = DATABASE() AND (constraint_name = 'PRIMARY' OR referenced_table_name IS NOT NULL)
ORDER BY table_name, constraint_name, ordinal_position
"""
_FINGERPRINT_SQL = """
SELECT table_name, table_rows, data_length, update_time, create_time FROM information_schema.tables
WHERE table_schema = DATABASE() ORDER BY table_name
"""
_COLUMNS_HASH_SQL = """
SELECT table_name, column_name, column_type FROM information_schema.columns
WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position
"""


# sql_mode flags under which MySQL reads quotes or backslashes otherwise than the guard's parser does.
_UNGUARDED_MODES = {"ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "ANSI"}


def session_sql_mode(mode: str) -> str:
    """`mode` (a server's sql_mode) without the flags that change how quotes and backslashes read."""
    return ",".join(m for m in mode.split(",") if m and m.strip().upper() not in _UNGUARDED_MODES)


class MySQLDatabase(Backend):
    """A read-only MySQL or MariaDB session on one database."""

    spec = MySQL

    def __init__(
        self, url: str, target: str, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS
    ) -> None:
        super().__init__(url, timeout=timeout, max_rows=max_rows)
        try:
            parts = urlsplit(target)
            port = parts.port or 3306
        except ValueError as exc:
            raise ConnectionFailed(f"Bad MySQL URL {self.url!r}: {exc}") from exc
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ConnectionFailed(f"The MySQL URL {self.url!r} names no database; add it: mysql://user@host/dbname")
        self._params = {
            "host": parts.hostname or "127.0.0.1",
            "port": port,
            "user": unquote(parts.username) if parts.username else "root",
            "password": unquote(parts.password) if parts.password else "",
            "database": database,
            "connect_timeout": CONNECT_TIMEOUT,
            "charset": "utf8mb4",
            "autocommit": True,
            # TLS is attempted by default; over loopback it protects nothing and its context costs ~0.1-0.6 s
            # per connection (loading the system's certificates), paid again by every reconnect and KILL QUERY.
            "ssl_disabled": (parts.hostname or "127.0.0.1") in LOOPBACK,
        }
        self.database = database
        self._conn = self._connect()
        version = self._plain("SELECT VERSION()")[0][0]
        self.mariadb = "mariadb" in str(version).lower()
        self._pin_session()
        self._timeout: float | None = None

    def _reopen_if_dropped(self) -> pymysql.connections.Connection:
        """Reconnect (re-applying the read-only session) when the server dropped the session."""
        if not self.conn.open:
            log.warning("MySQL connection lost; reconnecting to %s", self.url)
            self._reconnect()
        return self.conn

    def _reconnect(self) -> None:
        self._conn = self._connect()
        self._pin_session()
        self._timeout = None

    def _pin_session(self) -> None:
        # Wall (a): every transaction of the session is read-only (and each statement runs in one).
        self._plain("SET SESSION TRANSACTION READ ONLY")
        # Wall (b) reads quotes and backslashes as MySQL does by default; a server configured otherwise
        # would read a statement differently from the guard (a string could end where the guard saw
        # none), so the session drops those modes.
        mode = str(self._plain("SELECT @@SESSION.sql_mode")[0][0] or "")
        pinned = session_sql_mode(mode)
        if pinned != mode:
            self._plain(f"SET SESSION sql_mode = '{pinned}'")

    def _connect(self) -> pymysql.connections.Connection:
        try:
            # connect_timeout covers the TCP connect only: PyMySQL then waits for the server's greeting
            # without a limit, forever on a port whose server waits for the client to speak first (a
            # PostgreSQL or HTTP port). A read timeout bounds the handshake; it is lifted once connected,
            # since statements are bounded by the server's limit and the KILL QUERY watchdog instead.
            conn = pymysql.connect(**self._params, read_timeout=CONNECT_TIMEOUT)
        except pymysql.Error as exc:
            message = exc.args[1] if len(exc.args) > 1 else one_line(exc)
            raise ConnectionFailed(f"Could not connect to MySQL ({self.url}): {one_line(message)}") from exc
        conn._read_timeout = None  # PyMySQL has no public setter; its next read applies the change
        return conn

    def _plain(self, sql: str, params: tuple | None = None) -> list[tuple]:
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    @property
    def conn(self) -> pymysql.connections.Connection:
        if self._conn is None:
            raise QueryFailed(f"The database {self.url} is closed.")
        return self._conn

    def _set_timeout(self, timeout: float) -> None:
        if timeout == self._timeout:
            return
        if self.mariadb:
            self._plain(f"SET SESSION max_statement_time = {timeout:.3f}")
        else:  # MySQL: milliseconds, SELECT statements only
            self._plain(f"SET SESSION max_execution_time = {max(1, int(timeout * 1000))}")
        self._timeout = timeout

    def _kill_query(self) -> None:
        """Stop the running statement from a second connection (the first one is busy)."""
        thread_id = self.conn.thread_id()
        params = dict(self._params, connect_timeout=2)
        with contextlib.closing(pymysql.connect(**params)) as other, other.cursor() as cur:
            cur.execute(f"KILL QUERY {int(thread_id)}")

    def _run(self, sql: str, timeout: float, max_rows: int, query: bool):
        conn = self._reopen_if_dropped()
        try:
            self._set_timeout(timeout)
            self._plain("START TRANSACTION READ ONLY")
            try:
                with Watchdog(timeout + KILL_GRACE, self._kill_query):
                    columns, rows = self._fetch(conn, sql, max_rows)
            finally:
                with contextlib.suppress(pymysql.Error):
                    self._plain("ROLLBACK")
        except pymysql.Error as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if code in _TIMEOUT_CODES:
                raise timeout_error(timeout) from exc
            message = exc.args[1] if len(exc.args) > 1 else one_line(exc)
            raise QueryFailed(f"MySQL error: {one_line(message)}") from exc
        truncated = len(rows) > max_rows
        return columns, rows[:max_rows] if truncated else rows, truncated

    def _fetch(self, conn: pymysql.connections.Connection, sql: str, max_rows: int) -> tuple[tuple, list]:
        """Run `sql` on an unbuffered cursor and read at most `max_rows` + 1 rows.

        Closing an unbuffered cursor reads whatever the server still sends (a KILL QUERY comes too late:
        the server has already filled the socket's buffers, megabytes of rows). So a result that goes on
        more than DRAIN_ROWS past the cap has its connection dropped instead, which stops the statement,
        and the session reconnects; a result just over the cap is read to its end.
        """
        cur = conn.cursor(pymysql.cursors.SSCursor)
        try:
            cur.execute(sql)
            columns = tuple(d[0] for d in cur.description or ())
            rows = list(cur.fetchmany(max_rows + 1)) if cur.description else []
            if len(rows) > max_rows and len(cur.fetchmany(DRAIN_ROWS)) == DRAIN_ROWS:
                conn.close()
                cur._result.unbuffered_active = False  # nothing left to read: closing it reads nothing
                self._reconnect()
        finally:
            cur.close()
        return columns, rows

    def _run_internal(self, sql: str, params: tuple) -> list[tuple]:
        self._reopen_if_dropped()
        try:
            self._set_timeout(INTROSPECTION_TIMEOUT)
            return self._plain(sql, params or None)
        except pymysql.Error as exc:
            message = exc.args[1] if len(exc.args) > 1 else one_line(exc)
            raise QueryFailed(f"MySQL error: {one_line(message)}") from exc

    def _introspect(self, samples: int) -> Schema:
        q = MySQL.quote
        table_rows = self._run_internal(_TABLES_SQL, ())
        columns: dict[str, list[tuple]] = {}
        for table, name, typ, nullable, comment in self._run_internal(_COLUMNS_SQL, ()):
            columns.setdefault(table, []).append((name, typ, nullable == "YES", comment or None))
        pks: dict[str, list[str]] = {}
        fks: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for table, constraint, column, ref_table, ref_column in self._run_internal(_KEYS_SQL, ()):
            if constraint == "PRIMARY":
                pks.setdefault(table, []).append(column)
            else:
                fks.setdefault((table, constraint), []).append((column, ref_table, ref_column))
        out = []
        for table, comment, estimate in table_rows:
            pk = tuple(pks.get(table, ()))
            cols = columns.get(table, [])
            values = sample_values(self._sample_rows(q(table), samples), len(cols), samples)
            foreign = tuple(
                ForeignKey(tuple(p[0] for p in parts), parts[0][1], tuple(p[2] for p in parts))
                for (owner, _), parts in sorted(fks.items())
                if owner == table
            )
            out.append(
                Table(
                    name=table,
                    columns=tuple(
                        Column(name=n, type=t, nullable=nl, primary_key=n in pk, comment=c, samples=values[i])
                        for i, (n, t, nl, c) in enumerate(cols)
                    ),
                    primary_key=pk,
                    foreign_keys=foreign,
                    comment=comment or None,
                    row_count=self._row_count(q(table), estimate),
                )
            )
        return Schema(dialect=self.dialect, tables=tuple(out), name=self.database)

    def _sample_rows(self, quoted: str, samples: int) -> list[tuple]:
        if samples <= 0:
            return []
        try:
            return self._run_internal(f"SELECT * FROM {quoted} LIMIT {SAMPLE_SCAN_ROWS}", ())
        except QueryFailed as exc:
            log.warning("no samples for table %s: %s", quoted, exc)
            return []

    def _row_count(self, quoted: str, estimate: int | None) -> int | None:
        if estimate is not None and estimate > COUNT_LIMIT * 2:  # InnoDB's estimate is rough; trust it only when big
            return int(estimate)
        try:
            (count,) = self._run_internal(f"SELECT count(*) FROM (SELECT 1 FROM {quoted} LIMIT {COUNT_LIMIT + 1}) s", ())[0]
        except QueryFailed:
            return None
        return int(count) if count <= COUNT_LIMIT else (int(estimate) if estimate else None)

    def fingerprint(self) -> str:
        with self._lock:
            tables = self._run_internal(_FINGERPRINT_SQL, ())
            columns = self._run_internal(_COLUMNS_HASH_SQL, ())
        return hashlib.sha256(f"{self.url}|{tables}|{columns}".encode()).hexdigest()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.Error):
                self._conn.close()
            self._conn = None
