"""`sqlwright models list|path|verify` against the installed 0.5B part packages."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sqlwright.cli import app

runner = CliRunner()
SIZE_05B = 491_400_064


def test_models_list_json_knows_both_models():
    result = runner.invoke(app, ["models", "list", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    models = {m["name"]: m for m in json.loads(result.output)}
    assert set(models) >= {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"}
    assert models["qwen2.5-coder-1.5b"]["default"] is True
    assert models["qwen2.5-coder-0.5b"]["size"] == SIZE_05B


def test_models_unknown_name_is_a_user_error():
    result = runner.invoke(app, ["models", "path", "qwen9-coder"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "unknown model" in result.output and "qwen2.5-coder-0.5b" in result.output


def test_models_path_of_a_missing_gguf_file(tmp_path):
    result = runner.invoke(app, ["models", "path", str(tmp_path / "nope.gguf")], catch_exceptions=False)
    assert result.exit_code == 2 and "nope.gguf" in result.output
