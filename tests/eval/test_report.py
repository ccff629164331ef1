"""Reports, run diffs and sampling, on a real (small) run."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sqlwright.errors import ConfigError, DatasetError
from sqlwright.eval.diff import diff_runs
from sqlwright.eval.report import histogram, render_markdown, svg_bars, write_report
from sqlwright.eval.runner import run_eval
from sqlwright.eval.sampling import select_examples, stratified_sample
from sqlwright.eval.types import Example, Prediction


class TinyDataset:
    kind, comparison, name = "jsonl", "bird", "tiny"

    def __init__(self, folder: Path, examples):
        self.folder, self.examples = folder, examples

    def database_url(self, db_id: str) -> str:
        return f"sqlite:///{self.folder / (db_id + '.sqlite')}"

    def close(self):
        pass


@pytest.fixture
def dataset(tmp_path: Path) -> TinyDataset:
    conn = sqlite3.connect(tmp_path / "d.sqlite")
    conn.execute("CREATE TABLE t (a INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    conn.commit()
    conn.close()
    exs = [Example(f"q{i}", f"question {i} <b>", "d", f"SELECT a FROM t WHERE a < {i}",
                   difficulty=["simple", "moderate"][i % 2], category="filter") for i in range(6)]
    return TinyDataset(tmp_path, exs)


def test_write_report_json_markdown_html(dataset: TinyDataset, tmp_path: Path):
    preds = {e.id: Prediction(e.id, e.gold if i % 3 else "SELECT a FROM t", seconds=0.1 * (i + 1),
                              prompt_tokens=10, completion_tokens=3) for i, e in enumerate(dataset.examples)}
    summary = run_eval(dataset, preds, run_file=tmp_path / "r.sqlite", workers=0, progress=False)
    paths = write_report(summary.to_dict(), tmp_path / "rep")
    data = json.loads(paths["json"].read_text())
    assert data["ex"] == summary.ex == pytest.approx(4 / 6)
    assert len(data["results"]) == 6 and {"id", "correct", "pred_sql", "gold_sql", "error"} <= set(data["results"][0])
    md = paths["markdown"].read_text()
    assert "| EX | 66.7% |" in md and "## EX by difficulty" in md and "## Wrong answers (2)" in md
    page = paths["html"].read_text()
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<svg") == 4  # difficulty, category, database bars + latency histogram
    assert "question 0 &lt;b&gt;" in page  # escaped
    for svg in page.split("<svg")[1:]:  # each chart is well-formed XML
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")


def test_svg_bar_widths_follow_ex():
    svg = svg_bars({"easy": {"count": 4, "correct": 2, "ex": 0.5}, "hard": {"count": 1, "correct": 1, "ex": 1.0}}, "t")
    root = ET.fromstring(svg)
    widths = [float(r.get("width")) for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "bar"]
    assert widths == [180.0, 360.0]


def test_histogram_bins():
    assert histogram([]) == []
    assert histogram([1.0, 1.0]) == [(1.0, 1.0, 2)]
    bins = histogram([0.0, 0.5, 1.0], bins=2)
    assert [c for _, _, c in bins] == [1, 2]


def test_markdown_escapes_pipes():
    md = render_markdown({"count": 1, "ex": 0.0, "rs": {"0": 0, "10": 0, "N": 0}, "abstained": 0, "errors": 0,
                          "timeouts": 0, "gold_errors": 0, "config": {}, "results": [
                              {"id": "x", "db": "d", "correct": False, "abstained": False, "error": None,
                               "pred_sql": "SELECT a || b", "gold_sql": "SELECT 1"}]})
    assert "SELECT a \\|\\| b" in md


def test_diff_runs(dataset: TinyDataset, tmp_path: Path):
    exs = dataset.examples
    a = {e.id: Prediction(e.id, e.gold if i < 4 else "SELECT 1") for i, e in enumerate(exs)}
    b = {e.id: Prediction(e.id, e.gold if i >= 2 else "SELECT 2") for i, e in enumerate(exs)}
    run_eval(dataset, a, run_file=tmp_path / "a.sqlite", workers=0, progress=False)
    run_eval(TinyDataset(dataset.folder, exs[:5]), b, run_file=tmp_path / "b.sqlite", workers=0, progress=False)
    d = diff_runs(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    # q0 (a<0) is empty: "SELECT 2" returns a row, so q0 is A-right/B-wrong; q1 likewise
    assert [e["id"] for e in d.a_only] == ["q0", "q1"]
    assert [e["id"] for e in d.b_only] == ["q4"]
    assert d.both_right == 2 and d.only_in_a == ["q5"] and d.common == 5
    assert d.a_only[0]["sql_b"] == "SELECT 2" and d.a_only[0]["sql_a"] == exs[0].gold
    with pytest.raises(DatasetError):
        diff_runs(tmp_path / "a.sqlite", tmp_path / "missing.sqlite")


def _examples():
    out = []
    for db, n in (("a", 50), ("b", 30), ("c", 20)):
        out += [Example(f"{db}{i}", "q", db, "SELECT 1") for i in range(n)]
    return out


def test_stratified_sample_is_proportional_and_stable():
    exs = _examples()
    s1 = stratified_sample(exs, 10, seed=3)
    assert len(s1) == 10
    counts = {db: sum(e.db == db for e in s1) for db in "abc"}
    assert counts == {"a": 5, "b": 3, "c": 2}
    # independent of input order; different seeds differ; input order kept in the output
    assert {e.id for e in stratified_sample(list(reversed(exs)), 10, seed=3)} == {e.id for e in s1}
    assert {e.id for e in stratified_sample(exs, 10, seed=4)} != {e.id for e in s1}
    assert s1 == [e for e in exs if e in s1]
    # stable across machines: a pinned draw
    assert [e.id for e in stratified_sample(exs, 4, seed=0)] == [e.id for e in stratified_sample(exs, 4, seed=0)]


def test_select_examples_filters():
    exs = _examples()
    assert {e.db for e in select_examples(exs, db_ids=["b"])} == {"b"}
    assert len(select_examples(exs, limit=7)) == 7
    assert len(select_examples(exs, db_ids=["a", "c"], sample=10, seed=1)) == 10
    assert [e.id for e in select_examples(exs, ids=["b3", "a7", "a2"])] == ["a2", "a7", "b3"]  # the dataset's order
    assert [e.id for e in select_examples(exs, ids=["b3", "a7"], db_ids=["b"])] == ["b3"]
    assert select_examples(exs, ids=["a7"], db_ids=["c"]) == []  # a known database, none of the questions
    with pytest.raises(ConfigError, match="unknown --id nope: no such question"):
        select_examples(exs, ids=["nope", "a0"])
    with pytest.raises(ConfigError, match="unknown --db-id zz"):
        select_examples(exs, db_ids=["zz"])


# --- notes of the comparison rule (SQL-Eval's Defog quirks) -----------------------------------------
def test_sqleval_notes_are_kept_in_the_run_file_and_reported(dataset: TinyDataset, tmp_path: Path):
    from sqlwright.eval.compare import NOTE_BROADCAST, NOTE_EMPTY_BROADCAST
    from sqlwright.eval.runner import summary_from_run_file

    exs = [Example("e0", "How many?", "d", "SELECT a FROM t WHERE a = 3", category="filter"),
           Example("e1", "Which values?", "d", "SELECT a FROM t WHERE a < 2", category="filter"),
           Example("e2", "Which values?", "d", "SELECT a FROM t WHERE a < 3", category="filter")]
    sqleval = TinyDataset(dataset.folder, exs)
    sqleval.comparison = "sqleval"
    preds = {"e0": Prediction("e0", "SELECT a FROM t WHERE a > 100"),  # empty against one row
             "e1": Prediction("e1", "SELECT a, a FROM t WHERE a < 2"),  # one column against two equal ones
             "e2": Prediction("e2", "SELECT a FROM t WHERE a < 3")}
    summary = run_eval(sqleval, preds, run_file=tmp_path / "r.sqlite", workers=0, progress=False)
    notes = {v.id: (v.correct, v.note) for v in summary.verdicts}
    assert notes == {"e0": (True, NOTE_EMPTY_BROADCAST), "e1": (True, NOTE_BROADCAST), "e2": (True, None)}
    again = summary_from_run_file(tmp_path / "r.sqlite")
    assert {v.id: v.note for v in again.verdicts} == {k: n for k, (_, n) in notes.items()}

    paths = write_report(again.to_dict(), tmp_path / "rep")
    data = json.loads(paths["json"].read_text())
    assert data["notes"] == {NOTE_BROADCAST: {"count": 1, "correct": 1}, NOTE_EMPTY_BROADCAST: {"count": 1, "correct": 1}}
    assert [r["note"] for r in data["results"]] == [NOTE_EMPTY_BROADCAST, NOTE_BROADCAST, None]
    md = paths["markdown"].read_text()
    assert f"| note: {NOTE_EMPTY_BROADCAST} | 1 (1 right) |" in md and "## Verdicts with a note (2)" in md
    assert "<h2>Verdicts with a note (2)</h2>" in paths["html"].read_text()

    # the strict rule is another configuration: it cannot resume the default run, and has no quirks
    sqleval.comparison = "sqleval-strict"
    with pytest.raises(ConfigError, match="comparison"):
        run_eval(sqleval, preds, run_file=tmp_path / "r.sqlite", workers=0, progress=False)
    strict = run_eval(sqleval, preds, run_file=tmp_path / "s.sqlite", workers=0, progress=False)
    assert {v.id: (v.correct, v.note) for v in strict.verdicts} == {
        "e0": (False, None), "e1": (True, None), "e2": (True, None)}


def test_sqleval_strict_flag_is_only_for_sqleval(tmp_path: Path):
    from typer.testing import CliRunner

    from sqlwright.cli import app

    result = CliRunner().invoke(app, ["eval", "spider", "--data", str(tmp_path), "--sqleval-strict"])
    assert result.exit_code == 2 and "--sqleval-strict is for sqleval" in result.output


def test_sqleval_dataset_names_its_rule(data_dir: Path):
    from sqlwright.eval.datasets import load_dataset

    with load_dataset("sqleval", data_dir / "sqleval") as default:
        assert default.comparison == "sqleval"
    with load_dataset("sqleval", data_dir / "sqleval", strict=True) as strict:
        assert strict.comparison == "sqleval-strict"
