"""The public API is what __all__ says, and every name in it resolves."""

import sqlwright


def test_every_export_resolves():
    for name in sqlwright.__all__:
        assert getattr(sqlwright, name) is not None, name


def test_connect_and_sql_on_sample(tmp_path):
    with sqlwright.connect("sample", cache_dir=tmp_path) as conn:
        result = conn.sql("SELECT count(*) FROM products WHERE discontinued = 1")
        assert result.rows == ((2,),)
        assert conn.schema().table("orders") is not None
