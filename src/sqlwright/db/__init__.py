"""Databases: open one by URL, introspect it into a Schema, render the schema for prompts, guard and
execute read-only statements.

    db = open_database("sqlite:///concert_singer.sqlite")
    print(render_schema(db.schema()))
    result = db.execute("SELECT count(*) FROM singer")
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from sqlwright.db.backend import mask_url, one_line
from sqlwright.db.base import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, MAX_ROWS_LIMIT, Database
from sqlwright.db.dialects import Dialect, dialect_for_suffix, dialect_names, get_dialect
from sqlwright.db.guard import check_sql, split_statements
from sqlwright.db.identity import database_key, schema_fingerprint
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
    "database_key",
    "dialect_names",
    "get_dialect",
    "open_database",
    "render_ddl",
    "render_schema",
    "schema_fingerprint",
    "split_statements",
]


# A word that looks like a URL scheme at the start of what was given, followed by ":" or "//" (but not "://").
_SCHEME_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)(:|//)")
# Schemes of web and other non-database addresses, which no dialect will ever take.
_NON_DATABASE_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "file", "ws", "wss", "s3", "gs", "mailto"})
# Characters that would break a one-line message or that no file name or server accepts (NUL).
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
_SHOWN_CHARS = 200  # a URL longer than this is cut in messages


def _registered_dialects() -> list[type[Dialect]]:
    return [get_dialect(name) for name in dialect_names()]


# The URL forms, for messages that do not know which dialect was meant: files first.
_URL_FORMS = "use " + ", ".join(
    d.url_form for d in sorted(_registered_dialects(), key=lambda d: not d.file_based)
) + " or a path to a database file."


def _shown(url: str) -> str:
    """`url` for an error message: password masked, control characters escaped, cut when very long."""
    masked = mask_url(url)
    if masked == url:  # no password found by a URL parser: mask `user:secret@` in a malformed one too
        head, colon, rest = url.partition(":")
        masked = head + colon + re.sub(r"(?<=:)[^:@/]+(?=@)", "***", rest)
    if len(masked) > _SHOWN_CHARS:
        masked = masked[:_SHOWN_CHARS] + "…"
    return repr(masked)


def _check_text(url: str) -> None:
    """Refuse text no database can be named by: control or line-break characters (also percent-encoded,
    since the backends decode them), or text that is not valid Unicode (lone surrogates)."""
    try:
        url.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConnectionFailed(f"Database URL {_shown(url)} is not valid text ({exc.reason}).") from exc
    for text in (url, unquote(url)):
        bad = next((c for c in text if unicodedata.category(c) in _LINE_BREAKING), None)
        if bad is not None:
            raise ConnectionFailed(
                f"Database URL {_shown(url)} contains a control character (U+{ord(bad):04X}); no database is named so."
            )


def _check_server_url(url: str) -> None:
    """Refuse what a server URL's drivers would fail on with a bare Unicode error rather than their own:
    percent-escapes that do not decode to UTF-8, and host names no resolver accepts (an empty or
    over-long label, which Python's IDNA codec refuses before any lookup)."""
    try:
        unquote(url, errors="strict")
    except UnicodeDecodeError as exc:
        raise ConnectionFailed(f"Bad database URL {_shown(url)}: its %-escapes are not UTF-8 text.") from exc
    netloc = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    for host in unquote(netloc).split(","):  # PostgreSQL takes several hosts: h1:5432,h2:5433
        if host.startswith("[") or host.startswith("/"):  # an IPv6 literal, a socket folder
            continue
        name = host.rpartition(":")[0] if ":" in host else host
        try:
            name.encode("idna")
        except UnicodeError as exc:
            raise ConnectionFailed(
                f"Bad database URL {_shown(url)}: {name[:60]!r} is not a valid host name "
                "(a part between dots is empty or longer than 63 characters)."
            ) from exc


def _malformed_url_error(url: str) -> ConnectionFailed | None:
    """The error for text that is meant as a URL but has its separator wrong (`postgres:/x`, `sqlite:x.db`,
    `sqlite//x.db`), or None when it reads as a file path. Only known schemes (and near misses with a
    colon) count, so an ordinary relative path such as `data/x.db` is never taken for a URL."""
    match = _SCHEME_LIKE.match(url)
    if match is None:
        return None
    word, separator = match.group(1).lower(), match.group(2)
    if word in _NON_DATABASE_SCHEMES:
        return UnsupportedDatabase(f"{_shown(url)} is not a database URL; {_URL_FORMS}")
    schemes = {scheme: d for d in _registered_dialects() for scheme in (d.name, *d.schemes)}
    spec = schemes.get(word)
    if spec is None and separator == ":":
        close = difflib.get_close_matches(word, list(schemes), n=1, cutoff=0.8)
        spec = schemes[close[0]] if close else None
    if spec is None:
        return None
    return ConnectionFailed(f"Malformed database URL {_shown(url)}: write {spec.url_form}")


def _file_path(url: str, scheme_len: int) -> Path:
    """The file a `dialect:///path` URL names. Like SQLAlchemy, `sqlite:///rel.db` is relative and
    `sqlite:////abs.db` absolute; `sqlite:///abs.db` is also accepted when only `/abs.db` exists."""
    rest = unquote(url[scheme_len:].split("?", 1)[0])  # after "scheme://": "/path" (empty host)
    if not rest.startswith("/"):
        raise ConnectionFailed(f"Bad database URL {_shown(url)}: use three slashes, e.g. sqlite:///path/to.db")
    rest = rest[1:]
    if not rest:
        raise ConnectionFailed(f"Bad database URL {_shown(url)}: no file path given.")
    path = _expand(Path(rest), url)
    if not path.is_absolute() and not _exists(path, url) and _exists(Path("/" + rest), url):
        path = Path("/" + rest)
    return path


def _expand(path: Path, url: str) -> Path:
    try:
        return path.expanduser()
    except RuntimeError as exc:  # ~user of an unknown user
        raise ConnectionFailed(f"Cannot open database {_shown(url)}: {str(exc).rstrip('.')}.") from exc


def _exists(path: Path, url: str) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        raise ConnectionFailed(f"Cannot open database file {_shown(url)}: {reason}") from exc


def _check_database_file(path: Path, url: str) -> None:
    """Refuse what is there but is no file: a directory, a device, a pipe (opening a FIFO would block).
    A missing file is left to the backend, which names its dialect in the message."""
    try:
        path.resolve()  # what the backends do first; a loop of symbolic links fails here
    except (OSError, RuntimeError) as exc:
        raise ConnectionFailed(f"Cannot open database file {_shown(url)}: {one_line(exc)}") from exc
    if not _exists(path, url):
        return
    if path.is_dir():
        raise ConnectionFailed(f"Not a database file (it is a directory): {path}")
    if not path.is_file():
        raise ConnectionFailed(f"Not a database file (it is a device, pipe or socket): {path}")


def open_database(url: str, *, timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS) -> Database:
    """Open a read-only database by URL or file path.

    Accepts `sqlite:///path`, `duckdb:///path`, a bare path to a `.sqlite`/`.sqlite3`/`.db`/`.duckdb` file,
    `postgresql://user:pass@host:port/db` (or `postgres://`), `mysql://…` (`mariadb://`, `mysql+pymysql://`).
    `timeout` (seconds) and `max_rows` become the defaults of every `execute`.
    Raises ConnectionFailed (bad or malformed URL, missing or corrupt file, server down, bad credentials,
    unknown database) or UnsupportedDatabase (unknown scheme or file type), each with a one-line message."""
    if not isinstance(url, str | Path) or not str(url).strip():
        raise ConnectionFailed(f"No database URL given; {_URL_FORMS}")
    url = str(url).strip()
    _check_text(url)
    if not isinstance(timeout, numbers.Real) or isinstance(timeout, bool) or not 0 < timeout < math.inf:
        raise ConnectionFailed(f"The timeout must be a positive number of seconds, not {timeout!r}.")
    if not isinstance(max_rows, numbers.Integral) or isinstance(max_rows, bool) or not 0 < max_rows <= MAX_ROWS_LIMIT:
        raise ConnectionFailed(f"max_rows must be a whole number from 1 to {MAX_ROWS_LIMIT:,}, not {max_rows!r}.")
    scheme, sep, _ = url.partition("://")
    if not sep or "/" in scheme or "\\" in scheme:  # a bare file path, or a malformed URL
        path = _expand(Path(url), url)
        if not _exists(path, url):
            malformed = _malformed_url_error(url)
            if malformed is not None:
                raise malformed
        spec = dialect_for_suffix(path.suffix)
        if spec is None:
            if not _exists(path, url):
                raise ConnectionFailed(f"Database file not found: {path}")
            raise UnsupportedDatabase(
                f"Cannot tell the database type of {path} from its name; "
                "use a URL such as sqlite:///path or duckdb:///path."
            )
        target: object = path
        display = str(path)
    else:
        if scheme.lower() in _NON_DATABASE_SCHEMES:
            raise UnsupportedDatabase(f"{_shown(url)} is not a database URL; {_URL_FORMS}")
        spec = get_dialect(scheme)
        if not spec.file_based:
            _check_server_url(url)
        target = _file_path(url, len(scheme) + 3) if spec.file_based else url
        display = url
    if isinstance(target, Path):
        _check_database_file(target, url)
    try:
        backend = spec.backend_class()
    except ImportError as exc:
        raise ConnectionFailed(
            f"The {spec.name} driver is not installed: pip install 'sqlwright[{spec.name}]' ({exc.name} missing)"
        ) from exc
    return backend(display, target, timeout=timeout, max_rows=max_rows)
