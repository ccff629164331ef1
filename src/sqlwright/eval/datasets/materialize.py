"""Build Defog SQL-Eval's databases from its PostgreSQL dumps, for PostgreSQL, SQLite and MySQL/MariaDB.

The route, chosen for fidelity:

1. **PostgreSQL** — each dump `databases/<db>/<db>.sql` is fed to `psql -v ON_ERROR_STOP=1` (or, when
   psql is not installed, run through psycopg) into a database named `<prefix><db>_g<YYYYmmddHHMMSS>`
   (default prefix `sqlwright_sqleval_`; one *generation* per load). The database's COMMENT records the
   dump's sha256, the load time and a load id. Four dumps (broker, car_dealership, derm_treatment,
   ewallet) insert values relative to the load date (``CURRENT_DATE - INTERVAL '5 days'``, ``NOW()``):
   PostgreSQL evaluates those once, at load, while SQL-Eval's gold queries compare with the date they
   run on — so a database loaded on an earlier day drifts from its questions, and the newest generation
   loaded today from the same dump is reused, any other day a new one is loaded.
2. **SQLite and MySQL** are *copied from that PostgreSQL load* rather than transpiled statement by
   statement: tables are introspected (names and column types from the catalog, casing from the dump's
   CREATE TABLE statements, types mapped with sqlglot's type transpilation), and rows are read with
   ``SELECT *`` and inserted. Every date-relative value is therefore the same in all three dialects, and
   no dump construct (DATE_TRUNC, EXTRACT(EPOCH …), TO_CHAR, sequences, SERIAL defaults) needs a
   hand-written translation. Dates become ISO text in SQLite (the form SQL-Eval's SQLite gold queries
   expect from date()/strftime()), timestamps `DATETIME(6)` in MySQL.

   The SQLite copy lives at `<cache>/sqleval/<load date>/<db>-<load id>.sqlite`; the MySQL copy is the
   database `<prefix><db>`, whose COMMENT names the load id it was copied from. A copy is rebuilt
   whenever its PostgreSQL source was reloaded, so gold and predicted queries of one run always see one
   load. Loads are serialised across processes with server-side locks (pg_advisory_lock, GET_LOCK).

A reload never cuts off anyone using an earlier load (another evaluation, a server): the new generation
is made beside the old one, and an old one is dropped at a later load only once nothing uses it. Use is
what the servers report (pg_stat_activity; MySQL's processlist by default database) plus *leases*: a
materializer keeps, for as long as it lives (until :meth:`SqlEvalMaterializer.close`), an idle connection
to each PostgreSQL generation and MySQL copy it handed out, and a shared `flock` on `<copy>.lock` of each
SQLite copy; a load deletes an old SQLite copy only when it gets that lock exclusively. MySQL differs in
one way: SQL-Eval's MySQL gold names the database (``broker.sbCustomer``), so there is one copy per
database, not one per load. A new load is built in `<name>__sqlwright_next` and swapped in with one
atomic RENAME TABLE when no one else is on the copy; while someone is, loads keep using the copy as it
is (its load is older, with a warning) rather than change the data under a running evaluation.

This is database administration, not query execution: it uses psycopg / pymysql admin connections
directly, never the read-only `sqlwright.db` layer.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import decimal
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import sqlglot
from sqlglot import exp

from sqlwright.config import load_settings
from sqlwright.errors import DatasetError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "sqlwright_sqleval_"
# SQL-Eval's MySQL gold queries qualify tables with the bare database name (broker.sbCustomer), so the
# MySQL copies carry no prefix by default; an existing database sqlwright did not make is never replaced.
DEFAULT_MYSQL_PREFIX = ""
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_ADMIN_URL = "mysql://root@127.0.0.1:3306/"
MARKER_TAG = "sqlwright-sqleval"
LOCK_SECONDS = 600
GENERATION = re.compile(r"_g(\d{14})")  # the suffix of a PostgreSQL generation's name: _g<YYYYmmddHHMMSS>
MYSQL_STAGING_SUFFIX = "__sqlwright_next"  # where a MySQL copy is built before it is swapped in
MYSQL_RETIRED_SUFFIX = "__sqlwright_old"  # where the tables it replaces go, to be dropped


# --- the PostgreSQL source ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadInfo:
    """Which dump a PostgreSQL database holds and when it was loaded (stored in its COMMENT)."""

    sha256: str
    loaded_at: str  # ISO timestamp of the load, local time of this machine
    load_id: str  # unique per load: "<YYYYmmddTHHMMSS>-<sha256[:12]>"

    @property
    def load_date(self) -> str:
        return self.loaded_at[:10]

    def to_comment(self) -> str:
        return json.dumps({"tag": MARKER_TAG, "sha256": self.sha256, "loaded_at": self.loaded_at, "load_id": self.load_id})

    @staticmethod
    def building_comment() -> str:
        """The marker of a database being loaded: ours, but not (yet) a usable load."""
        return json.dumps({"tag": MARKER_TAG, "state": "building"})

    @staticmethod
    def is_ours(comment: str | None) -> bool:
        """Whether a database COMMENT says sqlwright made the database (so it may drop it)."""
        try:
            data = json.loads(comment or "")
        except json.JSONDecodeError:
            return False
        return isinstance(data, dict) and data.get("tag") == MARKER_TAG

    @classmethod
    def from_comment(cls, comment: str | None) -> LoadInfo | None:
        try:
            data = json.loads(comment or "")
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("tag") != MARKER_TAG:
            return None
        try:
            return cls(sha256=data["sha256"], loaded_at=data["loaded_at"], load_id=data["load_id"])
        except KeyError:
            return None


@dataclass(frozen=True)
class ColumnInfo:
    name: str  # as written in the dump (PostgreSQL folds it to lower case)
    pg_type: str  # format_type() text, e.g. "character varying(20)"
    not_null: bool


@dataclass(frozen=True)
class TableInfo:
    name: str
    pg_schema: str  # the PostgreSQL schema holding it (ewallet uses consumer_div, not public)
    pg_name: str  # the name in the PostgreSQL catalog
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]


def dump_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_identifier(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise DatasetError(f"invalid database name {name!r}: use lower-case letters, digits and _")
    return name


def _replace_path(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _pg_connect(url: str, **kwargs: Any):
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, **kwargs)
    except psycopg.Error as exc:
        raise DatasetError(f"cannot connect to PostgreSQL at {_mask(url)}: {str(exc).strip().splitlines()[0]}") from exc


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


@dataclass(frozen=True)
class Generation:
    """One PostgreSQL database holding a load of a dump: its name, COMMENT and other sessions on it."""

    name: str
    comment: str | None
    sessions: int

    @property
    def info(self) -> LoadInfo | None:
        return LoadInfo.from_comment(self.comment)


def pg_generations(admin, base: str) -> list[Generation]:
    """The databases holding loads of `base` (`<base>_g<stamp>`, and `<base>` as earlier versions named
    it), oldest first, each with the number of client sessions on it other than `admin`'s."""
    rows = admin.execute(
        "SELECT d.datname, shobj_description(d.oid, 'pg_database'), "
        "(SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid AND a.pid <> pg_backend_pid() "
        "AND a.backend_type = 'client backend') "
        "FROM pg_database d WHERE left(d.datname, %s) = %s ORDER BY d.datname",
        (len(base), base),
    ).fetchall()
    pattern = re.compile(re.escape(base) + f"(?:{GENERATION.pattern})?")
    return [Generation(name, comment, int(count)) for name, comment, count in rows if pattern.fullmatch(name)]


