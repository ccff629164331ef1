"""A database's identity for what sqlwright remembers about it (examples, notes): where it is, and what
its schema looks like.

`database_key` names the database by dialect and location, never by credentials: the same file reached by
different relative paths, or the same server database reached as another user, has one key.
`schema_fingerprint` hashes the schema's shape (tables, columns, types, keys), not its content, so it
survives inserts and changes when a column is added, dropped, renamed or retyped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from sqlwright.db.base import Database
from sqlwright.db.dialects import get_dialect
from sqlwright.db.schema import Schema

_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
# Names of this machine: a server reached through any of them (or a local socket) is the same server.
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "[::1]", "localhost.localdomain"})


def database_key(db: Database) -> str:
    """`dialect:location` without credentials: `sqlite:/abs/path.db`, `duckdb:/abs/path.duckdb`,
    `postgres://host:port/dbname`, `mysql://host:port/dbname` (this machine's names as `localhost`)."""
    path = getattr(db, "path", None)
    if get_dialect(db.dialect).file_based and path is not None:  # its file's resolved absolute path
        return f"{db.dialect}:{Path(path).resolve()}"
    return f"{db.dialect}://{_server_location(db.url, db.dialect)}"


def _server_location(url: str, dialect: str) -> str:
    """`host:port/dbname` of a server URL (hosts as written, several for PostgreSQL's failover lists)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    netloc = parts.netloc.rpartition("@")[2]  # drop user:password@
    default_port = _DEFAULT_PORTS.get(dialect)
    hosts = [h.strip() for h in unquote(query.get("host", "") or netloc).split(",")]
    ports = [p.strip() for p in query.get("port", "").split(",")] if query.get("port") else []
    located = []
    for i, host in enumerate(hosts):
        name, port = host, ports[i] if i < len(ports) else ""
        if host.startswith("["):  # an IPv6 literal, perhaps with its port
            name, _, rest = host.partition("]")
            name += "]"
            port = rest.lstrip(":") or port
        elif host.count(":") == 1:
            name, _, port = host.partition(":")
        name = name.lower()
        if name in _LOCAL_HOSTS or name.startswith("/"):  # a Unix socket folder is this machine's server
            name = "localhost"
        located.append(f"{name}:{port or default_port}")
    dbname = unquote(parts.path.lstrip("/")) or query.get("dbname", "")
    if not dbname and dialect == "postgres":  # libpq's default database is the user's name
        dbname = unquote(parts.username or query.get("user", "")) or "postgres"
    return f"{','.join(located)}/{dbname}"


def schema_fingerprint(schema: Schema) -> str:
    """sha256 (hex) of the dialect and every table's namespace, name, columns with their types, primary key
    and foreign keys, all sorted: independent of sample values, row counts, comments and column order."""
    tables = []
    for table in schema.tables:
        tables.append([
            table.schema or "",
            table.name,
            sorted([c.name, " ".join(c.type.upper().split())] for c in table.columns),
            sorted(table.primary_key),
            sorted([list(fk.columns), fk.ref_table, list(fk.ref_columns)] for fk in table.foreign_keys),
        ])
    tables.sort()
    text = json.dumps([schema.dialect, tables], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
