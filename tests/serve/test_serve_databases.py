"""serve/databases.py: the named databases a server offers, parsed from its arguments and opened read-only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import sqlwright.serve.databases as databases_module
from sqlwright.config import load_settings
from sqlwright.errors import ConfigError, ConnectionFailed, QueryFailed, QueryRefused
from sqlwright.serve.databases import DatabaseSet, DatabaseSpec, UnknownDatabase, parse_spec, parse_specs


def make_db(path: Path, rows: int = 1) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x INTEGER)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    con.commit()
    con.close()
    return path


@pytest.fixture()
def settings(tmp_path):
    return load_settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")


@pytest.mark.parametrize(("text", "spec"), [
    ("sample", DatabaseSpec("sample", "sample")),
    ("data/shop.sqlite", DatabaseSpec("shop", "data/shop.sqlite")),
    ("sqlite:///srv/My Shop.sqlite", DatabaseSpec("My_Shop", "sqlite:///srv/My Shop.sqlite")),
    ("duckdb:///srv/warehouse.duckdb", DatabaseSpec("warehouse", "duckdb:///srv/warehouse.duckdb")),
    ("postgresql://me:pw@db.example.org:5432/sales", DatabaseSpec("sales", "postgresql://me:pw@db.example.org:5432/sales")),
    ("postgresql://db.example.org/sales?sslmode=require",
     DatabaseSpec("sales", "postgresql://db.example.org/sales?sslmode=require")),
    ("mysql://root@127.0.0.1:3306/shop", DatabaseSpec("shop", "mysql://root@127.0.0.1:3306/shop")),
    ("postgresql://db.example.org/", DatabaseSpec("db", "postgresql://db.example.org/")),
    ("crm=postgresql://db/x?a=b", DatabaseSpec("crm", "postgresql://db/x?a=b")),
    ("  live.v2=sample ", DatabaseSpec("live.v2", "sample")),
])
def test_parse_spec_names_each_database(text: str, spec: DatabaseSpec) -> None:
    assert parse_spec(text) == spec


@pytest.mark.parametrize(("text", "message"), [
    ("", "an empty database argument"),
    ("   ", "an empty database argument"),
    ("my shop=data/x.sqlite", "bad database name 'my shop'"),
    ("-x=data/x.sqlite", "bad database name '-x'"),
    ("shop=", "no URL after shop="),
    ("shop=   ", "no URL after shop="),
])
def test_parse_spec_refuses_what_names_nothing(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_spec(text)
    assert "\n" not in str(info.value)


def test_parse_specs_refuses_two_databases_with_one_name() -> None:
    with pytest.raises(ConfigError, match="two databases are named 'shop' .a/shop.sqlite and b/shop.sqlite.: name them"):
        parse_specs(["a/shop.sqlite", "b/shop.sqlite"])
    assert [s.name for s in parse_specs(["a=a/shop.sqlite", "b=b/shop.sqlite"])] == ["a", "b"]
    with pytest.raises(ConfigError, match="no database given"):
        parse_specs([])


def test_open_serves_databases_by_name(tmp_path, settings) -> None:
    one = make_db(tmp_path / "one.sqlite", rows=1)
    two = make_db(tmp_path / "two.sqlite", rows=2)
    with_sample = DatabaseSet.open([str(one), f"second={two}", "sample"], settings)
    try:
        assert with_sample.names == ["one", "second", "sample"]
        assert with_sample.get("second").execute("SELECT count(*) FROM t").rows == ((2,),)
        assert with_sample.get("sample").schema().tables  # the bundled database, built in the cache
        with pytest.raises(UnknownDatabase, match="no database named 'third': this server offers one, second, sample"):
            with_sample.get("third")
        with pytest.raises(UnknownDatabase, match="name a database: one of one, second, sample"):
            with_sample.get(None)
        with pytest.raises(QueryRefused):  # opened read-only, through the guard
            with_sample.get("one").execute("DELETE FROM t")
        assert [name for name, _ in with_sample.items()] == with_sample.names
    finally:
        with_sample.close()
    single = DatabaseSet.open([str(one)], settings)
    try:
        assert single.get(None) is single.get("") is single.get("one")
    finally:
        single.close()


def test_open_applies_the_settings_limits(tmp_path) -> None:
    path = make_db(tmp_path / "many.sqlite", rows=10)
    settings = load_settings(cache_dir=tmp_path / "cache", max_rows=3, timeout=2)
    dbs = DatabaseSet.open([str(path)], settings)
    try:
        result = dbs.get("many").execute("SELECT x FROM t")
        assert len(result.rows) == 3 and result.truncated
    finally:
        dbs.close()


def test_open_closes_what_it_opened_when_one_fails(tmp_path, settings, monkeypatch) -> None:
    good = make_db(tmp_path / "good.sqlite")
    opened = []
    real_open = databases_module.open_database

    def spy(url, **kwargs):
        db = real_open(url, **kwargs)
        opened.append(db)
        return db

    monkeypatch.setattr(databases_module, "open_database", spy)
    with pytest.raises(ConnectionFailed, match="missing"):
        DatabaseSet.open([str(good), str(tmp_path / "missing.sqlite")], settings)
    assert len(opened) == 1
    with pytest.raises(QueryFailed, match="is closed"):
        opened[0].execute("SELECT 1")
