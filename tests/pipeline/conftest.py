"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sqlwright.db import open_database


@pytest.fixture()
def db(tmp_path: Path):
    """A tiny SQLite database: t(id, v) with rows (1, 'a'), (2, 'b'), (3, NULL)."""
    path = tmp_path / "t.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
                      "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL);")
    con.commit()
    con.close()
    with open_database(f"sqlite:///{path}") as database:
        yield database
