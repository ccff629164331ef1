"""The runner on real SQLite files: parallel verdicts, gold cache, timeouts, gold failures, abstentions,
config binding, R-VES, and a run killed with SIGKILL that resumes with nothing lost or counted twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sqlwright.errors import ConfigError, DatasetError
from sqlwright.eval import runner as runner_mod
from sqlwright.eval.predictors import FilePredictor, PipelinePredictor
from sqlwright.eval.runfile import RunFile, open_run_file
from sqlwright.eval.runner import CompareOutcome, CompareTask, _Pool, run_eval, summary_from_run_file
from sqlwright.eval.types import Example, Prediction, Verdict
from sqlwright.pipeline.types import Answer

SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


class TinyDataset:
    """The Dataset interface over SQLite files in a folder: db id -> <folder>/<db>.sqlite."""

    kind = "jsonl"

    def __init__(self, folder: Path, examples: list[Example], comparison: str = "spider", name: str = "tiny"):
        self.folder, self.examples, self.comparison, self.name = folder, examples, comparison, name

    def database_url(self, db_id: str) -> str:
        path = self.folder / f"{db_id}.sqlite"
        if not path.exists():
            raise DatasetError(f"no database {db_id}")
        return f"sqlite:///{path}"

    def close(self) -> None:
        pass


def make_db(path: Path, n: int = 30) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a INTEGER, b TEXT, f REAL)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i % 4}", i / 3) for i in range(n)])
    conn.commit()
    conn.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    make_db(tmp_path / "one.sqlite")
    make_db(tmp_path / "two.sqlite", 10)
    return tmp_path


def examples_and_predictions():
    exs = [
        Example("e1", "how many", "one", "SELECT count(*) FROM t", difficulty="easy"),
        Example("e2", "names", "one", "SELECT DISTINCT b FROM t", difficulty="easy"),
        Example("e3", "ordered", "one", "SELECT a, b FROM t WHERE a < 5 ORDER BY a DESC", difficulty="medium"),
        Example("e4", "ordered wrong", "one", "SELECT a FROM t WHERE a < 5 ORDER BY a", difficulty="medium"),
        Example("e5", "timeout", "one", "SELECT 1", difficulty="hard"),
        Example("e6", "gold fails", "two", "SELECT nope FROM t", difficulty="hard"),
        Example("e7", "abstain", "two", "SELECT count(*) FROM t"),
        Example("e8", "infeasible", "two", "", feasible=False),
        Example("e9", "refused", "two", "SELECT count(*) FROM t"),
        Example("e10", "same gold as e1", "one", "SELECT count(*) FROM t"),
    ]
    preds = {
        "e1": Prediction("e1", "SELECT count(a) FROM t", seconds=1.5, prompt_tokens=100, completion_tokens=9),
        "e2": Prediction("e2", "SELECT b FROM t"),  # Spider strips DISTINCT from both
        "e3": Prediction("e3", "SELECT b, a FROM t WHERE a < 5 ORDER BY a DESC"),
        "e4": Prediction("e4", "SELECT a FROM t WHERE a < 5 ORDER BY a DESC"),
        "e5": Prediction("e5", SLOW),
        "e6": Prediction("e6", "SELECT 1"),
        "e7": Prediction("e7", None),
        "e8": Prediction("e8", None),
        "e9": Prediction("e9", "DELETE FROM t"),
        "e10": Prediction("e10", "SELECT count(*) FROM t"),
    }
    return exs, preds


EXPECTED = {"e1": True, "e2": True, "e3": True, "e4": False, "e5": False, "e6": False, "e7": False,
            "e8": True, "e9": False, "e10": True}


@pytest.mark.parametrize("workers", [0, 2])
def test_run_eval_verdicts(folder: Path, workers: int):
    exs, preds = examples_and_predictions()
    summary = run_eval(TinyDataset(folder, exs), preds, run_file=folder / "run.sqlite", workers=workers,
                       timeout=0.5, progress=False)
    got = {r["id"]: r for r in summary.results()}
    assert {k: r["correct"] for k, r in got.items()} == EXPECTED
    assert got["e5"]["error"] == "timeout"
    assert got["e9"]["error"].startswith("Refused")
    assert got["e7"]["abstained"] and got["e8"]["abstained"]
    assert [r["id"] for r in summary.results()] == [e.id for e in exs]
    assert summary.ex == pytest.approx(5 / 10)
    assert summary.metrics["gold_errors"] == 1 and summary.metrics["timeouts"] == 1
    assert summary.metrics["by_difficulty"]["easy"] == {"count": 2, "correct": 2, "ex": 1.0}
    assert summary.metrics["latency"]["median"] == 1.5
    with RunFile(folder / "run.sqlite") as store:
        gold_rows = store.conn.execute("SELECT count(*) FROM gold").fetchone()[0]
        assert gold_rows == 7  # e1 and e10 share one gold; e7, e8 run none; e9 is on another db
        assert len(store.predictions()) == 10


def test_gold_is_cached_in_the_run_file(folder: Path, monkeypatch):
    exs, preds = examples_and_predictions()
    exs, preds = exs[:1], {"e1": preds["e1"]}
    run_file = folder / "run.sqlite"
    run_eval(TinyDataset(folder, exs), preds, run_file=run_file, workers=0, progress=False)
    with RunFile(run_file) as store:
        # Poison the cached gold: a second example with the same gold must use the cache, not the db.
        store.conn.execute("UPDATE gold SET rows = '[[999]]'")
        store.conn.commit()
        store.conn.execute("DELETE FROM verdicts")
        store.conn.commit()
    summary = run_eval(TinyDataset(folder, exs), preds, run_file=run_file, workers=0, progress=False)
    assert summary.results()[0]["correct"] is False


def test_run_file_refuses_another_config(folder: Path):
    exs, preds = examples_and_predictions()
    ds = TinyDataset(folder, exs[:3])
    run_file = folder / "run.sqlite"
    run_eval(ds, preds, run_file=run_file, workers=0, progress=False, config={"model": "a"})
    with pytest.raises(ConfigError, match="differs in: model"):
        run_eval(ds, preds, run_file=run_file, workers=0, progress=False, config={"model": "b"})
    with pytest.raises(ConfigError, match="timeout"):
        run_eval(ds, preds, run_file=run_file, workers=0, progress=False, config={"model": "a"}, timeout=3)
    again = run_eval(ds, preds, run_file=run_file, workers=0, progress=False, config={"model": "a"})
    assert again.resumed and again.metrics["count"] == 3


def test_duplicate_ids_are_refused(folder: Path):
    ex = Example("x", "q", "one", "SELECT 1")
    with pytest.raises(DatasetError, match="duplicate"):
        run_eval(TinyDataset(folder, [ex, ex]), {}, run_file=folder / "r.sqlite", workers=0, progress=False)


def test_missing_prediction_counts_wrong(folder: Path):
    ex = Example("x", "q", "one", "SELECT 1")
    s = run_eval(TinyDataset(folder, [ex]), FilePredictor({}), run_file=folder / "r.sqlite", workers=0,
                 progress=False)
    assert s.results()[0]["error"] == "no prediction" and not s.results()[0]["abstained"]


def test_r_ves_is_measured_when_asked(folder: Path):
    exs = [Example("v1", "q", "one", "SELECT count(*) FROM t", difficulty="simple"),
           Example("v2", "q", "one", "SELECT a FROM t", difficulty="simple")]
    preds = {"v1": Prediction("v1", "SELECT count(*) FROM t"), "v2": Prediction("v2", "SELECT b FROM t")}
    s = run_eval(TinyDataset(folder, exs, comparison="bird"), preds, run_file=folder / "r.sqlite", workers=0,
                 ves_repeats=3, progress=False)
    by_id = {r["id"]: r for r in s.results()}
    assert by_id["v1"]["ves"] in (0.25, 0.5, 0.75, 1.0, 1.25)
    assert by_id["v2"]["ves"] == 0.0
    assert s.metrics["r_ves"] is not None and s.metrics["r_ves"] > 0


def hang_forever(task: CompareTask) -> CompareOutcome:
    """A comparison that never returns unless it is quick (stands for a statement a database ignores
    its time limit on)."""
    if task.example.question == "hang":
        time.sleep(3600)
    return CompareOutcome(task.position, Verdict(id=task.example.id, correct=True, pred_sql="x"))


def test_pool_kills_a_task_past_its_budget(monkeypatch):
    monkeypatch.setattr(runner_mod, "KILL_GRACE", 1.0)
    done: dict[str, CompareOutcome] = {}
    pool = _Pool(2, lambda t, o: done.__setitem__(t.example.id, o), work=hang_forever)

    def task(i, question):
        ex = Example(f"k{i}", question, "one", "SELECT 1")
        return CompareTask(i, ex, Prediction(ex.id, "SELECT 1"), "sqlite:///nowhere", "spider", ("SELECT 1",),
                           ("k",), (None,), timeout=0.5, max_rows=10)

    start = time.monotonic()
    for i, q in enumerate(["fine", "hang", "fine", "fine"]):
        pool.submit(task(i, q))
    pool.drain()
    pool.close()
    assert time.monotonic() - start < 30
    assert done["k1"].verdict.error == "timeout" and not done["k1"].verdict.correct
    assert all(done[k].verdict.correct for k in ("k0", "k2", "k3"))


class FakeEngine:
    """Stands in for sqlwright.pipeline.ask.Engine: answers from a table of question -> SQL."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def ask(self, db, question, *, evidence=None):
        self.calls.append((db.dialect, question, evidence))
        sql = self.answers.get(question)
        return Answer(question=question, sql=sql, abstained=sql is None, prompt_tokens=50, completion_tokens=5,
                      timings={"total": 0.25})


