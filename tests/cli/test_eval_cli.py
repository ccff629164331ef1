"""`sqlwright eval` on a JSONL dataset over a real SQLite file, and on Spider when the data is present."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlwright.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
SPIDER = Path(os.environ.get("SQLWRIGHT_DATA") or ROOT.parent / "shared" / "data") / "spider"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    db = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE items (id INTEGER, name TEXT, price REAL)")
    conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(1, "pen", 1.5), (2, "ink", 4.0), (3, "pad", 2.25)])
    conn.commit()
    conn.close()
    questions = [
        {"id": "a", "question": "How many items?", "sql": "SELECT count(*) FROM items", "db": "shop.sqlite"},
        {"id": "b", "question": "Names of items", "sql": "SELECT name FROM items", "db": "shop.sqlite"},
        {"id": "c", "question": "Most expensive", "sql": "SELECT name FROM items ORDER BY price DESC LIMIT 1",
         "db": "shop.sqlite"},
    ]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    preds = [{"id": "a", "sql": "SELECT count(id) FROM items"}, {"id": "b", "sql": "SELECT id FROM items"},
             {"id": "c", "sql": "SELECT name FROM items ORDER BY price DESC LIMIT 1"}]
    (tmp_path / "preds.jsonl").write_text("\n".join(json.dumps(p) for p in preds) + "\n")
    return tmp_path


def _eval(data: Path, *extra: str):
    return runner.invoke(app, ["eval", "jsonl", "--data", str(data / "questions.jsonl"), "--db-root", str(data),
                               "--no-progress", "--workers", "0", *extra])


def test_eval_jsonl_json_output_and_report(data: Path):
    result = _eval(data, "--predictions", str(data / "preds.jsonl"), "--run-file", str(data / "run.sqlite"),
                   "--report", str(data / "rep"), "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["ex"] == pytest.approx(2 / 3)
    assert [(r["id"], r["correct"]) for r in out["results"]] == [("a", True), ("b", False), ("c", True)]
    assert {"id", "correct", "pred_sql", "gold_sql", "error"} <= set(out["results"][0])
    assert (data / "rep" / "report.html").exists() and (data / "rep" / "summary.md").exists()


def test_eval_table_output_resume_and_diff(data: Path):
    first = _eval(data, "--predictions", str(data / "preds.jsonl"), "--run-file", str(data / "a.sqlite"))
    assert first.exit_code == 0, first.output
    assert "EX" in first.stdout and "66.7%" in first.stdout
    (data / "preds2.jsonl").write_text(json.dumps({"id": "b", "sql": "SELECT name FROM items"}) + "\n")
    second = _eval(data, "--predictions", str(data / "preds2.jsonl"), "--run-file", str(data / "b.sqlite"),
                   "--format", "json")
    assert second.exit_code == 0, second.output
    diff = runner.invoke(app, ["eval", "diff", str(data / "a.sqlite"), str(data / "b.sqlite"), "--format", "json"])
    assert diff.exit_code == 0, diff.output
    d = json.loads(diff.stdout)
    assert [e["id"] for e in d["a_right_b_wrong"]] == ["a", "c"]  # b's file has no prediction for a, c
    assert [e["id"] for e in d["b_right_a_wrong"]] == ["b"]
    table = runner.invoke(app, ["eval", "diff", str(data / "a.sqlite"), str(data / "b.sqlite")])
    assert table.exit_code == 0 and "only A right" in table.stdout


def test_eval_only_the_questions_named_by_id(data: Path):
    result = _eval(data, "--predictions", str(data / "preds.jsonl"), "--id", "c", "--id", "b", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert [(r["id"], r["correct"]) for r in out["results"]] == [("b", False), ("c", True)]


def test_eval_user_errors_exit_2(data: Path):
    both = _eval(data, "--predictions", str(data / "preds.jsonl"), "--model", "x")
    assert both.exit_code == 2 and "not both" in both.output
    neither = _eval(data)
    assert neither.exit_code == 2 and "--predictions" in neither.output
    run_file = str(data / "run.sqlite")
    assert _eval(data, "--predictions", str(data / "preds.jsonl"), "--run-file", run_file).exit_code == 0
    other = _eval(data, "--predictions", str(data / "preds.jsonl"), "--run-file", run_file, "--timeout", "5")
    assert other.exit_code == 2 and "different configuration" in other.output
    bad_id = _eval(data, "--predictions", str(data / "preds.jsonl"), "--id", "zz")
    assert bad_id.exit_code == 2 and "unknown --id zz" in bad_id.output
    bad_db = _eval(data, "--predictions", str(data / "preds.jsonl"), "--db-id", "nope")
    assert bad_db.exit_code == 2 and "unknown --db-id" in bad_db.output
    diff = runner.invoke(app, ["eval", "diff", str(data / "nothing.sqlite"), run_file])
    assert diff.exit_code == 2 and "no run file" in diff.output


@pytest.mark.skipif(not (SPIDER / "dev.json").exists(), reason="Spider data not present")
def test_eval_spider_gold_predictions_sample(tmp_path: Path):
    preds = tmp_path / "gold.sql"
    preds.write_text("".join(line.split("\t")[0] + "\n" for line in (SPIDER / "dev_gold.sql").read_text().splitlines()
                             if line.strip()))
    result = runner.invoke(app, ["eval", "spider", "--data", str(SPIDER), "--predictions", str(preds),
                                 "--sample", "40", "--seed", "1", "--run-file", str(tmp_path / "r.sqlite"),
                                 "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["count"] == 40 and len({r["db"] for r in out["results"]}) > 5
    assert set(out["by_difficulty"]) <= {"easy", "medium", "hard", "extra"}
    assert "excluding" in out and out["excluding"]["dbs"] == ["wta_1"]
    # gold against gold is right except where the rebuilt wta_1 makes the gold itself unreliable
    assert out["excluding"]["ex"] == 1.0