def original_names(dump_text: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Map lower-cased table name -> (table name as written, {lower column -> column as written}).

    PostgreSQL folds unquoted identifiers to lower case, but SQL-Eval's MySQL gold queries use the
    dump's spelling (sbCustomer), and MySQL table names are case-sensitive on Linux."""
    names: dict[str, tuple[str, dict[str, str]]] = {}
    for statement in re.findall(r"CREATE\s+TABLE\b.*?\);", dump_text, flags=re.IGNORECASE | re.DOTALL):
        try:
            create = sqlglot.parse_one(statement, read="postgres")
        except sqlglot.errors.ParseError:
            log.debug("could not parse %r for names; keeping catalog casing", statement[:60])
            continue
        table = create.find(exp.Table)
        if table is None:
            continue
        columns = {col.name.lower(): col.name for col in create.find_all(exp.ColumnDef)}
        names[table.name.lower()] = (table.name, columns)
    return names


def read_tables(conn, dump_text: str) -> list[TableInfo]:
    """Introspect the tables of every user schema of a loaded database, in creation (oid) order.

    The copies are flat (SQLite has one namespace; SQL-Eval's MySQL gold names tables unqualified), so
    two schemas holding the same table name is an error."""
    spelled = original_names(dump_text)
    tables = conn.execute(
        "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%' "
        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.oid"
    ).fetchall()
    seen: dict[str, str] = {}
    out = []
    for oid, schema, relname in tables:
        if relname in seen:
            raise DatasetError(f"table {relname!r} exists in schemas {seen[relname]!r} and {schema!r}; cannot flatten")
        seen[relname] = schema
        columns = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (oid,),
        ).fetchall()
        pk = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
            "ON true JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.n",
            (oid,),
        ).fetchall()
        table_name, column_names = spelled.get(relname, (relname, {}))
        cols = tuple(ColumnInfo(column_names.get(name, name), pg_type, bool(nn)) for name, pg_type, nn in columns)
        out.append(
            TableInfo(table_name, schema, relname, cols, tuple(column_names.get(name, name) for (name,) in pk))
        )
    return out


