"""The SQLite work files of long runs (synthesis, training pairs): opened, checked to be of their kind and
version, and set up the same way, so that a killed run resumes from its file and no other file is mistaken
for one."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from sqlwright.errors import ConfigError, DatasetError


def open_work_database(path: Path, *, kind: str, label: str, schema_version: int, ddl: str) -> sqlite3.Connection:
    """A connection to the work file at `path` (created with `ddl`, which must create a `meta(key, value)`
    table), in WAL mode. DatasetError (one line) when `path` is a folder, another kind of SQLite file (an eval
    run file, someone's database: `label` names the expected kind), written by a newer sqlwright, or not SQLite."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"cannot use {path} as a work file: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30)
    try:
        _check_kind(conn, path, kind, label, schema_version)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            conn.executescript(ddl)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('kind', ?), ('schema_version', ?), ('created', ?)",
                         (kind, str(schema_version), str(time.time())))
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatasetError(f"cannot use {path} as a work file: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_kind(conn: sqlite3.Connection, path: Path, kind: str, label: str, schema_version: int) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return
    row = conn.execute("SELECT value FROM meta WHERE key = 'kind'").fetchone() if "meta" in tables else None
    if row is None or row[0] != kind:
        raise DatasetError(f"{path} is not a sqlwright {label} work file")
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if version and int(version[0]) > schema_version:
        raise DatasetError(f"{path} was written by a newer sqlwright (work file version {version[0]})")


def bind_config(conn: sqlite3.Connection, key: str, config: dict, *, mismatch: Callable[[list[str]], str]) -> bool:
    """Store `config` (JSON-safe) under meta key `config:<key>`, or check it against the one stored there:
    True when resuming with the same configuration; ConfigError with `mismatch(names that differ)` otherwise."""
    text = json.dumps(config, sort_keys=True, ensure_ascii=False, default=str)
    config = json.loads(text)
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"config:{key}",)).fetchone()
    if row is None:
        with conn:
            conn.execute("INSERT INTO meta VALUES (?, ?)", (f"config:{key}", text))
        return False
    old = json.loads(row[0])
    if old != config:
        raise ConfigError(mismatch(sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))))
    return True