def test_pipeline_predictor_runs_in_the_main_process(folder: Path):
    exs = [Example("p1", "count", "one", "SELECT count(*) FROM t", evidence="hint"),
           Example("p2", "unknown", "one", "SELECT 1")]
    engine = FakeEngine({"count": "SELECT count(*) FROM t"})
    predictor = PipelinePredictor(engine)
    s = run_eval(TinyDataset(folder, exs), predictor, run_file=folder / "r.sqlite", workers=1, progress=False)
    predictor.close()
    assert engine.calls == [("sqlite", "count", "hint"), ("sqlite", "unknown", None)]
    by_id = {r["id"]: r for r in s.results()}
    assert by_id["p1"]["correct"] and by_id["p1"]["prompt_tokens"] == 50 and by_id["p1"]["seconds"] == 0.25
    assert by_id["p2"]["abstained"]
    # the run file keeps how each answer came about (without the result rows)
    with open_run_file(folder / "r.sqlite", must_exist=True) as store:
        traces = {k: p.trace for k, p in store.predictions().items()}
    assert traces["p1"]["confidence"] == 0.0 and traces["p1"]["timings"] == {"total": 0.25}
    assert "rows" not in traces["p1"] and traces["p2"]["abstained"] is True
    # resuming asks the model nothing: predictions are in the run file
    engine2 = FakeEngine({})
    run_eval(TinyDataset(folder, exs), PipelinePredictor(engine2), run_file=folder / "r.sqlite", workers=1,
             progress=False)
    assert engine2.calls == []