# --- targets: where a copy of the PostgreSQL load goes --------------------------------------------


_TARGETS: dict[str, type[Target]] = {}


class Target(abc.ABC):
    """A dialect SQL-Eval's databases are materialised into. Registered by `dialect`."""

    dialect: ClassVar[str] = ""
    sqlglot_dialect: ClassVar[str] = ""
    # Types sqlglot renders but the target cannot store, replaced by a storable type.
    type_overrides: ClassVar[dict[exp.DataType.Type, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.dialect:
            _TARGETS[cls.dialect] = cls

    def __init__(self, materializer: SqlEvalMaterializer) -> None:
        self.m = materializer

    @abc.abstractmethod
    def materialize(self, db: str, source_url: str, info: LoadInfo, dump_text: str) -> str:
        """Make (or reuse) the copy of `db` for load `info`; return its URL."""

    def column_type(self, pg_type: str, in_primary_key: bool = False) -> str:
        try:
            built = exp.DataType.build(pg_type, dialect="postgres")
        except (sqlglot.errors.ParseError, ValueError):
            log.warning("unknown PostgreSQL type %r; storing it as TEXT", pg_type)
            return "TEXT"
        if built.this in self.type_overrides:
            return self.type_overrides[built.this]
        return built.sql(dialect=self.sqlglot_dialect)

    @staticmethod
    def convert(value: Any) -> Any:
        """A PostgreSQL value as this target stores it."""
        if isinstance(value, dict | list):
            return json.dumps(value, default=str)
        if isinstance(value, uuid.UUID | dt.timedelta):
            return str(value)
        return value


def get_target(dialect: str) -> type[Target]:
    if dialect not in _TARGETS:
        raise DatasetError(f"SQL-Eval databases can be built for {', '.join(sorted(_TARGETS))}, not {dialect!r}")
    return _TARGETS[dialect]


def _copy_rows(conn, table: TableInfo, convert: Callable[[Any], Any], batch: int = 2000) -> Iterable[list[tuple]]:
    """Rows of a PostgreSQL table in physical (insertion) order, converted, in batches."""
    from psycopg import sql as pgsql

    query = pgsql.SQL("SELECT * FROM {}.{}").format(pgsql.Identifier(table.pg_schema), pgsql.Identifier(table.pg_name))
    with conn.cursor() as cursor:
        cursor.execute(query)
        while rows := cursor.fetchmany(batch):
            yield [tuple(convert(value) for value in row) for row in rows]


class PostgresTarget(Target):
    """The source itself: the dump loaded into PostgreSQL."""

    dialect = "postgres"

    def materialize(self, db: str, source_url: str, info: LoadInfo, dump_text: str) -> str:
        return source_url


class SQLiteTarget(Target):
    """A file under the cache folder, named for the load it was copied from."""

    dialect = "sqlite"
    sqlglot_dialect = "sqlite"
    type_overrides = {
        exp.DataType.Type.UUID: "TEXT",
        exp.DataType.Type.JSON: "TEXT",
        exp.DataType.Type.JSONB: "TEXT",
        exp.DataType.Type.ARRAY: "TEXT",
        exp.DataType.Type.INTERVAL: "TEXT",
        exp.DataType.Type.BOOLEAN: "BOOLEAN",
    }

    @staticmethod
    def convert(value: Any) -> Any:
        # ISO text is what SQLite's date functions read, and what SQL-Eval's SQLite gold expects.
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
        if isinstance(value, bool):
            return int(value)
        return Target.convert(value)

    def path_for(self, db: str, info: LoadInfo) -> Path:
        return self.m.cache_dir / info.load_date / f"{db}-{info.load_id}.sqlite"

    def materialize(self, db: str, source_url: str, info: LoadInfo, dump_text: str) -> str:
        path = self.path_for(db, info)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The lease comes first: from then on no other process's prune deletes this copy.
        lease = _shared_file_lock(_lock_path(path))
        if lease is not None:
            self.m.keep_lease((db, self.dialect), lease)
        if path.is_file():
            self.prune(db, keep=path)
            return f"sqlite:///{path.resolve()}"
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        partial.unlink(missing_ok=True)
        with _pg_connect(source_url) as source:
            tables = read_tables(source, dump_text)
            target = sqlite3.connect(partial)
            try:
                for table in tables:
                    target.execute(self.create_table(table))
                    marks = ", ".join("?" for _ in table.columns)
                    insert = f"INSERT INTO {_dq(table.name)} VALUES ({marks})"
                    for rows in _copy_rows(source, table, self.convert):
                        target.executemany(insert, rows)
                target.commit()
            finally:
                target.close()
        os.replace(partial, path)  # atomic: readers never see a half-written file
        log.info("built SQLite copy of %s at %s", db, path)
        self.prune(db, keep=path)
        return f"sqlite:///{path.resolve()}"

    def prune(self, db: str, keep: Path) -> None:
        """Delete the copies of `db` made from earlier loads that nobody uses: no process holds a lease
        (a shared lock on `<copy>.lock`). Where there are no file locks (not POSIX), keep them all."""
        try:
            import fcntl
        except ImportError:
            return
        copy_name = re.compile(rf"{re.escape(db)}-\d{{8}}T\d{{6}}-[0-9a-f]{{12}}\.sqlite")
        for old in self.m.cache_dir.glob(f"*/{db}-*.sqlite"):
            if old == keep or not copy_name.fullmatch(old.name):
                continue
            lock_path = _lock_path(old)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("keeping %s: another process uses it", old)
                    continue
                old.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)  # while locked: a late leaser sees it gone and retries
            finally:
                os.close(fd)
            log.info("deleted the unused SQLite copy %s", old)
            with contextlib.suppress(OSError):
                old.parent.rmdir()  # only succeeds once the date folder is empty

    def create_table(self, table: TableInfo) -> str:
        parts = [
            f"{_dq(col.name)} {self.column_type(col.pg_type)}{' NOT NULL' if col.not_null else ''}"
            for col in table.columns
        ]
        if table.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(_dq(name) for name in table.primary_key)})")
        return f"CREATE TABLE {_dq(table.name)} ({', '.join(parts)})"


