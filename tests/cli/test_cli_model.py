"""`sqlwright ask` end to end with the real embedded model (the 0.5B in CI)."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from sqlwright.cli import app

pytestmark = pytest.mark.model
MODEL = os.environ.get("SQLWRIGHT_TEST_MODEL", "qwen2.5-coder-0.5b")
runner = CliRunner()


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How many customers are there?", [[20]]),
        ("How many orders have the status 'cancelled'?", [[4]]),
    ],
)
def test_ask_sample_database_json(question, expected):
    result = runner.invoke(app, ["ask", "sample", question, "--model", MODEL, "--format", "json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
    assert data["rows"] == expected
    assert data["abstained"] is False
    assert data["candidates"]


def test_ask_table_output_with_sql():
    result = runner.invoke(app, ["ask", "sample", "List the names of all departments.", "--model", MODEL,
                                 "--show-sql"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "SELECT" in result.output.upper()
    for name in ("Sales", "Warehouse", "Marketing"):
        assert name in result.output
