"""Evaluator speed: all 1,034 Spider dev questions, the runner against one-process evaluation.

Runs the runner (2 worker processes, cached databases and gold results), then the naive way — one
question at a time in one process: open the database, execute gold, execute prediction, compare — and,
with ``--official DIR`` (a checkout of taoyds/test-suite-sql-eval, which needs ``sqlparse`` and
``tqdm``), the official ``eval_exec_match`` over the same questions serially in one process (the
process is started before the clock starts; each call has a wall-clock limit, ``--official-timeout``,
so a runaway prediction cannot hang the bench). Prints seconds, EX and the speed ratios. Target: the
runner at least 3x faster than the official script.

    .venv/bin/python bench/eval_speed.py [--official /tmp/official/test-suite-sql-eval]
        [--predictions FILE ... [--candidates]] [--wrap-gold] [--limit N] [--workers 2] [--repeat 3] [--out bench/results/X.json]

Predictions: Spider lines, JSONL or sqlwright run files (.sqlite: their stored predictions, which
may cover a sample; with --candidates also every candidate SQL of their traces, each distinct question
and SQL once); default: the gold SQL itself. Only predictions with SQL are timed.
Data: ../shared/data/spider (relative to the repo root; SQLWRIGHT_DATA overrides ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlwright.db import open_database
from sqlwright.errors import SqlwrightError
from sqlwright.eval.compare import compare, get_rule
from sqlwright.eval.runner import DEFAULT_MAX_ROWS, run_eval

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


def official(official_dir: Path, dataset, examples, predictions, timeout: float) -> tuple[float, float, int]:
    """The official eval_exec_match, question by question in one (already started) process.
    Returns seconds, EX and the number of calls stopped at `timeout` (counted wrong)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from spider_official_agreement import official_verdicts

    jobs = [(e.id, str(dataset.database_dir / e.db / f"{e.db}.sqlite"), predictions[e.id].sql, e.gold)
            for e in examples]
    verdicts, seconds = official_verdicts(official_dir, jobs, workers=1, timeout=timeout, timed=True)
    correct = sum(value for kind, value in verdicts.values() if kind == "ok")
    return seconds, correct / len(examples), sum(kind == "timeout" for kind, _ in verdicts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--predictions", type=Path, nargs="+", help="a model's predictions (Spider lines, JSONL, "
                        "run files; several are pooled); default: the gold SQL itself")
    parser.add_argument("--candidates", action="store_true", help="also every candidate SQL kept in the run "
                        "files' traces (each distinct question and SQL once)")
    parser.add_argument("--wrap-gold", action="store_true", help="predict 'SELECT * FROM (<gold>)': the gold's "
                        "answers under another text, so every prediction is run and compared (no shortcut)")
    parser.add_argument("--official", type=Path, help="a checkout of test-suite-sql-eval: time its "
                        "eval_exec_match serially in one process too")
    parser.add_argument("--official-timeout", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=1, help="time the runner this many times (the first, "
                        "cold run is the figure; the median of the others is reported too)")
    parser.add_argument("--no-naive", action="store_true", help="skip the in-process sqlwright loop")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    spider = data_dir()
    if not (spider / "dev.json").exists():
        print(f"no Spider data at {spider}; set SQLWRIGHT_DATA", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from spider_official_agreement import collect
    from sqlwright.eval.datasets import load_dataset
    from sqlwright.eval.types import Prediction

    with load_dataset("spider", spider) as dataset:
        examples = dataset.examples[: args.limit] if args.limit else list(dataset.examples)
        examples, predictions, _ = collect(args.predictions, examples, candidates=args.candidates)
        if args.wrap_gold:
            predictions = {k: Prediction(k, f"SELECT * FROM ({p.sql.strip().rstrip(';')})")
                           for k, p in predictions.items() if p.sql is not None}
        examples = [e for e in examples if e.id in predictions and predictions[e.id].sql is not None]
        times, summary = [], None
        for _ in range(max(1, args.repeat)):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                summary = run_eval(dataset, predictions, run_file=Path(tmp) / "run.sqlite", examples=examples,
                                   workers=args.workers, timeout=args.timeout, progress=False)
                times.append(time.perf_counter() - start)
        # The first run pays for starting the worker processes (as a fresh `sqlwright eval` does): it is
        # the figure compared; later runs in this process reuse the fork server.
        fast = times[0]
        slow, slow_ex = (None, None) if args.no_naive else naive(dataset, examples, predictions, args.timeout)
        off = None
        if args.official:
            off = official(args.official, dataset, examples, predictions, args.official_timeout)
    names = " + ".join(str(p) for p in args.predictions) if args.predictions else "gold as predictions"
    label = f"{names}{' with candidates' if args.candidates else ''}{', wrapped' if args.wrap_gold else ''}"
    print(f"questions: {len(examples)} ({label})")
    print(f"runner ({args.workers} workers): {fast:.2f} s (all runs: {', '.join(f'{t:.2f}' for t in times)}), "
          f"EX {summary.ex:.4f} (gold errors {summary.metrics['gold_errors']}, errors {summary.metrics['errors']})")
    if slow is not None:
        print(f"naive (1 process):     {slow:.2f} s, EX {slow_ex:.4f}   speed-up {slow / fast:.1f}x")
    if off is not None:
        print(f"official (1 process):  {off[0]:.2f} s, EX {off[1]:.4f}"
              f"{f', {off[2]} stopped at the time limit' if off[2] else ''}   speed-up {off[0] / fast:.1f}x")
    if args.out:
        figures = {
            "questions": len(examples), "predictions": names, "candidates": args.candidates,
            "wrapped": args.wrap_gold,
            "runner_seconds": round(fast, 2), "runner_runs": [round(t, 2) for t in times],
            "runner_warm_median": round(statistics.median(times[1:]), 2) if len(times) > 1 else None,
            "runner_ex": round(summary.ex, 4), "workers": args.workers,
        }
        if slow is not None:
            figures.update(naive_seconds=round(slow, 2), naive_ex=round(slow_ex, 4),
                           speedup=round(slow / fast, 2))
        if off is not None:
            figures.update(official_seconds=round(off[0], 2), official_ex=round(off[1], 4),
                           official_timeouts=off[2], speedup_vs_official=round(off[0] / fast, 2))
        figures["load_average"] = os.getloadavg()
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