class MySQLTarget(Target):
    """A MySQL/MariaDB database `<prefix><db>` whose COMMENT names the load it was copied from."""

    dialect = "mysql"
    sqlglot_dialect = "mysql"
    type_overrides = {
        # DATETIME, not TIMESTAMP: no 2038 limit, no time-zone conversion; (6) keeps NOW()'s microseconds.
        exp.DataType.Type.TIMESTAMP: "DATETIME(6)",
        exp.DataType.Type.TIMESTAMPTZ: "DATETIME(6)",
        exp.DataType.Type.UUID: "CHAR(36)",
        exp.DataType.Type.JSON: "JSON",
        exp.DataType.Type.JSONB: "JSON",
        exp.DataType.Type.ARRAY: "JSON",
        exp.DataType.Type.INTERVAL: "VARCHAR(64)",
    }

    @staticmethod
    def convert(value: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone().replace(tzinfo=None)
        return Target.convert(value)

    def column_type(self, pg_type: str, in_primary_key: bool = False) -> str:
        rendered = super().column_type(pg_type)
        # MySQL cannot index a TEXT column without a prefix length.
        if in_primary_key and rendered.upper() in ("TEXT", "LONGTEXT", "MEDIUMTEXT"):
            return "VARCHAR(255)"
        return rendered

    def create_table(self, table: TableInfo) -> str:
        keys = {name.lower() for name in table.primary_key}
        parts = [
            f"{_bq(col.name)} {self.column_type(col.pg_type, col.name.lower() in keys)}"
            f"{' NOT NULL' if col.not_null else ''}"
            for col in table.columns
        ]
        if table.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(_bq(name) for name in table.primary_key)})")
        return f"CREATE TABLE {_bq(table.name)} ({', '.join(parts)}) DEFAULT CHARSET=utf8mb4"

    def materialize(self, db: str, source_url: str, info: LoadInfo, dump_text: str) -> str:
        name = _check_identifier(self.m.mysql_prefix + db)
        staging = _check_identifier(name + MYSQL_STAGING_SUFFIX)
        retired = _check_identifier(name + MYSQL_RETIRED_SUFFIX)
        url = _replace_path(self.m.mysql_admin_url, name)
        with _mysql_connect(self.m.mysql_admin_url) as admin, admin.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", (name, LOCK_SECONDS))
            try:
                comments = _mysql_comments(cursor, (name, staging, retired))
                for database, comment in comments.items():
                    if not LoadInfo.is_ours(comment):
                        raise DatasetError(
                            f"MySQL database {database!r} exists and was not made by sqlwright; refusing to "
                            "replace it (drop it, or choose another mysql_prefix)"
                        )
                existing = LoadInfo.from_comment(comments.get(name))
                if existing is not None and existing.load_id == info.load_id:
                    log.info("reusing MySQL copy %s of load %s", name, info.load_id)
                elif existing is not None and (users := _mysql_sessions(cursor, name)):
                    log.warning(
                        "MySQL copy %s is in use by %d other connection(s): keeping its load of %s "
                        "(SQL-Eval's MySQL gold names the database, so a new load cannot go beside it); it "
                        "is replaced at the first load after they close",
                        name, users, existing.loaded_at,
                    )
                else:
                    self._build(cursor, staging, source_url, dump_text)
                    admin.commit()
                    self._swap_in(cursor, staging, name, retired, info)
                    log.info("built MySQL copy of %s as %s", db, name)
                # The lease is taken before the lock is released: no other load swaps the copy under it.
                self.m.keep_lease((db, self.dialect), _mysql_connect(self.m.mysql_admin_url, name))
                return url
            except _mysql_error() as exc:
                raise DatasetError(f"building MySQL database {name} failed: {exc}") from exc
            finally:
                cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))

    def _build(self, cursor, staging: str, source_url: str, dump_text: str) -> None:
        """Copy the PostgreSQL load into the (new) database `staging`."""
        cursor.execute(f"DROP DATABASE IF EXISTS {_bq(staging)}")
        cursor.execute(
            f"CREATE DATABASE {_bq(staging)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci COMMENT %s",
            (LoadInfo.building_comment(),),
        )
        cursor.execute(f"USE {_bq(staging)}")
        with _pg_connect(source_url) as source:
            for table in read_tables(source, dump_text):
                cursor.execute(self.create_table(table))
                marks = ", ".join("%s" for _ in table.columns)
                insert = f"INSERT INTO {_bq(table.name)} VALUES ({marks})"
                for rows in _copy_rows(source, table, self.convert):
                    cursor.executemany(insert, rows)

    @staticmethod
    def _swap_in(cursor, staging: str, name: str, retired: str, info: LoadInfo) -> None:
        """Replace the tables of `name` by those of `staging` in one atomic RENAME TABLE (a session on
        `name` sees the old tables or the new ones, never none), then drop the old ones."""
        cursor.execute("SET SESSION lock_wait_timeout = %s", (LOCK_SECONDS,))
        cursor.execute(f"DROP DATABASE IF EXISTS {_bq(retired)}")
        building = LoadInfo.building_comment()
        for database in (name, retired):
            cursor.execute(
                f"CREATE DATABASE IF NOT EXISTS {_bq(database)} CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_general_ci COMMENT %s",
                (building,),
            )
        moves = [f"{_bq(name)}.{_bq(t)} TO {_bq(retired)}.{_bq(t)}" for t in _mysql_tables(cursor, name)]
        moves += [f"{_bq(staging)}.{_bq(t)} TO {_bq(name)}.{_bq(t)}" for t in _mysql_tables(cursor, staging)]
        if moves:
            cursor.execute("RENAME TABLE " + ", ".join(moves))
        # The marker goes last: a half-swapped database is never taken for a good one.
        cursor.execute(f"ALTER DATABASE {_bq(name)} COMMENT %s", (info.to_comment(),))
        cursor.execute(f"DROP DATABASE {_bq(retired)}")
        cursor.execute(f"DROP DATABASE {_bq(staging)}")