def test_run_file_from_an_earlier_version_gains_the_trace_column(folder: Path):
    path = folder / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE predictions (id TEXT PRIMARY KEY, sql TEXT, seconds REAL, prompt_tokens INTEGER, "
                 "completion_tokens INTEGER, error TEXT, created REAL NOT NULL)")
    conn.execute("INSERT INTO predictions VALUES ('a', 'SELECT 1', 1.5, 10, 2, NULL, 0)")
    conn.commit()
    conn.close()
    with open_run_file(path) as store:
        assert store.predictions()["a"] == Prediction("a", "SELECT 1", 1.5, 10, 2)
        store.save_prediction(Prediction("b", "SELECT 2", trace={"confidence": 0.5}))
        assert store.predictions()["b"].trace == {"confidence": 0.5}
        assert store.predictions()["a"].trace is None


# --- kill -9 and resume -----------------------------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from sqlwright.eval.runner import run_eval
    from sqlwright.eval.types import Example, Prediction

    class DS:
        kind, comparison, name = "jsonl", "spider", "killtest"
        def __init__(self, folder, examples):
            self.folder, self.examples = folder, examples
        def database_url(self, db_id):
            return f"sqlite:///{self.folder / (db_id + '.sqlite')}"
        def close(self):
            pass

    SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 150000) "

    def build(folder, n):
        exs, preds = [], {}
        for i in range(n):
            db = "one" if i % 3 else "two"
            exs.append(Example(f"q{i}", "q", db, f"SELECT count(*) FROM t WHERE a < {i}"))
            k = i if i % 4 else i + 1  # every fourth prediction is wrong
            preds[f"q{i}"] = Prediction(f"q{i}", SLOW + f"SELECT count(*) FROM t WHERE a < {k} AND (SELECT count(*) FROM c) > 0")
        return DS(folder, exs), preds

    if __name__ == "__main__":
        folder, run_file, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
        ds, preds = build(folder, n)
        s = run_eval(ds, preds, run_file=run_file, workers=2, timeout=20, progress=False)
        print(s.ex)
    """
)


def _verdict_count(run_file: Path) -> int:
    if not run_file.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{run_file}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM verdicts").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(folder: Path):
    n = 40
    script = folder / "evalkill.py"
    script.write_text(SCRIPT)
    killed = folder / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(killed), str(n)],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _verdict_count(killed) < 6:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers, with no chance to clean up
    proc.wait()
    partial = _verdict_count(killed)
    assert 6 <= partial < n

    resumed = subprocess.run([sys.executable, str(script), str(folder), str(killed), str(n)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    fresh = subprocess.run([sys.executable, str(script), str(folder), str(folder / "fresh.sqlite"), str(n)],
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr

    with RunFile(killed) as store:
        ids = [r[0] for r in store.conn.execute("SELECT id FROM verdicts")]
    assert sorted(ids) == sorted(f"q{i}" for i in range(n))  # every id exactly once
    a = summary_from_run_file(killed)
    b = summary_from_run_file(folder / "fresh.sqlite")
    assert a.metrics == b.metrics
    assert a.results() == b.results()
    sizes = {"one": 30, "two": 10}  # rows in each database's t
    expected = sum(
        min(i, sizes["one" if i % 3 else "two"]) == min(i if i % 4 else i + 1, sizes["one" if i % 3 else "two"])
        for i in range(n)
    )
    assert a.metrics["correct"] == expected == 34
