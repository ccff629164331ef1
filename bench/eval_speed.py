"""Evaluator speed: gold-vs-gold predictions on all 1,034 Spider dev questions.

Runs the runner (2 worker processes, cached databases and gold results) and then the naive way — one
question at a time in one process: open the database, execute gold, execute prediction, compare —
and prints seconds, EX and the speed ratio. Target: the runner at least 3x faster than naive.

    .venv/bin/python bench/eval_speed.py [--limit N] [--workers 2]

Data: ../shared/data/spider (relative to the repo root; SQLWRIGHT_DATA overrides ../shared/data).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlwright.db import open_database
from sqlwright.errors import SqlwrightError
from sqlwright.eval.compare import compare, get_rule
from sqlwright.eval.runner import DEFAULT_MAX_ROWS, run_eval
from sqlwright.eval.types import Prediction

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("SQLWRIGHT_DATA") or ROOT.parent / "shared" / "data") / "spider"


def naive(dataset, examples, predictions, timeout: float) -> tuple[float, float]:
    """One question at a time in this process: open, execute gold, execute prediction, compare."""
    rule = get_rule("spider")
    start = time.perf_counter()
    correct = 0
    for e in examples:
        db = open_database(dataset.database_url(e.db))
        try:
            gold = db.execute(rule.prepare(e.gold), timeout=timeout, max_rows=DEFAULT_MAX_ROWS, guard=False)
            pred_sql = predictions[e.id].sql
            if pred_sql is None:
                continue
            pred = db.execute(rule.prepare(pred_sql), timeout=timeout, max_rows=DEFAULT_MAX_ROWS)
            correct += compare(rule, gold, pred, gold_sql=e.gold)
        except SqlwrightError:
            pass
        finally:
            db.close()
    return time.perf_counter() - start, correct / len(examples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--predictions", type=Path, help="a model's predictions (Spider lines, JSONL); "
                        "default: the gold SQL itself")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    spider = data_dir()
    if not (spider / "dev.json").exists():
        print(f"no Spider data at {spider}; set SQLWRIGHT_DATA", file=sys.stderr)
        return 2
    from sqlwright.eval.datasets import load_dataset

    with load_dataset("spider", spider) as dataset:
        examples = dataset.examples[: args.limit] if args.limit else dataset.examples
        if args.predictions:
            from sqlwright.eval.datasets import read_predictions

            predictions = read_predictions(args.predictions, examples)
        else:  # predict the gold itself
            predictions = {e.id: Prediction(e.id, e.gold) for e in examples}
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = run_eval(dataset, predictions, run_file=Path(tmp) / "run.sqlite", examples=examples,
                               workers=args.workers, timeout=args.timeout, progress=False)
            fast = time.perf_counter() - start
        slow, slow_ex = naive(dataset, examples, predictions, args.timeout)
    print(f"questions: {len(examples)}")
    print(f"runner ({args.workers} workers): {fast:.1f} s, EX {summary.ex:.4f} "
          f"(gold errors {summary.metrics['gold_errors']}, errors {summary.metrics['errors']})")
    print(f"naive (1 process):     {slow:.1f} s, EX {slow_ex:.4f}")
    print(f"speed-up: {slow / fast:.1f}x")
    if args.out:
        import json

        args.out.write_text(json.dumps({
            "questions": len(examples), "predictions": str(args.predictions or "gold"),
            "runner_seconds": round(fast, 2), "runner_ex": round(summary.ex, 4), "workers": args.workers,
            "naive_seconds": round(slow, 2), "naive_ex": round(slow_ex, 4),
            "speedup": round(slow / fast, 2), "load_average": os.getloadavg()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
