"""What every backend shares: the guarded `execute` wrapper, schema caching, the watchdog timer that
backs up server-side time limits, and the bounded sampling used by introspection."""

from __future__ import annotations

import abc
import datetime as _dt
import decimal
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import ClassVar

from sqlwright.db.base import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, MAX_ROWS_LIMIT, Database
from sqlwright.db.dialects import Dialect
from sqlwright.db.guard import check_sql
from sqlwright.db.result import Result
from sqlwright.db.schema import Schema
from sqlwright.errors import ConfigError, QueryFailed, QueryTimeout
from sqlwright.urls import mask_url  # noqa: F401  (re-exported: db.backend.mask_url)

log = logging.getLogger(__name__)

SAMPLE_SCAN_ROWS = 1000  # rows read per table to pick sample values (never a full scan)
COUNT_LIMIT = 100_000  # exact row counts up to this; beyond it, the dialect's estimate
MAX_SAMPLE_CHARS = 60  # longer text samples are cut (prompts need a hint, not the value)
INTROSPECTION_TIMEOUT = 10.0  # seconds per internal catalog query

_SCALARS = (str, int, float, decimal.Decimal, bool, _dt.date, _dt.time, _dt.timedelta, uuid.UUID)


def timeout_error(timeout: float) -> QueryTimeout:
    """The error raised when a statement runs past its limit; it names the setting to change."""
    return QueryTimeout(
        f"Query stopped after {timeout:g} s, its time limit; "
        "raise the limit with --timeout or SQLWRIGHT_TIMEOUT if it should run longer."
    )


def file_fingerprint(*paths: os.PathLike | str) -> str:
    """Path, size and mtime of each existing file: changes whenever a file-based database is written."""
    parts = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def one_line(text: object) -> str:
    """A library error message as one line (drivers add hints, carets and context lines)."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(text).__name__


class Watchdog:
    """Runs `action` in a timer thread if not cancelled within `seconds` (the backstop that stops a
    statement when the server's own limit did not). Use as a context manager around one statement."""

    def __init__(self, seconds: float, action: Callable[[], object]) -> None:
        self.fired = False
        self._action = action
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        try:
            self._action()
        except Exception as exc:  # the statement may have finished meanwhile; nothing to stop
            log.debug("watchdog action failed: %s", exc)

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()


def sample_values(rows: Sequence[Sequence[object]], n_columns: int, limit: int) -> list[tuple[object, ...]]:
    """Up to `limit` distinct non-null values per column from `rows`, in order of appearance.
    Binary values are skipped; long text is cut to MAX_SAMPLE_CHARS; other non-scalars become text."""
    out: list[list[object]] = [[] for _ in range(n_columns)]
    seen: list[set] = [set() for _ in range(n_columns)]
    if limit <= 0:
        return [() for _ in range(n_columns)]
    for row in rows:
        for i in range(n_columns):
            if len(out[i]) >= limit:
                continue
            value = row[i]
            if value is None or isinstance(value, bytes | bytearray | memoryview):
                continue
            if not isinstance(value, _SCALARS):
                value = str(value)
            if isinstance(value, str):
                if not value.strip():
                    continue
                if len(value) > MAX_SAMPLE_CHARS:
                    value = value[: MAX_SAMPLE_CHARS - 1] + "…"
            key = (type(value).__name__, value)
            if key in seen[i]:
                continue
            seen[i].add(key)
            out[i].append(value)
    return [tuple(v) for v in out]


class Backend(Database):
    """Base of the dialect backends: implements `execute` and `schema` over three hooks."""

    spec: ClassVar[type[Dialect]]

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.url = mask_url(url)
        self.dialect = self.spec.name
        self.timeout = float(timeout)
        self.max_rows = int(max_rows)
        self._schemas: dict[int, Schema] = {}
        self._lock = threading.RLock()

    # --- hooks ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _run(self, sql: str, timeout: float, max_rows: int, query: bool) -> tuple[tuple[str, ...], list[tuple], bool]:
        """Run one statement; return (column names, at most `max_rows` rows, truncated).
        `query` is True when the guard accepted the statement (it is known to be one SELECT)."""

    @abc.abstractmethod
    def _introspect(self, samples: int) -> Schema:
        """Read the catalog (and bounded samples) into a Schema."""

    # --- Database ------------------------------------------------------------------------------
    def execute(
        self,
        sql: str,
        *,
        timeout: float | None = None,
        max_rows: int | None = None,
        guard: bool = True,
    ) -> Result:
        """Run one statement (see Database.execute). `timeout` and `max_rows` default to the values the
        database was opened with (None means that default, never "unlimited")."""
        if guard:
            sql = check_sql(sql, self.dialect)
        limit = self.timeout if timeout is None else float(timeout)
        cap = self.max_rows if max_rows is None else int(max_rows)
        if not 0 < cap <= MAX_ROWS_LIMIT:
            raise ConfigError(f"max_rows must be from 1 to {MAX_ROWS_LIMIT:,}, not {cap:,}")
        with self._lock:
            start = time.perf_counter()
            try:
                columns, rows, truncated = self._run(sql, limit, cap, guard)
            except UnicodeEncodeError as exc:  # the drivers send UTF-8; the guard refuses such text first
                raise QueryFailed(
                    f"The statement cannot be sent as UTF-8: {exc.reason} at position {exc.start}."
                ) from exc
            seconds = time.perf_counter() - start
        return Result(columns, tuple(rows), truncated, seconds)

    @abc.abstractmethod
    def _run_internal(self, sql: str, params: tuple) -> list[tuple]:
        """Run a trusted internal catalog query with bound parameters on the read-only connection, with
        the introspection time limit and no row cap. Callers hold the lock."""

    def schema(self, *, samples: int = 3, refresh: bool = False) -> Schema:
        with self._lock:
            if refresh or samples not in self._schemas:
                self._schemas[samples] = self._introspect(samples)
            return self._schemas[samples]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
