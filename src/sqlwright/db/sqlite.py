"""SQLite backend: the file opened `?mode=ro` with `PRAGMA query_only`, a progress-handler deadline for
the wall-clock limit (as datasette does), and `fetchmany(cap + 1)` for the row cap."""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from sqlwright.db.backend import (
    COUNT_LIMIT,
    INTROSPECTION_TIMEOUT,
    SAMPLE_SCAN_ROWS,
    Backend,
    file_fingerprint,
    one_line,
    sample_values,
    timeout_error,
)
from sqlwright.db.base import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT
from sqlwright.db.dialects import SQLite
from sqlwright.db.schema import Column, ForeignKey, Schema, Table
from sqlwright.errors import ConnectionFailed, QueryFailed

log = logging.getLogger(__name__)

_PROGRESS_STEPS = 1000  # VM instructions between deadline checks: cheap, and well under a millisecond


# The authorizer (part of wall (a)): statements may read tables, call functions and read pragmas;
# every other action (writes, schema changes, ATTACH, transactions, setting pragmas) is denied when
# the statement is prepared, before it runs.
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE})
_INFO_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info", "index_xinfo", "table_list"}
)
_READABLE_PRAGMAS = frozenset(
    {"query_only", "user_version", "schema_version", "application_id", "data_version", "page_count",
     "page_size", "encoding", "foreign_keys", "journal_mode", "compile_options", "freelist_count",
     "database_list", "collation_list", "function_list", "module_list", "pragma_list"}
)


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in _INFO_PRAGMAS or (arg2 is None and name in _READABLE_PRAGMAS):
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _decode(data: bytes) -> str:
    # Some real databases (Spider's among them) hold text that is not valid UTF-8.
    return data.decode("utf-8", errors="replace")


