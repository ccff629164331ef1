"""The `Database` interface every dialect backend implements (see db/README in DESIGN.md).

Open one with `sqlwright.db.open_database(url)`; never construct backends directly.
"""

from __future__ import annotations

import abc

from sqlwright.db.result import Result
from sqlwright.db.schema import Schema

DEFAULT_TIMEOUT = 10.0  # seconds of wall clock per statement
DEFAULT_MAX_ROWS = 1000  # rows returned per statement; more sets Result.truncated
MAX_ROWS_LIMIT = 2**31 - 2  # the largest row cap: drivers fetch cap + 1 rows through a C int


class Database(abc.ABC):
    """A read-only connection to one database. Safe to use from one thread at a time."""

    url: str  # the URL it was opened with, password masked
    dialect: str  # registered dialect name: "sqlite", "postgres", "mysql", "duckdb"

    @abc.abstractmethod
    def schema(self, *, samples: int = 3, refresh: bool = False) -> Schema:
        """Introspect (cached after the first call unless `refresh`)."""

    @abc.abstractmethod
    def execute(
        self,
        sql: str,
        *,
        timeout: float | None = None,
        max_rows: int | None = None,
        guard: bool = True,
    ) -> Result:
        """Run one statement. `timeout`/`max_rows` of None mean the limits the database was opened with
        (DEFAULT_TIMEOUT / DEFAULT_MAX_ROWS unless given to open_database), never "unlimited".
        With `guard` (the default) the statement must pass the sqlglot guard
        first (QueryRefused otherwise). Raises QueryTimeout past `timeout`, QueryFailed on errors."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A string that changes when the database's content or schema changes (caches key on it)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
