"""Greedy (or full-pipeline) `ask` with the embedded model over Spider dev: execution accuracy and seconds.

Rows are compared as sets (BIRD's rule: order and duplicates ignored, column order matters), the simple
rule issue #2 asks for; `sqlwright eval spider` gives Spider's own test-suite verdicts. Resumable: the run
file keeps every answer, so an interrupted run continues where it stopped.

    .venv/bin/python bench/spider_ask.py --model qwen2.5-coder-0.5b --limit 100
    .venv/bin/python bench/spider_ask.py --model qwen2.5-coder-1.5b --sample 300 --seed 0 [--full]
    .venv/bin/python bench/spider_ask.py --answers-from runs/spider-dev-0.5b-greedy.sqlite   # no model run

`--answers-from` re-judges the answers an earlier `sqlwright eval spider --model …` run stored (same
pipeline, same questions) with the set rule, without running the model again.

Prints EX and the median seconds per question, and writes bench/results/spider_ask-<model>-<mode>.json.
Data: ../shared/data/spider (SQLWRIGHT_DATA overrides ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from sqlwright.config import load_settings
from sqlwright.eval.datasets import load_dataset
from sqlwright.eval.predictors import FilePredictor, PipelinePredictor
from sqlwright.eval.runfile import open_run_file
from sqlwright.eval.runner import run_eval
from sqlwright.eval.sampling import select_examples
from sqlwright.llm import load_llm
from sqlwright.pipeline import AskOptions, Engine

ROOT = Path(__file__).resolve().parents[1]


class SetComparison:
    """The Spider dataset, compared with the set rule instead of Spider's multiset rule."""

    comparison = "bird"

    def __init__(self, dataset) -> None:
        self._dataset = dataset

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--sample", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="the default pipeline instead of greedy")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--answers-from", type=Path, help="an eval run file whose stored answers to re-judge")
    args = parser.parse_args()

    data = Path(os.environ.get("SQLWRIGHT_DATA") or ROOT.parent / "shared" / "data") / "spider"
    if not (data / "dev.json").exists():
        print(f"no Spider data at {data}; set SQLWRIGHT_DATA", file=sys.stderr)
        return 2
    dataset = SetComparison(load_dataset("spider", data))
    examples = select_examples(dataset.examples, sample=args.sample, seed=args.seed, limit=args.limit)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    if args.answers_from:
        with open_run_file(args.answers_from, must_exist=True) as store:
            config, predictor = store.config() or {}, FilePredictor(store.predictions())
        pipeline = config.get("pipeline") or {}
        args.model = config.get("model") or "unknown"
        mode = "greedy" if pipeline.get("candidates") == 1 and not pipeline.get("repair_rounds") else "full"
        examples = [e for e in examples if e.id in predictor.predictions]
        options = None
    else:
        mode = "full" if args.full else "greedy"
        options = AskOptions() if args.full else AskOptions.greedy()
        settings = load_settings(model=args.model)
        predictor = PipelinePredictor(Engine(load_llm(args.model, settings), options, cache_dir=settings.cache_dir))
    tag = f"{args.model}-{mode}-" + (f"s{args.sample}seed{args.seed}" if args.sample else f"n{len(examples)}")
    try:
        summary = run_eval(dataset, predictor, run_file=args.run_dir / f"spider_ask-{tag}.sqlite",
                           examples=examples, workers=0 if args.answers_from else 2,
                           config={"model": args.model, "pipeline": options.model_dump() if options else "stored",
                                   "answers_from": str(args.answers_from or "")})
    finally:
        if hasattr(predictor, "close"):
            predictor.close()
    seconds = [v.seconds for _, v in summary.pairs if v.seconds is not None]
    result = {
        "model": args.model, "mode": mode, "questions": len(summary.pairs), "ex_set": round(summary.ex, 4),
        "median_seconds": round(statistics.median(seconds), 3) if seconds else None,
        "mean_seconds": round(statistics.fmean(seconds), 3) if seconds else None,
        "command": " ".join(["bench/spider_ask.py", *sys.argv[1:]]),
    }
    out = ROOT / "bench" / "results" / f"spider_ask-{tag}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"EX (set) {result['ex_set']:.3f} on {result['questions']} questions; "
          f"median {result['median_seconds']} s per question  -> {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
