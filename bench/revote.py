"""What each stage of a full-pipeline run is worth, from the run's own candidates (no model calls).

A run of `sqlwright eval … --model M --all-candidates` (every candidate drawn: without it the pipeline stops
drawing once the vote is decided, and such a run cannot be replayed) keeps every answer's candidates in its
run file:
their SQL, origin (greedy, sample-i, repair-of-i) and mean log-probability. This script re-executes those
candidates and re-runs the pipeline's own vote (`vote_by_result`, `abstention_reason`) on subsets of them,
then judges each subset's winner with the run's benchmark rule:

- ``as-run``: every candidate (reproduces the run; a check of this script),
- ``no-repair``: without the repair candidates (exactly what ``--repair-rounds 0`` would have produced:
  the samples do not depend on the repairs),
- ``n=K``: the greedy candidate and the first K-1 samples, no repairs (what ``--candidates K
  --repair-rounds 0`` would have produced: sample i is drawn from its own seed),
- ``greedy``: the greedy candidate alone (the run's prompt, with value hints: ``--greedy`` without hints
  is a separate run),
- ``… +rescue``: that subset, and when none of its candidates ran, the run's repairs of its candidates
  too (repair only when there is nothing to answer with).

Seconds per question: ``as-run`` is the measured total; the others subtract the stages they skip
(repair; the samples' generation, pro rata for K-1 of the run's samples).

    .venv/bin/python bench/revote.py runs/spider-s300-1.5b-full.sqlite [--out bench/results/revote-….json]
        [--only-done-in runs/other.sqlite]   # only the questions another (partial) run has done
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

from sqlwright.cli.eval import UNRELIABLE_DBS
from sqlwright.db import open_database
from sqlwright.eval.datasets import load_dataset
from sqlwright.eval.runfile import open_run_file
from sqlwright.eval.runner import run_eval
from sqlwright.eval.types import Prediction
from sqlwright.pipeline.abstain import abstention_reason
from sqlwright.pipeline.execute import Executor
from sqlwright.pipeline.generate import Draft
from sqlwright.pipeline.select import repaired_from, vote_by_result


def _sample_number(origin: str) -> int | None:
    """i for a sample's origin (``sample-i``, ``cot-i``); 0 for the greedy one; None for a repair."""
    if origin in ("greedy", "cot-greedy"):
        return 0
    if repaired_from(origin) is not None:
        return None
    tail = origin.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _first(k: int, origin: str) -> bool:
    """Whether `origin` is the greedy candidate or one of the first `k` samples."""
    number = _sample_number(origin)
    return number is not None and number <= k


def policies(n_samples: int) -> dict[str, object]:
    """Policy name -> predicate over a candidate's origin."""
    out: dict[str, object] = {
        "as-run": lambda origin: True,
        "no-repair": lambda origin: repaired_from(origin) is None,
    }
    for k in range(n_samples - 1, 0, -1):
        out[f"n={k + 1}"] = partial(_first, k)
    out["greedy"] = partial(_first, 0)
    return out


def _answer(candidates: list, dialect: str) -> str | None:
    """The pipeline's answer from these candidates: the vote's winner, or None when it abstains."""
    selection = vote_by_result(candidates, dialect)
    reason = abstention_reason(selection)
    return None if reason or selection.chosen is None else selection.chosen.sql


def seconds_for(policy: str, timings: dict, n_samples: int) -> float:
    total = timings.get("total", 0.0)
    if policy == "as-run":
        return total
    without_repair = total - timings.get("repair", 0.0)
    samples = timings.get("generate.samples", 0.0)
    if policy == "no-repair":
        return without_repair
    if policy == "greedy":
        return without_repair - samples
    k = int(policy.split("=")[1]) - 1  # samples kept
    return without_repair - samples * (1 - k / max(1, n_samples))


