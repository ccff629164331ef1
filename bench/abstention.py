"""Abstention: tune `abstain_below` on questions the schema cannot answer, and report TrustSQL's RS(c).

The question set mixes the hand-written unanswerable questions over Spider dev databases
(bench/data/unanswerable_spider.jsonl, 40) with as many feasible Spider dev questions (a stratified sample,
seed 0). Each is asked once through the full pipeline with abstention by confidence off; the vote's
confidence, the model's own "unanswerable" statements and correctness (Spider's rule) are recorded, then
every threshold is scored offline:

    RS(c) = mean over questions of: +1 correct answer or correct abstention, 0 abstention on a feasible
            question, -c a wrong answer or any answer to an infeasible question.

    .venv/bin/python bench/abstention.py --model qwen2.5-coder-0.5b [--feasible 40]

Resumable (answers are appended to runs/abstention-<model>.jsonl). Writes bench/results/abstention-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from sqlwright.config import load_settings
from sqlwright.db import open_database
from sqlwright.errors import SqlwrightError
from sqlwright.eval.compare import compare, get_rule
from sqlwright.eval.datasets import load_dataset
from sqlwright.eval.sampling import stratified_sample
from sqlwright.llm import load_llm
from sqlwright.pipeline import AskOptions, Engine

ROOT = Path(__file__).resolve().parents[1]
PENALTIES = (0, 10, "N")


def questions(spider_dir: Path, feasible: int) -> list[dict]:
    dataset = load_dataset("spider", spider_dir)
    items = [{"id": f"u{i}", "db": row["db_id"], "question": row["question"], "gold": None}
             for i, row in enumerate(map(json.loads, (ROOT / "bench/data/unanswerable_spider.jsonl").open()))]
    items += [{"id": e.id, "db": e.db, "question": e.question, "gold": e.gold}
              for e in stratified_sample(dataset.examples, feasible, 0)]
    for item in items:
        item["url"] = dataset.database_url(item["db"])
    return items


def answer_all(items: list[dict], engine: Engine, log_path: Path) -> list[dict]:
    done = {}
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            row = json.loads(line)
            done[row["id"]] = row
    rule = get_rule("spider")
    databases = {}
    with log_path.open("a") as out:
        for n, item in enumerate(items, 1):
            if item["id"] in done:
                continue
            db = databases.get(item["url"]) or databases.setdefault(item["url"], open_database(item["url"]))
            answer = engine.ask(db, item["question"], abstain_below=0.0)
            correct = False
            if item["gold"] is not None and answer.sql and not answer.abstained:
                try:
                    gold = db.execute(rule.prepare(item["gold"]), guard=False, max_rows=100_000)
                    pred = db.execute(rule.prepare(answer.sql), max_rows=100_000)
                    correct = bool(compare(rule, gold, pred, gold_sql=item["gold"]))
                except SqlwrightError:
                    correct = False
            row = {"id": item["id"], "feasible": item["gold"] is not None, "confidence": answer.confidence,
                   "abstained": answer.abstained, "reason": answer.reason, "correct": correct,
                   "seconds": answer.timings.get("total")}
            out.write(json.dumps(row) + "\n")
            out.flush()
            done[item["id"]] = row
            print(f"{n}/{len(items)} {item['id']} conf={answer.confidence:.2f} "
                  f"abstained={answer.abstained} correct={correct}", file=sys.stderr)
    return [done[i["id"]] for i in items]


def score(rows: list[dict], threshold: float, penalty: float) -> float:
    total = 0.0
    for r in rows:
        abstain = r["abstained"] or r["confidence"] < threshold
        if not r["feasible"]:
            total += 1 if abstain else -penalty
        elif abstain:
            total += 0
        else:
            total += 1 if r["correct"] else -penalty
    return total / len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--feasible", type=int, default=40)
    args = parser.parse_args()
    spider = Path(os.environ.get("SQLWRIGHT_DATA") or ROOT.parent / "shared" / "data") / "spider"
    items = questions(spider, args.feasible)
    settings = load_settings(model=args.model)
    # Every candidate drawn: thresholds are scored offline from the confidences, which an early stop would
    # make lower bounds (the pipeline itself decides the same either way; see pipeline/draw.py).
    engine = Engine(load_llm(args.model, settings), AskOptions(early_stop=False), cache_dir=settings.cache_dir)
    (ROOT / "runs").mkdir(exist_ok=True)
    rows = answer_all(items, engine, ROOT / "runs" / f"abstention-{args.model}.jsonl")
    n = len(rows)
    # `abstain_below=t` answers when confidence >= t: the distinct confidences are every distinct choice.
    thresholds = sorted({0.0, *(r["confidence"] for r in rows)})
    table = {}
    for c in PENALTIES:
        penalty = n if c == "N" else c
        best = max(thresholds, key=lambda t, p=penalty: (score(rows, t, p), -t))
        table[str(c)] = {"never": round(score(rows, 0.0, penalty), 4),
                         "best_threshold": math.floor(best * 1e4) / 1e4,  # rounded down: same choice
                         "best": round(score(rows, best, penalty), 4),
                         "by_threshold": {f"{t:.4f}": round(score(rows, t, penalty), 4) for t in thresholds}}
    infeasible = [r for r in rows if not r["feasible"]]
    result = {
        "model": args.model, "questions": n, "infeasible": len(infeasible),
        "model_abstained_on_infeasible": sum(r["abstained"] for r in infeasible),
        "abstained_on_feasible": sum(r["abstained"] for r in rows if r["feasible"]),
        "ex_feasible": round(sum(r["correct"] for r in rows if r["feasible"]) / max(1, n - len(infeasible)), 4),
        "rs": table,
        "command": " ".join(["bench/abstention.py", *sys.argv[1:]]),
    }
    out = ROOT / "bench" / "results" / f"abstention-{args.model}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
