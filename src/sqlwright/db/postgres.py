"""PostgreSQL backend (psycopg 3): sessions with `default_transaction_read_only=on` and a
`statement_timeout`, a client-side cancel as a backstop, and a server-side cursor so that the row cap
never pulls a huge result into memory."""

from __future__ import annotations

import hashlib
import logging
import re

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

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
from sqlwright.db.dialects import Postgres
from sqlwright.db.schema import Column, ForeignKey, Schema, Table
from sqlwright.errors import ConnectionFailed, QueryFailed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds to reach the server
CANCEL_GRACE = 1.0  # the client-side cancel fires this long after the server's own limit should have

_SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema')"

_COLUMNS_SQL = f"""
SELECT c.oid, n.nspname, c.relname, obj_description(c.oid, 'pg_class'), c.reltuples::float8,
       a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       col_description(c.oid, a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname <> 'public', n.nspname, c.relname, a.attnum
"""

_CONSTRAINTS_SQL = f"""
SELECT con.contype, con.conrelid, con.conkey, con.confrelid, con.confkey, con.conname
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype IN ('p', 'f') AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY con.conrelid, con.contype, con.conname
"""

_FINGERPRINT_SQL = f"""
SELECT
  (SELECT string_agg(relid::text || ':' || n_tup_ins || ':' || n_tup_upd || ':' || n_tup_del, ','
                     ORDER BY relid) FROM pg_stat_user_tables),
  (SELECT md5(string_agg(a.attrelid::text || a.attname || a.atttypid::text, ',' ORDER BY a.attrelid, a.attnum))
   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
     AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg\\_%')
"""

_CONNECT_NOISE = re.compile(r"^(connection failed: )?(connection to server at [^:]* failed: )?(FATAL: +)?")


def _connect_message(exc: Exception) -> str:
    return _CONNECT_NOISE.sub("", one_line(exc)) or type(exc).__name__


