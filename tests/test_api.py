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


def test_settings_never_show_a_password_or_key_in_their_repr():
    from sqlwright.config import load_settings

    settings = load_settings(state_url="postgresql://app:s3cret@db/state", api_key="sk-s3cret")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    assert settings.state_url.endswith("@db/state") and settings.api_key == "sk-s3cret"
