"""The bundled sample database: a small outdoor-gear shop, built from data/sample.sql into the cache."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from importlib import resources
from pathlib import Path

SAMPLE_NAME = "sample"  # what users type instead of a URL: `sqlwright ask sample "..."`


def sample_script() -> str:
    return resources.files("sqlwright.data").joinpath("sample.sql").read_text(encoding="utf-8")


def sample_database_path(cache_dir: Path) -> Path:
    """Path of the sample SQLite database, (re)built when missing or when the script changed."""
    script = sample_script()
    digest = hashlib.sha256(script.encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"sample-{digest}.sqlite"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(script)
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, path)  # atomic: a concurrent reader never sees a half-built file
    return path