class PostgresDatabase(Backend):
    """A read-only PostgreSQL session."""

    spec = Postgres

    def __init__(
        self, url: str, target: str, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS
    ) -> None:
        super().__init__(url, timeout=timeout, max_rows=max_rows)
        scheme, _, rest = target.partition("://")
        conninfo = "postgresql://" + rest  # libpq knows postgresql:// and postgres://, not driver suffixes
        try:
            params = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise ConnectionFailed(f"Bad PostgreSQL URL {self.url!r}: {one_line(exc)}") from exc
        options = params.pop("options", "") or ""
        # Wall (a): every transaction read-only; statements time out server-side.
        self._options = (
            f"{options} -c default_transaction_read_only=on -c statement_timeout={int(self.timeout * 1000)}"
            " -c idle_in_transaction_session_timeout=60000 -c cursor_tuple_fraction=1"
            # Wall (b) reads strings as standard SQL does: pin it, whatever the server's configuration.
            " -c standard_conforming_strings=on"
        ).strip()
        self._params = params
        self._timeout_ms = int(self.timeout * 1000)
        self._conn: psycopg.Connection | None = None
        self._connect()

    def _connect(self) -> None:
        params = dict(self._params)
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        try:
            self._conn = psycopg.connect(autocommit=True, options=self._options, **params)
        except psycopg.Error as exc:
            raise ConnectionFailed(f"Could not connect to PostgreSQL ({self.url}): {_connect_message(exc)}") from exc
        self._timeout_ms = int(self.timeout * 1000)

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            raise QueryFailed(f"The database {self.url} is closed.")
        if self._conn.broken:  # the server went away or the session was killed: reconnect once
            log.warning("PostgreSQL connection lost; reconnecting to %s", self.url)
            self._connect()
        return self._conn

    def _set_timeout(self, conn: psycopg.Connection, timeout: float) -> None:
        ms = max(1, int(timeout * 1000))
        if ms != self._timeout_ms:
            conn.execute(f"SET statement_timeout = {ms}")
            self._timeout_ms = ms

    def _cancel(self) -> None:
        conn = self._conn
        if conn is not None:
            cancel = getattr(conn, "cancel_safe", None) or conn.cancel
            cancel()

    def _run(self, sql: str, timeout: float, max_rows: int, query: bool):
        conn = self.conn
        try:
            self._set_timeout(conn, timeout)
            with Watchdog(timeout + CANCEL_GRACE, self._cancel):
                if query:
                    # A server-side cursor: the guard has established this is one SELECT, and only
                    # max_rows + 1 rows cross the wire however large the result.
                    with conn.transaction(), conn.cursor(name="sqlwright_q") as cur:
                        cur.execute(sql)
                        columns = tuple(d.name for d in cur.description or ())
                        rows = cur.fetchmany(max_rows + 1)
                else:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        columns = tuple(d.name for d in cur.description or ())
                        rows = cur.fetchmany(max_rows + 1) if cur.description else []
        except pg_errors.QueryCanceled as exc:
            raise timeout_error(timeout) from exc
        except psycopg.Error as exc:
            diag = getattr(exc, "diag", None)
            message = (diag.message_primary if diag is not None else None) or one_line(exc)
            raise QueryFailed(f"PostgreSQL error: {message}") from exc
        truncated = len(rows) > max_rows
        return columns, rows[:max_rows] if truncated else rows, truncated

    def _run_internal(self, sql: str, params: tuple) -> list[tuple]:
        conn = self.conn
        try:
            self._set_timeout(conn, INTROSPECTION_TIMEOUT)
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return cur.fetchall()
        except psycopg.Error as exc:
            raise QueryFailed(f"PostgreSQL error: {one_line(exc)}") from exc

    def _introspect(self, samples: int) -> Schema:
        rows = self._run_internal(_COLUMNS_SQL, ())
        tables: dict[int, dict] = {}
        for oid, nsp, rel, tcomment, reltuples, attnum, attname, typ, notnull, ccomment in rows:
            t = tables.setdefault(
                oid,
                {
                    "name": rel if nsp == "public" else f"{nsp}.{rel}",
                    "schema": None if nsp == "public" else nsp,
                    "qualified": f"{Postgres.quote(nsp)}.{Postgres.quote(rel)}",
                    "comment": tcomment,
                    "reltuples": reltuples,
                    "columns": [],
                    "attnames": {},
                },
            )
            t["columns"].append((attname, typ, notnull, ccomment))
            t["attnames"][attnum] = attname
        pks: dict[int, tuple[str, ...]] = {}
        fks: dict[int, list[ForeignKey]] = {}
        for contype, relid, conkey, frelid, confkey, _name in self._run_internal(_CONSTRAINTS_SQL, ()):
            if relid not in tables:
                continue
            cols = tuple(tables[relid]["attnames"].get(k, str(k)) for k in conkey or ())
            if contype == "p":
                pks[relid] = cols
            elif frelid in tables:
                ref = tables[frelid]
                fks.setdefault(relid, []).append(
                    ForeignKey(cols, ref["name"], tuple(ref["attnames"].get(k, str(k)) for k in confkey or ()))
                )
        out = []
        for oid, t in tables.items():
            pk = pks.get(oid, ())
            sample_rows = self._sample_rows(t["qualified"], samples)
            values = sample_values(sample_rows, len(t["columns"]), samples)
            columns = tuple(
                Column(
                    name=name,
                    type=typ,
                    nullable=not notnull,
                    primary_key=name in pk,
                    comment=comment,
                    samples=values[i],
                )
                for i, (name, typ, notnull, comment) in enumerate(t["columns"])
            )
            out.append(
                Table(
                    name=t["name"],
                    columns=columns,
                    primary_key=pk,
                    foreign_keys=tuple(fks.get(oid, ())),
                    comment=t["comment"],
                    row_count=self._row_count(t["qualified"], t["reltuples"]),
                    schema=t["schema"],
                )
            )
        return Schema(dialect=self.dialect, tables=tuple(out), name=self._params.get("dbname"))

    def _sample_rows(self, qualified: str, samples: int) -> list[tuple]:
        if samples <= 0:
            return []
        try:
            return self._run_internal(f"SELECT * FROM {qualified} LIMIT {SAMPLE_SCAN_ROWS}", ())
        except QueryFailed as exc:  # e.g. no SELECT privilege on this table
            log.warning("no samples for table %s: %s", qualified, exc)
            return []

    def _row_count(self, qualified: str, reltuples: float | None) -> int | None:
        if reltuples is not None and reltuples > COUNT_LIMIT:  # the planner's estimate is good enough
            return int(reltuples)
        try:
            (count,) = self._run_internal(
                f"SELECT count(*) FROM (SELECT 1 FROM {qualified} LIMIT {COUNT_LIMIT + 1}) s", ()
            )[0]
        except QueryFailed:
            return None
        return int(count) if count <= COUNT_LIMIT else None

    def fingerprint(self) -> str:
        stats, columns = self._internal_row(_FINGERPRINT_SQL)
        return hashlib.sha256(f"{self.url}|{stats}|{columns}".encode()).hexdigest()

    def _internal_row(self, sql: str) -> tuple:
        with self._lock:
            return self._run_internal(sql, ())[0]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
