"""Summarise evaluation run files into small JSON files under bench/results/ and one Markdown table.

    .venv/bin/python bench/summarize_runs.py runs/spider-s300-1.5b-greedy.sqlite runs/spider-s300-1.5b-full.sqlite
    .venv/bin/python bench/summarize_runs.py --common runs/a.sqlite runs/b.sqlite   # only questions both finished

A run that is still going (or was stopped) is summarised as it stands; `--common` restricts every run to the
questions all of them have verdicts for, so partial runs compare on equal ground. Spider runs are also
reported without wta_1 (its database is a rebuild with an empty `rankings` table, see ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlwright.cli.eval import UNRELIABLE_DBS
from sqlwright.eval.metrics import summarize
from sqlwright.eval.runner import summary_from_run_file

ROOT = Path(__file__).resolve().parents[1]


def _fmt(x: float | None, pct: bool = True) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}" if pct else f"{x:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--common", action="store_true", help="only the questions every run has finished")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    summaries = [summary_from_run_file(r) for r in args.runs]
    common = None
    if args.common:
        common = set.intersection(*({e.id for e, _ in s.pairs} for s in summaries))
    rows = []
    for run, s in zip(args.runs, summaries, strict=True):
        pairs = [(e, v) for e, v in s.pairs if common is None or e.id in common]
        metrics = summarize(pairs, exclude_dbs=UNRELIABLE_DBS.get(s.config.get("kind"), ()))
        pipeline = s.config.get("pipeline") or {}
        result = {
            "run": run.stem, "dataset": s.config.get("dataset"), "model": s.config.get("model"),
            "pipeline": pipeline, "questions": metrics["count"], "common_subset": common is not None,
            "ex": metrics["ex"], "ex_without_wta_1": metrics.get("excluding", {}).get("ex"),
            "by_difficulty": {k: round(v["ex"], 4) for k, v in metrics["by_difficulty"].items()},
            "by_category": {k: round(v["ex"], 4) for k, v in metrics["by_category"].items()},
            "latency": metrics["latency"], "tokens": metrics["tokens"],
            "errors": metrics["errors"], "abstained": metrics["abstained"],
        }
        suffix = "-common" if common is not None else ""
        (args.out_dir / f"{run.stem}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
        rows.append(result)

    print("| run | questions | EX % | EX % w/o wta_1 | by hardness / category (EX %) | s/question (median, mean) | tokens/question (in, out) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        parts = r["by_difficulty"] or r["by_category"]
        breakdown = ", ".join(f"{k} {100 * v:.0f}" for k, v in parts.items())
        lat, tok = r["latency"] or {}, r["tokens"] or {}
        print(f"| {r['run']} | {r['questions']} | {_fmt(r['ex'])} | {_fmt(r['ex_without_wta_1'])} | {breakdown} | "
              f"{_fmt(lat.get('median'), False)}, {_fmt(lat.get('mean'), False)} | "
              f"{tok.get('prompt_mean', 0):.0f}, {tok.get('completion_mean', 0):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
