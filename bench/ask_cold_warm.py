"""`sqlwright ask sample "…"` as a terminal user runs it: a new process per question, seconds end to end.

Each repeat makes a fresh cache directory (the assembled models are linked in, so nothing is rebuilt but the
sample database, its value index and the prompt cache) and times, one after the other:

- first: the first call on the fresh cache (the prompt state is computed and saved);
- second: the same command again, a new process (the prompt state is loaded from disk);
- other: another question on the same database, a new process;
- no_cache: the same command with the prompt cache off (SQLWRIGHT_PROMPT_CACHE_MB=0): what every call cost
  before the cache.

Target (issue #11): second <= 8 s and <= first / 2, with the 1.5B model and the default pipeline.

    .venv/bin/python bench/ask_cold_warm.py [--model qwen2.5-coder-1.5b] [--repeats 2] [--label NAME]

Figures go to bench/results/ask_cold_warm.json (other labels' figures are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlwright.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ask_cold_warm.json"
SQLWRIGHT = Path(sys.executable).with_name("sqlwright")
QUESTION = "Which three products brought in the most revenue?"
OTHER = "How many orders has each employee handled?"


def fresh_cache(models: Path, into: Path) -> Path:
    """A cache directory holding only links to the assembled models (and their verification markers)."""
    (into / "models").mkdir(parents=True)
    for item in models.iterdir():
        (into / "models" / item.name).symlink_to(item)
    return into


def timed_ask(cache: Path, model: str, question: str, **env: str) -> tuple[float, str]:
    environ = {**os.environ, "SQLWRIGHT_CACHE_DIR": str(cache), **env}
    started = time.perf_counter()
    done = subprocess.run([str(SQLWRIGHT), "ask", "sample", question, "--model", model, "--show-sql"],
                          env=environ, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sqlwright ask failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--label", default="default")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    models = load_settings().cache_dir / "models"
    runs: list[dict[str, float]] = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="sqlwright-bench-") as tmp:
            cache = fresh_cache(models, Path(tmp))
            row = {}
            row["first"], answer = timed_ask(cache, args.model, QUESTION)
            row["second"], again = timed_ask(cache, args.model, QUESTION)
            row["other"], _ = timed_ask(cache, args.model, OTHER)
            row["no_cache"], _ = timed_ask(cache, args.model, QUESTION, SQLWRIGHT_PROMPT_CACHE_MB="0")
            row["same_answer"] = float(answer == again)
            runs.append(row)
            print(f"repeat {repeat}: " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    summary = {
        key: round(statistics.median(r[key] for r in runs), 2) for key in ("first", "second", "other", "no_cache")
    }
    summary["second_over_first"] = round(summary["second"] / summary["first"], 3)
    summary["same_answer"] = all(r["same_answer"] == 1.0 for r in runs)
    record = {
        "model": args.model,
        "question": QUESTION,
        "median_seconds": summary,
        "runs": runs,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "command": f"bench/ask_cold_warm.py --model {args.model} --repeats {args.repeats} --label {args.label}",
    }
    print(json.dumps(summary))
    if not args.no_save:
        saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        saved[args.label] = record
        RESULTS.write_text(json.dumps(saved, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