class SQLiteDatabase(Backend):
    """A read-only SQLite file."""

    spec = SQLite

    def __init__(
        self, url: str, path: Path, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS
    ) -> None:
        super().__init__(url, timeout=timeout, max_rows=max_rows)
        self.path = Path(path).resolve()
        if not self.path.exists():
            raise ConnectionFailed(f"SQLite database file not found: {self.path}")
        if not self.path.is_file():
            raise ConnectionFailed(f"Not a SQLite database file (it is a directory): {self.path}")
        self._deadline = math.inf
        uri = f"file:{quote(str(self.path))}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConnectionFailed(f"Could not open SQLite database {self.path}: {one_line(exc)}") from exc
        try:
            conn.execute("PRAGMA query_only = ON")
            # Reading the catalog is where a file that is not a database fails.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            raise ConnectionFailed(f"Could not open SQLite database {self.path}: {one_line(exc)}") from exc
        conn.text_factory = _decode
        conn.set_authorizer(_authorize)
        conn.set_progress_handler(self._past_deadline, _PROGRESS_STEPS)
        self._conn: sqlite3.Connection | None = conn

    def _past_deadline(self) -> bool:
        return time.monotonic() > self._deadline

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise QueryFailed(f"The database {self.url} is closed.")
        return self._conn

    def _run(self, sql: str, timeout: float, max_rows: int, query: bool):
        conn = self.conn
        self._deadline = time.monotonic() + timeout
        cursor = None
        try:
            cursor = conn.execute(sql)
            columns = tuple(d[0] for d in cursor.description) if cursor.description else ()
            rows = cursor.fetchmany(max_rows + 1) if columns else []
        except sqlite3.Error as exc:
            if time.monotonic() > self._deadline and "interrupt" in str(exc).lower():
                raise timeout_error(timeout) from exc
            message = one_line(exc)
            if "not authorized" in message:
                message += " (the connection is read-only: only reading statements run)"
            raise QueryFailed(f"SQLite error: {message}") from exc
        finally:
            self._deadline = math.inf
            if cursor is not None:
                cursor.close()
        truncated = len(rows) > max_rows
        return columns, rows[:max_rows] if truncated else rows, truncated

    def _run_internal(self, sql: str, params: tuple) -> list[tuple]:
        self._deadline = time.monotonic() + INTROSPECTION_TIMEOUT
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise QueryFailed(f"SQLite error: {one_line(exc)}") from exc
        finally:
            self._deadline = math.inf

    def _introspect(self, samples: int) -> Schema:
        q = SQLite.quote
        names = [
            r[0]
            for r in self._run_internal(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "ORDER BY rowid",
                (),
            )
        ]
        by_lower = {n.lower(): n for n in names}
        infos = {n: self._run_internal(f"PRAGMA table_info({q(n)})", ()) for n in names}
        pks = {n: tuple(r[1] for r in sorted((r for r in infos[n] if r[5]), key=lambda r: r[5])) for n in names}
        has_stat1 = bool(self._run_internal("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'", ()))
        tables = []
        for name in names:
            info = infos[name]
            fks = self._foreign_keys(name, by_lower, pks)
            columns_samples = self._samples(name, len(info), samples)
            columns = tuple(
                Column(
                    name=r[1],
                    type=(r[2] or "").strip().upper(),
                    nullable=not r[3] and not r[5],
                    primary_key=bool(r[5]),
                    samples=columns_samples[i],
                )
                for i, r in enumerate(info)
            )
            tables.append(
                Table(
                    name=name,
                    columns=columns,
                    primary_key=pks[name],
                    foreign_keys=fks,
                    row_count=self._row_count(name, has_stat1),
                )
            )
        return Schema(dialect=self.dialect, tables=tuple(tables), name=self.path.stem)

    def _foreign_keys(self, name: str, by_lower: dict[str, str], pks: dict[str, tuple[str, ...]]):
        rows = self._run_internal(f"PRAGMA foreign_key_list({SQLite.quote(name)})", ())
        groups: dict[int, list[tuple]] = {}
        for r in rows:  # id, seq, table, from, to, on_update, on_delete, match
            groups.setdefault(r[0], []).append(r)
        fks = []
        for fk_id in sorted(groups):
            parts = sorted(groups[fk_id], key=lambda r: r[1])
            ref = by_lower.get(parts[0][2].lower(), parts[0][2])  # declared names may differ in case
            ref_cols = tuple(p[4] for p in parts)
            if any(c is None for c in ref_cols):  # REFERENCES t with no columns means t's primary key
                ref_cols = pks.get(ref, ())
            fks.append(ForeignKey(tuple(p[3] for p in parts), ref, tuple(ref_cols)))
        return tuple(fks)

    def _samples(self, name: str, n_columns: int, samples: int) -> list[tuple]:
        if samples <= 0:
            return [() for _ in range(n_columns)]
        try:
            rows = self._run_internal(f"SELECT * FROM {SQLite.quote(name)} LIMIT {SAMPLE_SCAN_ROWS}", ())
        except QueryFailed as exc:  # e.g. a virtual table whose module is not loaded
            log.warning("no samples for table %s: %s", name, exc)
            return [() for _ in range(n_columns)]
        return sample_values(rows, n_columns, samples)

    def _row_count(self, name: str, has_stat1: bool) -> int | None:
        q = SQLite.quote(name)
        try:
            (count,) = self._run_internal(f"SELECT count(*) FROM (SELECT 1 FROM {q} LIMIT {COUNT_LIMIT + 1})", ())[0]
        except QueryFailed:
            return None
        if count <= COUNT_LIMIT:
            return count
        if has_stat1:  # ANALYZE's estimate: the first number of stat is the table's row count
            rows = self._run_internal("SELECT stat FROM sqlite_stat1 WHERE tbl = ? AND idx IS NULL", (name,))
            rows = rows or self._run_internal("SELECT stat FROM sqlite_stat1 WHERE tbl = ?", (name,))
            if rows and str(rows[0][0]).split()[0].isdigit():
                return int(str(rows[0][0]).split()[0])
        return None

    def fingerprint(self) -> str:
        return file_fingerprint(self.path, f"{self.path}-wal")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