def _mysql_comments(cursor, names: Iterable[str]) -> dict[str, str]:
    """SCHEMA_COMMENT of each of `names` that exists."""
    names = list(names)
    marks = ", ".join("%s" for _ in names)
    cursor.execute(
        f"SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({marks})",
        names,
    )
    return {row[0]: row[1] for row in cursor.fetchall()}


def _mysql_sessions(cursor, name: str) -> int:
    """Connections other than `cursor`'s whose default database is `name` (those the account may see:
    all of them with the PROCESS privilege)."""
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()", (name,)
    )
    return int(cursor.fetchone()[0])


def _mysql_tables(cursor, database: str) -> list[str]:
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
        (database,),
    )
    return [row[0] for row in cursor.fetchall()]


def _lock_path(copy: Path) -> Path:
    return copy.with_name(copy.name + ".lock")


def _shared_file_lock(lock_path: Path) -> int | None:
    """A descriptor holding a shared flock on `lock_path` (made if missing), or None where there are no
    file locks. A prune that deleted the file meanwhile (it unlinks it while holding the exclusive lock)
    is noticed by the inode and the lock taken again on the new file."""
    try:
        import fcntl
    except ImportError:
        return None
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                return fd
        os.close(fd)


def _release(lease: Any) -> None:
    """Close one lease: a descriptor (a file lock) or a connection."""
    with contextlib.suppress(Exception):  # a connection the server already closed (a forced drop) is fine
        if isinstance(lease, int):
            os.close(lease)
        else:
            lease.close()


