"""Databases: open one by URL, introspect it into a Schema, render the schema for prompts, guard and
execute read-only statements.

    db = open_database("sqlite:///concert_singer.sqlite")
    print(render_schema(db.schema()))
    result = db.execute("SELECT count(*) FROM singer")
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from sqlwright.db.backend import mask_url
from sqlwright.db.base import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, Database
from sqlwright.db.dialects import Dialect, dialect_for_suffix, dialect_names, get_dialect
from sqlwright.db.guard import check_sql, split_statements
from sqlwright.db.render import render_ddl, render_schema
from sqlwright.db.result import Result
from sqlwright.db.schema import Column, ForeignKey, Schema, Table
from sqlwright.errors import ConnectionFailed, UnsupportedDatabase

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_TIMEOUT",
    "Column",
    "Database",
    "Dialect",
    "ForeignKey",
    "Result",
    "Schema",
    "Table",
    "check_sql",
    "dialect_names",
    "get_dialect",
    "open_database",
    "render_ddl",
    "render_schema",
    "split_statements",
]


def _file_path(url: str, scheme_len: int) -> Path:
    """The file a `dialect:///path` URL names. Like SQLAlchemy, `sqlite:///rel.db` is relative and
    `sqlite:////abs.db` absolute; `sqlite:///abs.db` is also accepted when only `/abs.db` exists."""
    rest = unquote(url[scheme_len:].split("?", 1)[0])  # after "scheme://": "/path" (empty host)
    if not rest.startswith("/"):
        raise ConnectionFailed(f"Bad database URL {mask_url(url)!r}: use three slashes, e.g. sqlite:///path/to.db")
    rest = rest[1:]
    if not rest:
        raise ConnectionFailed(f"Bad database URL {mask_url(url)!r}: no file path given.")
    path = Path(rest).expanduser()
    if not path.is_absolute() and not path.exists() and Path("/" + rest).exists():
        path = Path("/" + rest)
    return path


def open_database(url: str, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS) -> Database:
    """Open a read-only database by URL or file path.

    Accepts `sqlite:///path`, `duckdb:///path`, a bare path to a `.sqlite`/`.sqlite3`/`.db`/`.duckdb` file,
    `postgresql://user:pass@host:port/db` (or `postgres://`), `mysql://…` (`mariadb://`, `mysql+pymysql://`).
    `timeout` (seconds) and `max_rows` become the defaults of every `execute`.
    Raises ConnectionFailed (bad URL, missing or corrupt file, server down, bad credentials, unknown
    database) or UnsupportedDatabase (unknown scheme or file type), each with a one-line message."""
    if not isinstance(url, str | Path) or not str(url).strip():
        raise ConnectionFailed("No database URL given; e.g. sqlite:///path/to.db or postgresql://user@host/db")
    url = str(url).strip()
    if timeout is None or timeout <= 0:
        raise ConnectionFailed(f"The timeout must be a positive number of seconds, not {timeout!r}.")
    if max_rows is None or max_rows <= 0:
        raise ConnectionFailed(f"max_rows must be a positive number, not {max_rows!r}.")
    scheme, sep, _ = url.partition("://")
    if not sep or "/" in scheme or "\\" in scheme:  # a bare file path
        path = Path(url).expanduser()
        spec = dialect_for_suffix(path.suffix)
        if spec is None:
            if not path.exists():
                raise ConnectionFailed(f"Database file not found: {path}")
            raise UnsupportedDatabase(
                f"Cannot tell the database type of {path} from its name; "
                "use a URL such as sqlite:///path or duckdb:///path."
            )
        target: object = path
        display = str(path)
    else:
        spec = get_dialect(scheme)
        target = _file_path(url, len(scheme) + 3) if spec.file_based else url
        display = url
    try:
        backend = spec.backend_class()
    except ImportError as exc:
        raise ConnectionFailed(
            f"The {spec.name} driver is not installed: pip install 'sqlwright[{spec.name}]' ({exc.name} missing)"
        ) from exc
    return backend(display, target, timeout=timeout, max_rows=max_rows)
