"""`sqlwright synth sql|questions|verify|cot|export|run` through the real entry point, with the fake model in
place of a loaded one; errors a user can cause are one line and exit 2."""

from __future__ import annotations

import importlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from synth_helpers import FakeModel, make_db

from sqlwright.cli import main

app_module = importlib.import_module("sqlwright.cli.app")
synth_cli = importlib.import_module("sqlwright.cli.synth")


@pytest.fixture(autouse=True)
def fake_models(monkeypatch, tmp_path: Path) -> dict[str, FakeModel]:
    """Every model the commands load is a FakeModel (by name), never a real one; no embedding model."""
    import sqlwright.pipeline.embeddings as embeddings

    loaded: dict[str, FakeModel] = {}

    def load(model, base_url):
        name = model or "default"
        if name not in loaded:
            loaded[name] = FakeModel(concurrent=name.startswith("openai:"))
            loaded[name].name = name
        return loaded[name]

    monkeypatch.setattr(synth_cli, "_load_model", load)
    monkeypatch.setattr(embeddings, "load_default_embedder", lambda cache_dir=None: None)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    return loaded


@pytest.fixture()
def db(tmp_path: Path) -> str:
    return str(make_db(tmp_path / "concerts.sqlite"))


def invoke(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["sqlwright", *args])
    monkeypatch.setattr(app_module.err_console, "width", 80)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_run_then_export(capsys, monkeypatch, db: str, tmp_path: Path, fake_models) -> None:
    work, out = tmp_path / "w.synth", tmp_path / "pairs.jsonl"
    code, stdout, err = invoke(capsys, monkeypatch, "synth", "run", db, "--work", str(work), "--pairs", "2",
                               "--out", str(out), "--format", "json", "--no-progress")
    assert code == 0, err
    data = json.loads(stdout)
    assert data["verified"] >= 2 and data["export"]["pairs"] >= 2 and data["database"] == "concerts"
    assert set(data["seconds"]) == {"sql", "questions", "verify", "cot"}
    assert any(kind == "cot" for kind, _ in fake_models["default"].calls)  # --cot is the default
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(line["verified"] for line in lines) == data["verified"]
    assert (tmp_path / "pairs.datasheet.md").exists() and (tmp_path / "pairs.datasheet.json").exists()

    code, stdout, err = invoke(capsys, monkeypatch, "synth", "export", "--work", str(work), "--out",
                               str(tmp_path / "v.jsonl"), "--verified-only")
    assert code == 0 and "verified" in stdout
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == data["verified"]


def test_the_stages_one_by_one(capsys, monkeypatch, db: str, tmp_path: Path, fake_models) -> None:
    work = str(tmp_path / "w.synth")
    steps = [
        ("sql", db, "--work", work, "--per-level", "1", "--levels", "simple,moderate", "--seed", "4"),
        ("questions", "--work", work, "--k", "2"),
        ("verify", "--work", work),
        ("cot", "--work", work, "--samples", "3", "--include-unverified"),
    ]
    for step in steps:
        code, stdout, err = invoke(capsys, monkeypatch, "synth", *step, "--format", "json", "--no-progress")
        assert code == 0, (step, err)
        summary = json.loads(stdout)
        assert summary["stage"] == step[0] and summary["items"] >= 1, summary
    con = sqlite3.connect(work)
    assert con.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone() == ("4",)
    assert json.loads(con.execute("SELECT value FROM meta WHERE key = 'config:questions'").fetchone()[0])["k"] == 2
    levels = {r[0] for r in con.execute("SELECT level FROM sql_items")}
    assert levels == {"simple", "moderate"}
    con.close()
    # again: nothing is pending, nothing is asked
    calls = len(fake_models["default"].calls)
    code, stdout, _ = invoke(capsys, monkeypatch, "synth", "questions", "--work", work, "--k", "2")
    assert code == 0 and "nothing pending" in stdout and len(fake_models["default"].calls) == calls


def test_a_teacher_writes_and_the_model_verifies(capsys, monkeypatch, db: str, tmp_path: Path, fake_models) -> None:
    code, _, err = invoke(capsys, monkeypatch, "synth", "run", db, "--work", str(tmp_path / "w.synth"), "--pairs",
                          "1", "--no-cot", "--teacher", "openai:big", "--base-url", "http://127.0.0.1:9/v1",
                          "--concurrency", "3", "--model", "small", "--no-progress")
    assert code == 0, err
    kinds = lambda name: {kind for kind, _ in fake_models[name].calls}  # noqa: E731
    assert kinds("openai:big") == {"sql", "explain", "question"} and kinds("small") == {"ask"}


@pytest.mark.parametrize(("args", "message"), [
    (["run", "/nonexistent/x.sqlite", "--work", "{tmp}/w", "--pairs", "1"], "not found"),
    (["sql", "{db}", "--work", "{tmp}", "--per-level", "1"], "directory"),
    (["sql", "{db}", "--work", "{text}", "--per-level", "1"], "cannot use"),
    (["sql", "{db}", "--work", "{db}", "--per-level", "1"], "not a sqlwright synthesis work file"),
    (["questions", "--work", "{tmp}/missing.synth"], "no work file"),
    (["export", "--work", "{tmp}/missing.synth", "--out", "{tmp}/x.jsonl"], "no work file"),
    (["sql", "{db}", "--work", "{tmp}/w", "--levels", "trivial"], "complexity level"),
    (["sql", "{db}", "--work", "{tmp}/w", "--concurrency", "2"], "server"),
    (["run", "{db}", "--work", "{tmp}/w", "--pairs", "1", "--format", "csv"], "table or json"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, monkeypatch, db: str, tmp_path: Path, args, message) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database " * 100)
    args = [a.format(tmp=tmp_path, db=db, text=text) for a in args]
    code, _, err = invoke(capsys, monkeypatch, "synth", *args, *(["--no-progress"] if args[0] != "export" else []))
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_resuming_with_another_seed_is_refused(capsys, monkeypatch, db: str, tmp_path: Path) -> None:
    work = str(tmp_path / "w.synth")
    assert invoke(capsys, monkeypatch, "synth", "sql", db, "--work", work, "--per-level", "1", "--levels",
                  "simple", "--no-progress")[0] == 0
    code, _, err = invoke(capsys, monkeypatch, "synth", "sql", db, "--work", work, "--per-level", "1",
                          "--seed", "1", "--no-progress")
    assert code == 2 and "seed 0, not 1" in err