def _release_all(leases: dict[tuple[str, str], Any]) -> None:
    while leases:
        _release(leases.popitem()[1])


def _dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_error() -> type[Exception]:
    import pymysql

    return pymysql.MySQLError


def _mysql_connect(url: str, database: str | None = None):
    import pymysql

    parts = urlsplit(url)
    try:
        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=database or (parts.path.strip("/") or None),
            charset="utf8mb4",
            connect_timeout=10,
            autocommit=False,
        )
    except pymysql.MySQLError as exc:
        raise DatasetError(f"cannot connect to MySQL at {_mask(url)}: {exc}") from exc


# --- the materializer ----------------------------------------------------------------------------


class SqlEvalMaterializer:
    """Builds SQL-Eval's databases on demand, at most once per (database, dialect) for its lifetime.

    Thread-safe: the evaluator's workers may ask for URLs concurrently."""

    def __init__(
        self,
        databases_dir: Path,
        *,
        prefix: str = DEFAULT_PREFIX,
        mysql_prefix: str = DEFAULT_MYSQL_PREFIX,
        cache_dir: Path | None = None,
        pg_admin_url: str | None = None,
        mysql_admin_url: str | None = None,
        reuse: bool = True,
    ) -> None:
        self.databases_dir = databases_dir
        self.prefix = _check_identifier(prefix) if prefix else prefix
        self.mysql_prefix = _check_identifier(mysql_prefix) if mysql_prefix else mysql_prefix
        self.cache_dir = cache_dir or load_settings().cache_dir / "sqleval"
        self.pg_admin_url = pg_admin_url or os.environ.get("SQLWRIGHT_PG_ADMIN_URL") or DEFAULT_PG_ADMIN_URL
        self.mysql_admin_url = mysql_admin_url or os.environ.get("SQLWRIGHT_MYSQL_ADMIN_URL") or DEFAULT_MYSQL_ADMIN_URL
        self.reuse = reuse
        self._loads: dict[str, tuple[str, LoadInfo]] = {}
        self._urls: dict[tuple[str, str], str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # (db, dialect) -> what marks the copy handed out as in use: an idle connection, or a file lock.
        self._leases: dict[tuple[str, str], Any] = {}
        # Released when the materializer is closed, garbage-collected, or at exit at the latest.
        self._release_leases = weakref.finalize(self, _release_all, self._leases)

    def close(self) -> None:
        """Give up the copies handed out: a later load may then drop them, once nothing else uses them.
        The URLs given stay valid until then. Closing twice is harmless."""
        self._release_leases()

    def __enter__(self) -> SqlEvalMaterializer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def keep_lease(self, key: tuple[str, str], lease: Any) -> None:
        """Hold `lease` (a connection or a file lock) for the copy `key` = (db, dialect) until closed."""
        old = self._leases.pop(key, None)
        if old is not None:
            _release(old)
        self._leases[key] = lease

    def dump_path(self, db: str) -> Path:
        path = self.databases_dir / db / f"{db}.sql"
        if not path.is_file():
            raise DatasetError(f"SQL-Eval dump for database {db!r} not found: {path}")
        return path

    def url(self, db: str, dialect: str) -> str:
        """The URL of `db` materialised for `dialect` (postgres | sqlite | mysql)."""
        target = get_target(dialect)
        with self._lock_for(db):
            key = (db, dialect)
            if key not in self._urls:
                source_url, info = self.postgres(db)
                dump_text = self.dump_path(db).read_text(encoding="utf-8")
                self._urls[key] = target(self).materialize(db, source_url, info, dump_text)
            return self._urls[key]

    def load_info(self, db: str) -> LoadInfo:
        """The PostgreSQL load this run uses for `db` (loading it if needed)."""
        return self.postgres(db)[1]

    def postgres(self, db: str) -> tuple[str, LoadInfo]:
        """Load (or reuse) the dump of `db` into PostgreSQL; return its URL and load marker.

        Reuses the newest generation loaded today from the same dump (unless `reuse` is off), else loads a
        new one beside the others; then drops the older generations nobody is connected to."""
        if db in self._loads:
            return self._loads[db]
        dump = self.dump_path(db)
        sha = dump_sha256(dump)
        base = _check_identifier(self.prefix + db)
        with _pg_connect(self.pg_admin_url) as admin:
            admin.execute("SELECT pg_advisory_lock(hashtext(%s))", (base,))
            try:
                generations = pg_generations(admin, base)
                today = dt.date.today().isoformat()
                usable = [
                    g for g in generations if g.info and g.info.sha256 == sha and g.info.load_date == today
                ]
                if self.reuse and usable:
                    newest = max(usable, key=lambda g: g.info.loaded_at)
                    name, info = newest.name, newest.info
                    log.info("reusing PostgreSQL database %s (loaded %s)", name, info.loaded_at)
                else:
                    name, info = self._load_generation(admin, base, {g.name for g in generations}, dump, sha)
                url = _replace_path(self.pg_admin_url, name)
                # The lease is taken before the lock is released: no other load drops the generation now.
                self.keep_lease((db, "postgres"), _pg_connect(url))
                self._drop_unused(admin, [g for g in generations if g.name != name])
            finally:
                admin.execute("SELECT pg_advisory_unlock(hashtext(%s))", (base,))
        self._loads[db] = (url, info)
        return url, info

    def _load_generation(
        self, admin, base: str, taken: set[str], dump: Path, sha: str
    ) -> tuple[str, LoadInfo]:
        """Load `dump` into a new database `<base>_g<now>`; return its name and load marker."""
        import psycopg
        from psycopg import sql as pgsql

        now = dt.datetime.now().replace(microsecond=0)
        while f"{base}_g{now:%Y%m%d%H%M%S}" in taken:  # two loads within one second
            now += dt.timedelta(seconds=1)
        name = _check_identifier(f"{base}_g{now:%Y%m%d%H%M%S}")
        info = LoadInfo(sha, now.isoformat(), f"{now:%Y%m%dT%H%M%S}-{sha[:12]}")
        ident = pgsql.Identifier(name)
        comment = pgsql.SQL("COMMENT ON DATABASE {} IS {}")
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(ident))
        admin.execute(comment.format(ident, pgsql.Literal(LoadInfo.building_comment())))
        try:
            self._run_dump(_replace_path(self.pg_admin_url, name), dump)
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            raise
        # The marker goes last: a half-loaded database is never taken for a good one.
        admin.execute(comment.format(ident, pgsql.Literal(info.to_comment())))
        log.info("loaded %s into PostgreSQL database %s", dump.name, name)
        return name, info

    @staticmethod
    def _drop_unused(admin, generations: Iterable[Generation]) -> None:
        """Drop the generations sqlwright made that no session is on. DROP DATABASE without FORCE refuses
        a database someone connected to since the count, so a late user is never cut off either."""
        import psycopg
        from psycopg import sql as pgsql

        for generation in generations:
            if not LoadInfo.is_ours(generation.comment):
                continue
            if generation.sessions:
                log.info("keeping %s: %d session(s) on it", generation.name, generation.sessions)
                continue
            try:
                admin.execute(pgsql.SQL("DROP DATABASE {}").format(pgsql.Identifier(generation.name)))
            except psycopg.errors.ObjectInUse:
                log.info("keeping %s: a session connected to it meanwhile", generation.name)
                continue
            log.info("dropped the unused PostgreSQL database %s", generation.name)

    def drop(self, db: str) -> None:
        """Remove every copy of `db` under this materializer's names that sqlwright made, in use or not
        (tests clean up with it); databases without sqlwright's marker are left alone."""
        from psycopg import sql as pgsql

        for key in [key for key in self._leases if key[0] == db]:
            _release(self._leases.pop(key))
        base = _check_identifier(self.prefix + db)
        with _pg_connect(self.pg_admin_url) as admin:
            for generation in pg_generations(admin, base):
                if LoadInfo.is_ours(generation.comment):
                    ident = pgsql.Identifier(generation.name)
                    admin.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))
        mysql_name = _check_identifier(self.mysql_prefix + db)
        try:
            with _mysql_connect(self.mysql_admin_url) as conn, conn.cursor() as cursor:
                names = (mysql_name, mysql_name + MYSQL_STAGING_SUFFIX, mysql_name + MYSQL_RETIRED_SUFFIX)
                for name, comment in _mysql_comments(cursor, names).items():
                    if LoadInfo.is_ours(comment):
                        cursor.execute(f"DROP DATABASE {_bq(name)}")
        except DatasetError:
            log.debug("MySQL not reachable; nothing to drop there")
        for (known_db, _dialect), url in list(self._urls.items()):
            if known_db == db and url.startswith("sqlite:///"):
                copy = Path(url.removeprefix("sqlite:///"))
                copy.unlink(missing_ok=True)
                _lock_path(copy).unlink(missing_ok=True)
        self._urls = {key: value for key, value in self._urls.items() if key[0] != db}
        self._loads.pop(db, None)

    def _lock_for(self, db: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(db, threading.Lock())

    def _run_dump(self, url: str, dump: Path) -> None:
        psql = shutil.which("psql")
        if psql is None:
            self._run_dump_psycopg(url, dump)
            return
        completed = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(dump)],
            capture_output=True,
            text=True,
            timeout=LOCK_SECONDS,
            env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
        )
        if completed.returncode != 0:
            first = next((line for line in completed.stderr.splitlines() if "ERROR" in line), completed.stderr.strip())
            raise DatasetError(f"loading {dump} into PostgreSQL failed: {first}")

    def _run_dump_psycopg(self, url: str, dump: Path) -> None:
        import psycopg

        text = dump.read_text(encoding="utf-8")
        if re.search(r"^COPY\b.*FROM\s+stdin", text, flags=re.IGNORECASE | re.MULTILINE):
            raise DatasetError(f"{dump} holds COPY … FROM stdin blocks; install psql (postgresql-client) to load it")
        with _pg_connect(url) as conn:
            try:
                # No parameters: psycopg sends the text with the simple protocol, many statements at once.
                conn.execute(text.encode())
            except psycopg.Error as exc:
                raise DatasetError(f"loading {dump} into PostgreSQL failed: {str(exc).strip().splitlines()[0]}") from exc
