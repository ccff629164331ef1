"""Introspection per dialect: tables, columns, keys, comments, row counts and bounded samples."""

from __future__ import annotations

import time

import pytest

from conftest import LONG_TEXT, NUMS
from sqlwright.db import open_database


def test_tables_are_the_user_tables(opened, testdb):
    names = [t.name for t in opened.schema().tables]
    expected = ["concert", "notes", "nums", "singer", "singer_in_concert"]
    if testdb.dialect == "postgres":  # other schemas come after public, namespaced
        expected = expected + ["sales.orders"]
    assert sorted(names) == sorted(expected)
    if testdb.dialect == "postgres":
        orders = opened.schema().table("sales.orders")
        assert orders.schema == "sales"
        assert orders.foreign_keys[0].ref_table == "singer"


def test_columns_types_and_nullability(opened):
    singer = opened.schema().table("singer")
    assert [c.name for c in singer.columns] == ["singer_id", "name", "country", "age"]
    assert "int" in singer.column("singer_id").type.lower()
    assert singer.column("name").nullable is False
    assert singer.column("country").nullable is True
    assert singer.column("singer_id").nullable is False


def test_primary_and_foreign_keys(opened):
    schema = opened.schema()
    assert schema.table("singer").primary_key == ("singer_id",)
    assert schema.table("singer").column("singer_id").primary_key
    link = schema.table("singer_in_concert")
    assert link.primary_key == ("concert_id", "singer_id")
    fks = {(fk.columns, fk.ref_table, fk.ref_columns) for fk in link.foreign_keys}
    assert fks == {(("concert_id",), "concert", ("concert_id",)), (("singer_id",), "singer", ("singer_id",))}


def test_comments_where_the_dialect_has_them(opened, testdb):
    singer = opened.schema().table("singer")
    if testdb.dialect == "sqlite":
        assert singer.comment is None and singer.column("name").comment is None
    else:
        assert singer.comment == "People who sing"
        assert singer.column("name").comment == "Full name of the singer"
        assert singer.column("singer_id").comment == "Singer identifier"
        assert singer.column("age").comment is None


def test_row_counts(opened):
    schema = opened.schema()
    assert schema.table("singer").row_count == 5
    assert schema.table("nums").row_count == NUMS
    assert schema.table("notes").row_count == 2


def test_samples_distinct_non_null_bounded(opened):
    schema = opened.schema(samples=3)
    singer = schema.table("singer")
    assert singer.column("singer_id").samples == (1, 2, 3)
    assert singer.column("name").samples == ("Joe Sharp", "Timbaland", "Justin Brown")
    assert singer.column("country").samples == ("Netherlands", "United States", "France")
    notes = schema.table("notes")
    long_sample = notes.column("body").samples[0]
    assert len(long_sample) <= 60 and long_sample.endswith("…") and LONG_TEXT.startswith(long_sample[:-1])
    assert notes.column("payload").samples == ()  # binary values are skipped
    assert opened.schema(samples=0).table("singer").column("name").samples == ()
    assert len(opened.schema(samples=5).table("nums").column("n").samples) == 5


def test_schema_is_cached_until_refresh(opened):
    first = opened.schema()
    assert opened.schema() is first
    assert opened.schema(refresh=True) == first


@pytest.mark.parametrize("name", ["world_1", "concert_singer", "car_1", "wta_1", "student_transcripts_tracking"])
def test_spider_databases_introspect_fast(spider_db, name):
    path = spider_db(name)
    start = time.perf_counter()
    with open_database(str(path)) as db:
        schema = db.schema()
    assert time.perf_counter() - start < 1.0
    assert schema.tables and all(t.columns for t in schema.tables)


def test_all_spider_dev_databases_introspect_under_a_second_each(data_dir):
    paths = sorted((data_dir / "spider" / "database").glob("*/*.sqlite"))
    assert len(paths) >= 20
    for path in paths:
        start = time.perf_counter()
        with open_database(str(path)) as db:
            schema = db.schema()
        assert time.perf_counter() - start < 1.0, path.name
        for table in schema.tables:
            for fk in table.foreign_keys:
                assert len(fk.columns) == len(fk.ref_columns), (path.name, table.name, fk)


def test_world_1_details(spider_db):
    with open_database(str(spider_db("world_1"))) as db:
        schema = db.schema()
    city = schema.table("city")
    assert city.row_count == 4079
    assert city.primary_key == ("ID",)
    assert ForeignKeyTuple(city) == {(("CountryCode",), "country", ("Code",))}
    assert schema.table("sqlite_sequence") is None


def ForeignKeyTuple(table):  # noqa: N802 - reads like a constructor in the assertion
    return {(fk.columns, fk.ref_table, fk.ref_columns) for fk in table.foreign_keys}
