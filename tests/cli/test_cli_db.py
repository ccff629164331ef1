"""The CLI commands that need no model: sql, schema, sample, and the errors a user can cause."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from sqlwright.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture()
def sample_db(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    result = run("sample")
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_sample_database_is_built_once_and_realistic(sample_db):
    conn = sqlite3.connect(sample_db)
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("customers", "products", "orders", "order_items", "employees", "departments")}
    assert counts == {"customers": 20, "products": 20, "orders": 60, "order_items": 120,
                      "employees": 12, "departments": 5}
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert run("sample").output.strip() == sample_db


def test_sql_json_output(sample_db):
    result = run("sql", sample_db, "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["columns"] == ["status", "n"]
    assert data["rows"] == [["cancelled", 4], ["delivered", 48], ["pending", 3], ["shipped", 5]]


def test_sql_by_sample_name_and_csv(sample_db):
    result = run("sql", "sample", "SELECT name FROM categories ORDER BY category_id LIMIT 2", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["name", "Tents", "Backpacks"]


def test_sql_row_cap(sample_db):
    result = run("sql", sample_db, "SELECT * FROM order_items", "--max-rows", "5", "--format", "json")
    data = json.loads(result.output)
    assert len(data["rows"]) == 5 and data["truncated"] is True


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM orders", "DROP TABLE orders", "SELECT 1; DELETE FROM orders", "PRAGMA writable_schema=1",
     "ATTACH DATABASE '/tmp/x.db' AS x"],
)
def test_sql_refuses_writes_with_exit_2(sample_db, statement):
    result = run("sql", sample_db, statement)
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    conn = sqlite3.connect(sample_db)
    assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 60


def test_schema_formats(sample_db):
    text = run("schema", sample_db)
    assert text.exit_code == 0 and "order_items" in text.output and "customers" in text.output
    ddl = run("schema", sample_db, "--format", "ddl")
    assert "CREATE TABLE" in ddl.output
    js = json.loads(run("schema", sample_db, "--format", "json").output)
    assert {t["name"] for t in js["tables"]} >= {"orders", "customers", "products"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("sql", "/nonexistent/dir/shop.db", "SELECT 1"), "shop.db"),
        (("sql", "oracle://host/db", "SELECT 1"), "oracle"),
        (("sql", "postgresql://postgres@127.0.0.1:1/x", "SELECT 1"), "127.0.0.1"),
        (("schema", "/nonexistent.sqlite"), "nonexistent"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, needle):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_corrupt_sqlite_file(tmp_path):
    bad = tmp_path / "corrupt.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    result = run("sql", str(bad), "SELECT 1")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_empty_question_exit_2(sample_db):
    result = run("ask", sample_db, "   ")
    assert result.exit_code == 2 and "empty" in result.output


def test_unknown_model_exit_2(sample_db):
    result = run("ask", sample_db, "How many orders?", "--model", "gpt-17-ultra")
    assert result.exit_code == 2, result.output
    assert "gpt-17-ultra" in result.output and "Traceback" not in result.output


def test_sql_timeout_names_the_setting(tmp_path):
    path = tmp_path / "big.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(2000)])
    conn.commit()
    conn.close()
    result = run("sql", str(path), "SELECT count(*) FROM t a, t b, t c", "--timeout", "0.5")
    assert result.exit_code != 0
    assert "timeout" in result.output.lower() and "Traceback" not in result.output
