"""The registry of database dialects sqlwright supports.

Modelled on sqlglot's dialects: each dialect is a small class of facts (its name, the sqlglot dialect
it parses with, the URL schemes and file suffixes that select it, the module holding its backend)
registered by ``__init_subclass__`` and looked up by name with a "did you mean" error.
Behaviour lives in the backends; nothing here branches on dialect strings.
"""

from __future__ import annotations

import difflib
import importlib
from typing import ClassVar

from sqlwright.errors import UnsupportedDatabase

_REGISTRY: dict[str, type[Dialect]] = {}


class Dialect:
    """Facts about one SQL dialect. Subclasses register themselves by their `name`."""

    name: ClassVar[str] = ""
    sqlglot: ClassVar[str] = ""  # the sqlglot dialect name used to parse, guard and render
    schemes: ClassVar[tuple[str, ...]] = ()  # URL schemes, lower case, e.g. "postgresql"
    suffixes: ClassVar[tuple[str, ...]] = ()  # file suffixes that select this dialect for a bare path
    backend: ClassVar[str] = ""  # "module:ClassName" of the Database implementation
    identifier_quote: ClassVar[str] = '"'
    file_based: ClassVar[bool] = False
    executable_comments: ClassVar[bool] = False  # the server runs code inside /*! ... */ comments
    file_table_scans: ClassVar[bool] = False  # FROM 'path.csv' reads a file
    comment_style: ClassVar[str] = "comment_on"  # DDL comments: COMMENT ON | inline COMMENT | sql_comment
    url_form: ClassVar[str] = ""  # the URL's shape, shown when a URL of this dialect is malformed

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            _REGISTRY[cls.name] = cls

    @classmethod
    def quote(cls, identifier: str) -> str:
        """Quote an identifier for this dialect (always quoted: names may be keywords or mixed case)."""
        q = cls.identifier_quote
        return f"{q}{identifier.replace(q, q + q)}{q}"

    @classmethod
    def backend_class(cls) -> type:
        """Import and return the backend class (imported lazily: drivers are optional extras)."""
        module_name, _, class_name = cls.backend.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, class_name)


class SQLite(Dialect):
    name = "sqlite"
    sqlglot = "sqlite"
    schemes = ("sqlite", "sqlite3")
    suffixes = (".sqlite", ".sqlite3", ".db")
    backend = "sqlwright.db.sqlite:SQLiteDatabase"
    url_form = "sqlite:///path/to.db"
    file_based = True
    comment_style = "sql_comment"


class Postgres(Dialect):
    name = "postgres"
    sqlglot = "postgres"
    schemes = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
    backend = "sqlwright.db.postgres:PostgresDatabase"
    url_form = "postgresql://user@host:5432/dbname"


class MySQL(Dialect):
    """MySQL and MariaDB (the backend detects which server it talks to)."""

    name = "mysql"
    sqlglot = "mysql"
    schemes = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
    backend = "sqlwright.db.mysql:MySQLDatabase"
    url_form = "mysql://user@host:3306/dbname"
    identifier_quote = "`"
    executable_comments = True
    comment_style = "inline"


class DuckDB(Dialect):
    name = "duckdb"
    sqlglot = "duckdb"
    schemes = ("duckdb",)
    suffixes = (".duckdb", ".ddb")
    backend = "sqlwright.db.duckdb:DuckDBDatabase"
    url_form = "duckdb:///path/to.duckdb"
    file_based = True
    file_table_scans = True


def dialect_names() -> list[str]:
    """Names of all registered dialects, sorted."""
    return sorted(_REGISTRY)


def get_dialect(name: str) -> type[Dialect]:
    """The dialect registered as `name` (case-insensitive; a URL scheme works too).

    Raises UnsupportedDatabase with a "did you mean" hint for unknown names."""
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    for dialect in _REGISTRY.values():
        if key in dialect.schemes:
            return dialect
    known = sorted(set(_REGISTRY) | {s for d in _REGISTRY.values() for s in d.schemes})
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnsupportedDatabase(
        f"Unsupported database dialect {name!r}.{hint} Supported: {', '.join(dialect_names())}."
    )


def dialect_for_suffix(suffix: str) -> type[Dialect] | None:
    """The dialect whose files end with `suffix` (".sqlite", ".duckdb", ...), or None."""
    low = suffix.lower()
    return next((d for d in _REGISTRY.values() if low in d.suffixes), None)
