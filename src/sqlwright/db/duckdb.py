"""DuckDB backend: the file opened `read_only=True` with external access (files, network, extensions)
disabled and the configuration locked, and `interrupt()` from a timer for the wall-clock limit."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from sqlwright.db.backend import (
    COUNT_LIMIT,
    INTROSPECTION_TIMEOUT,
    SAMPLE_SCAN_ROWS,
    Backend,
    Watchdog,
    file_fingerprint,
    one_line,
    sample_values,
    timeout_error,
)
from sqlwright.db.base import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT
from sqlwright.db.dialects import DuckDB
from sqlwright.db.schema import Column, ForeignKey, Schema, Table
from sqlwright.errors import ConnectionFailed, QueryFailed

log = logging.getLogger(__name__)

# Wall (a) for DuckDB: no writes, no file or network access (read_csv, COPY, ATTACH, INSTALL), no SET.
_CONFIG = {"enable_external_access": False, "lock_configuration": True}

_TABLES_SQL = """
SELECT schema_name, table_name, comment, estimated_size FROM duckdb_tables()
WHERE database_name = current_database() AND NOT internal AND NOT temporary
ORDER BY schema_name <> 'main', schema_name, table_name
"""
_COLUMNS_SQL = """
SELECT schema_name, table_name, column_name, data_type, is_nullable, comment FROM duckdb_columns()
WHERE database_name = current_database() AND NOT internal
ORDER BY schema_name, table_name, column_index
"""
_CONSTRAINTS_SQL = """
SELECT schema_name, table_name, constraint_type, constraint_column_names, referenced_table,
       referenced_column_names
FROM duckdb_constraints()
WHERE database_name = current_database() AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')
ORDER BY schema_name, table_name, constraint_index
"""


class DuckDBDatabase(Backend):
    """A read-only DuckDB file."""

    spec = DuckDB

    def __init__(
        self, url: str, path: Path, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS
    ) -> None:
        super().__init__(url, timeout=timeout, max_rows=max_rows)
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise ConnectionFailed(f"DuckDB database file not found: {self.path}")
        try:
            self._conn: duckdb.DuckDBPyConnection | None = duckdb.connect(
                str(self.path), read_only=True, config=dict(_CONFIG)
            )
        except duckdb.Error as exc:
            raise ConnectionFailed(f"Could not open DuckDB database {self.path}: {one_line(exc)}") from exc

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            raise QueryFailed(f"The database {self.url} is closed.")
        return self._conn

    def _run(self, sql: str, timeout: float, max_rows: int, query: bool):
        conn = self.conn
        watchdog = Watchdog(timeout, conn.interrupt)
        try:
            with watchdog:
                cur = conn.execute(sql)
                columns = tuple(d[0] for d in cur.description or ())
                rows = cur.fetchmany(max_rows + 1) if cur.description else []
        except duckdb.InterruptException as exc:
            raise timeout_error(timeout) from exc
        except duckdb.Error as exc:
            if watchdog.fired:  # interrupted while the error was being raised for another reason
                raise timeout_error(timeout) from exc
            raise QueryFailed(f"DuckDB error: {one_line(exc)}") from exc
        truncated = len(rows) > max_rows
        return columns, rows[:max_rows] if truncated else rows, truncated

    def _run_internal(self, sql: str, params: tuple) -> list[tuple]:
        conn = self.conn
        try:
            with Watchdog(INTROSPECTION_TIMEOUT, conn.interrupt):
                return conn.execute(sql, list(params) if params else None).fetchall()
        except duckdb.Error as exc:
            raise QueryFailed(f"DuckDB error: {one_line(exc)}") from exc

    def _introspect(self, samples: int) -> Schema:
        columns: dict[tuple[str, str], list[tuple]] = {}
        for schema_name, table, name, typ, nullable, comment in self._run_internal(_COLUMNS_SQL, ()):
            columns.setdefault((schema_name, table), []).append((name, typ, bool(nullable), comment or None))
        pks: dict[tuple[str, str], tuple[str, ...]] = {}
        fks: dict[tuple[str, str], list[tuple]] = {}
        for schema_name, table, kind, cols, ref_table, ref_cols in self._run_internal(_CONSTRAINTS_SQL, ()):
            key = (schema_name, table)
            if kind == "PRIMARY KEY":
                pks[key] = tuple(cols)
            else:
                fks.setdefault(key, []).append((tuple(cols), ref_table, tuple(ref_cols or ())))
        out = []
        for schema_name, table, comment, estimate in self._run_internal(_TABLES_SQL, ()):
            key = (schema_name, table)
            qualified = f"{DuckDB.quote(schema_name)}.{DuckDB.quote(table)}"
            cols = columns.get(key, [])
            pk = pks.get(key, ())
            values = sample_values(self._sample_rows(qualified, samples), len(cols), samples)
            display = table if schema_name == "main" else f"{schema_name}.{table}"
            foreign = []
            for fk_cols, ref_table, ref_cols in fks.get(key, ()):
                ref_display = ref_table if schema_name == "main" else f"{schema_name}.{ref_table}"
                foreign.append(ForeignKey(fk_cols, ref_display, ref_cols or pks.get((schema_name, ref_table), ())))
            out.append(
                Table(
                    name=display,
                    columns=tuple(
                        Column(name=n, type=t, nullable=nl and n not in pk, primary_key=n in pk, comment=c, samples=values[i])
                        for i, (n, t, nl, c) in enumerate(cols)
                    ),
                    primary_key=pk,
                    foreign_keys=tuple(foreign),
                    comment=comment or None,
                    row_count=self._row_count(qualified, estimate),
                    schema=None if schema_name == "main" else schema_name,
                )
            )
        return Schema(dialect=self.dialect, tables=tuple(out), name=self.path.stem)

    def _sample_rows(self, qualified: str, samples: int) -> list[tuple]:
        if samples <= 0:
            return []
        try:
            return self._run_internal(f"SELECT * FROM {qualified} LIMIT {SAMPLE_SCAN_ROWS}", ())
        except QueryFailed as exc:
            log.warning("no samples for table %s: %s", qualified, exc)
            return []

    def _row_count(self, qualified: str, estimate: int | None) -> int | None:
        try:
            (count,) = self._run_internal(f"SELECT count(*) FROM (SELECT 1 FROM {qualified} LIMIT {COUNT_LIMIT + 1}) s", ())[0]
        except QueryFailed:
            return None
        return int(count) if count <= COUNT_LIMIT else (int(estimate) if estimate else None)

    def fingerprint(self) -> str:
        return file_fingerprint(self.path, f"{self.path}.wal")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