def tokens_for(subset: list) -> tuple[int, int]:
    """Prompt and completion tokens of the model calls behind `subset`: each call's prompt once (the
    samples of a question come from one call sharing one prompt), every candidate's completion."""
    calls = {("samples" if (_sample_number(c.origin) or 0) > 0 else c.origin): c.prompt_tokens for c in subset}
    return sum(calls.values()), sum(c.completion_tokens for c in subset)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run file of the full pipeline")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("--only-done-in", type=Path, metavar="RUN", help="only the questions this other run "
                        "file has verdicts for (to compare with a partial run on equal ground)")
    args = parser.parse_args()

    with open_run_file(args.run, must_exist=True) as store:
        config = store.config() or {}
        predictions = store.predictions()
        done = {e.id: e for e, _ in store.verdicts()}
    traced = {k: p for k, p in predictions.items() if p.trace and k in done}
    if args.only_done_in:
        with open_run_file(args.only_done_in, must_exist=True) as other:
            others = {e.id for e, _ in other.verdicts()}
        traced = {k: p for k, p in traced.items() if k in others}
    if not traced:
        print(f"{args.run}: no traced model answers (a predictions-file run, or one from before traces)",
              file=sys.stderr)
        return 2
    stopped = sum(1 for p in traced.values() if p.trace.get("undrawn"))
    if stopped:
        print(f"{args.run}: {stopped} answers stopped drawing candidates early (the vote was decided), so "
              "subsets of their candidates are not what fewer candidates would have given; replay a run "
              "made with --all-candidates", file=sys.stderr)
        return 2
    dialect = config.get("dialect")
    with load_dataset(config["kind"], Path(config["data"]), dialect=dialect) as dataset:
        examples = [e for e in dataset.examples if e.id in traced]
        n_samples = max(sum(1 for c in traced[e.id].trace["candidates"] if c["origin"].startswith(("sample-", "cot-"))
                            and c["origin"] != "cot-greedy") for e in examples)
        rules = policies(n_samples)
        chosen: dict[str, dict[str, Prediction]] = {}
        for name in rules:
            chosen[name] = {}
            if name != "as-run":
                chosen[f"{name} +rescue"] = {}
        databases: dict[str, object] = {}
        for e in examples:
            db = databases.get(e.db)
            if db is None:
                db = databases[e.db] = open_database(dataset.database_url(e.db))
            trace = traced[e.id].trace
            executor = Executor(db)
            drafts = [Draft(c["origin"], c["sql"] or None, "", c.get("unanswerable"), c.get("mean_logprob"),
                            c.get("prompt_tokens", 0), c.get("completion_tokens", 0))
                      for c in trace["candidates"]]
            pool = executor.candidates(drafts)
            # candidates' own token counts are in traces from 2026-11-29 on; before, only the totals
            counted = all("completion_tokens" in c for c in trace["candidates"])
            for name, keep in rules.items():
                subset = [c for c in pool if keep(c.origin)]
                seconds = seconds_for(name, trace["timings"], n_samples)
                if name == "as-run":
                    tokens = trace["prompt_tokens"], trace["completion_tokens"]
                else:
                    tokens = tokens_for(subset) if counted else (None, None)
                chosen[name][e.id] = Prediction(e.id, _answer(subset, db.dialect), seconds=seconds,
                                                prompt_tokens=tokens[0], completion_tokens=tokens[1])
                if name == "as-run":
                    continue
                # +rescue: the subset's own repairs, only when none of its candidates ran
                if vote_by_result(subset, db.dialect).winner is None:
                    originals = {i for i, c in enumerate(pool) if keep(c.origin)}
                    subset = subset + [c for c in pool if repaired_from(c.origin) in originals]
                    seconds += trace["timings"].get("repair", 0.0)
                tokens = tokens_for(subset) if counted else (None, None)
                chosen[f"{name} +rescue"][e.id] = Prediction(e.id, _answer(subset, db.dialect), seconds=seconds,
                                                             prompt_tokens=tokens[0], completion_tokens=tokens[1])
        for db in databases.values():
            db.close()

        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, preds in chosen.items():
                summary = run_eval(dataset, preds, run_file=Path(tmp) / f"{name}.sqlite", examples=examples,
                                   workers=0, progress=False, exclude_dbs=UNRELIABLE_DBS.get(config["kind"], ()))
                secs = [p.seconds for p in preds.values()]
                prompt = [p.prompt_tokens for p in preds.values()]
                completion = [p.completion_tokens for p in preds.values()]
                results[name] = {
                    "prompt_tokens_mean": None if None in prompt else round(statistics.mean(prompt)),
                    "completion_tokens_mean": None if None in completion else round(statistics.mean(completion)),
                    "ex": round(summary.metrics["ex"], 4),
                    "ex_without_wta_1": summary.metrics.get("excluding", {}).get("ex"),
                    "seconds_mean": round(statistics.mean(secs), 2),
                    "seconds_median": round(statistics.median(secs), 2),
                    "by_difficulty": {k: round(v["ex"], 4) for k, v in summary.metrics["by_difficulty"].items()},
                }
    with open_run_file(args.run, must_exist=True) as store:
        run_ex = sum(v.correct for _, v in store.verdicts() if v.id in traced) / len(examples)
    out = {"run": args.run.stem, "model": config.get("model"), "questions": len(examples),
           "run_ex": round(run_ex, 4), "policies": results,
           "command": " ".join(["bench/revote.py", *sys.argv[1:]])}
    print(f"{args.run.stem}: {len(examples)} questions, run's own EX {100 * run_ex:.1f}%")
    print("| policy | EX % | s/question (mean, median) | tokens/question in, out (mean) |")
    print("|---|---|---|---|")
    for name, r in results.items():
        tokens = ("–" if r["prompt_tokens_mean"] is None
                  else f"{r['prompt_tokens_mean']:,}, {r['completion_tokens_mean']:,}")
        print(f"| {name} | {100 * r['ex']:.1f} | {r['seconds_mean']:.2f}, {r['seconds_median']:.2f} | {tokens} |")
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
