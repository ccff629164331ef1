"""Gold against gold: does every gold query run, and does the evaluator score gold-as-prediction 100%?

For Spider dev (1,034 questions) and Defog SQL-Eval on PostgreSQL, SQLite and MySQL/MariaDB (210 each,
databases built by sqlwright from the PostgreSQL dumps), this

1. executes each gold query — the first `;` alternative, with `{a,b}` column sets expanded the way the
   evaluator expands them (`sqlwright.eval.compare.expand_sqleval_gold`) — through `sqlwright.db`, and
   lists which fail and why;
2. runs the gold queries as predictions through the evaluator (`sqlwright.eval.runner.run_eval`) and
   prints EX, which should be 100%, with every question that is not.

Usage:  .venv/bin/python bench/gold_vs_gold.py [--suite spider|sqleval-postgres|...] [--workers 2]
Data:   ../shared/data from the repo root (or $SQLWRIGHT_DATA).
Output: a table on stdout and bench/results/gold_vs_gold.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlwright.cli.eval import UNRELIABLE_DBS
from sqlwright.db import open_database
from sqlwright.errors import SqlwrightError
from sqlwright.eval.datasets import Dataset, load_dataset
from sqlwright.eval.types import Example, Prediction

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SQLWRIGHT_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results" / "gold_vs_gold.json"
SUITES = {
    "spider": ("spider", "spider", None),
    "sqleval-postgres": ("sqleval", "sqleval", "postgres"),
    "sqleval-sqlite": ("sqleval", "sqleval", "sqlite"),
    "sqleval-mysql": ("sqleval", "sqleval", "mysql"),
}


def first_gold(example: Example) -> str:
    """The gold query the evaluator runs first: first alternative, column sets expanded."""
    try:
        from sqlwright.eval.compare import expand_sqleval_gold
    except ImportError:  # the comparison module is not there: take the text up to the first ';'
        return example.gold.split(";")[0].strip()
    expanded = expand_sqleval_gold(example.gold)
    return expanded[0] if expanded else example.gold


def execute_golds(dataset: Dataset, timeout: float) -> dict:
    """Run every example's first gold query; count the ones that run, list the others with the reason."""
    failures = []
    ran = 0
    open_dbs: dict[str, object] = {}
    try:
        for example in dataset.examples:
            sql = first_gold(example)
            try:
                if example.db not in open_dbs:
                    open_dbs[example.db] = open_database(dataset.database_url(example.db), timeout=timeout)
                open_dbs[example.db].execute(sql, timeout=timeout, max_rows=100_000)
                ran += 1
            except SqlwrightError as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                failures.append({"id": example.id, "db": example.db, "error": reason, "sql": sql})
    finally:
        for db in open_dbs.values():
            db.close()
    return {"total": len(dataset.examples), "ran": ran, "failed": failures}


def gold_as_predictions(dataset: Dataset, workers: int, timeout: float) -> dict | None:
    """EX of the gold queries scored as predictions by the evaluator (None when the runner is absent)."""
    try:
        from sqlwright.eval.runner import run_eval
    except ImportError:
        return None
    predictions = {e.id: Prediction(id=e.id, sql=first_gold(e)) for e in dataset.examples}
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_eval(
            dataset, predictions, run_file=Path(tmp) / "run.sqlite", workers=workers, timeout=timeout, progress=False,
        )
    wrong = [
        {"id": e.id, "db": e.db, "error": v.error, "gold_error": v.gold_error, "sql": v.pred_sql}
        for e, v in summary.pairs
        if not v.correct
    ]
    result = {"ex": summary.ex, "n": len(summary.pairs), "not_correct": wrong}
    for db in UNRELIABLE_DBS.get(dataset.kind, ()):
        kept = [(e, v) for e, v in summary.pairs if e.db != db]
        result[f"ex_without_{db}"] = sum(v.correct for _, v in kept) / len(kept) if kept else None
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="default: all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--no-runner", action="store_true", help="only execute the gold queries")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not DATA.is_dir():
        print(f"benchmark data not found at {DATA} (set SQLWRIGHT_DATA)", file=sys.stderr)
        return 2

    summary: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "suites": {}}
    if RESULTS.is_file():  # keep other suites' figures when only some are rerun
        summary["suites"].update(json.loads(RESULTS.read_text()).get("suites", {}))
    for name in args.suite or list(SUITES):
        kind, folder, dialect = SUITES[name]
        started = time.perf_counter()
        dataset = load_dataset(kind, DATA / folder, dialect=dialect)
        try:
            if hasattr(dataset, "prepare"):
                dataset.prepare()  # build SQL-Eval's databases once, before anything is timed
            entry = execute_golds(dataset, args.timeout)
            entry["evaluator"] = None if args.no_runner else gold_as_predictions(dataset, args.workers, args.timeout)
        finally:
            dataset.close()
        entry["seconds"] = round(time.perf_counter() - started, 1)
        summary["suites"][name] = entry
        report(name, entry)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\nsaved {RESULTS.relative_to(REPO)}")
    return 0


def report(name: str, entry: dict) -> None:
    print(f"\n== {name}: {entry['ran']}/{entry['total']} gold queries run ({entry['seconds']} s)")
    for failure in entry["failed"]:
        print(f"  gold fails  {failure['id']:>20}  {failure['error'][:110]}")
    evaluator = entry.get("evaluator")
    if evaluator is None:
        return
    extra = "".join(f"   {k}: {v:.2%}" for k, v in evaluator.items() if k.startswith("ex_without") and v is not None)
    print(f"  gold-as-prediction EX: {evaluator['ex']:.2%} of {evaluator['n']}{extra}")
    for wrong in evaluator["not_correct"]:
        why = wrong["gold_error"] or wrong["error"] or "results differ"
        print(f"  not correct {wrong['id']:>20}  {str(why)[:110]}")


if __name__ == "__main__":
    sys.exit(main())
