"""The lift of learned examples: learn the evaluation databases (never their questions), check for leaks,
then compare an evaluation with and without the examples, question by question.

    # 1. learn: verified pairs for every database the dataset's questions use, in rounds of --step pairs
    #    per database, so that a stopped run has covered every database evenly; resumable (work files)
    .venv/bin/python bench/learn_lift.py learn sqleval --data ../shared/data/sqleval --dialect postgres \
        --pairs 12 --step 3 --model qwen2.5-coder-1.5b --state /tmp/lift-state
    # 2. leakage: for every evaluated question, the most similar learned question (MiniLM cosine); learned
    #    examples above --threshold (0.9) are removed from the store before scoring
    .venv/bin/python bench/learn_lift.py leakage sqleval --data ../shared/data/sqleval --dialect postgres \
        --state /tmp/lift-state
    # 3. the evaluation with the examples (and the baseline without them, same command less --examples)
    SQLWRIGHT_STATE_DIR=/tmp/lift-state .venv/bin/sqlwright eval sqleval --data ../shared/data/sqleval \
        --dialect postgres --model qwen2.5-coder-1.5b --examples 3 --run-file /tmp/sqleval-examples.sqlite
    # 4. the paired comparison (EX of each, difference, paired-bootstrap 95% interval)
    .venv/bin/python bench/learn_lift.py compare /tmp/sqleval-default.sqlite /tmp/sqleval-examples.sqlite \
        --label sqleval-postgres-1.5b

The learned pairs are exported beside the work files (learned-<kind>-<model>.jsonl; `sqlwright examples
import` loads them), the figures to bench/results/learn_lift.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FIGURES = RESULTS / "learn_lift.json"


def _dataset(args):
    from sqlwright.eval.datasets import load_dataset

    return load_dataset(args.kind, Path(args.data), dialect=args.dialect)


def _identity(url: str) -> tuple[str, str]:
    """(database key, schema fingerprint): what the examples store files a database's examples under."""
    from sqlwright.db import database_key, open_database, schema_fingerprint

    with open_database(url) as db:
        return database_key(db), schema_fingerprint(db.schema())


def _save(label: str, record: dict) -> None:
    saved = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    saved[label] = record
    FIGURES.write_text(json.dumps(saved, indent=1) + "\n")


def cmd_learn(args) -> int:
    from sqlwright.config import load_settings
    from sqlwright.db import database_key, open_database, schema_fingerprint
    from sqlwright.llm import load_llm
    from sqlwright.store import open_state_store
    from sqlwright.synth.learn import learn

    settings = load_settings(state_dir=args.state)
    llm = load_llm(args.model, settings)
    store = open_state_store(settings)
    work_dir = Path(args.work or settings.cache_dir / "bench-learn" / f"{args.kind}-{args.model}")
    work_dir.mkdir(parents=True, exist_ok=True)
    per_db: dict[str, dict] = {}
    started = time.perf_counter()
    with _dataset(args) as dataset:
        wanted = args.db_id or dataset.db_ids
        urls = {d: dataset.database_url(d) for d in wanted}
        names = sorted(args.db_id) if args.db_id else sorted(urls)[: args.limit] if args.limit else sorted(urls)
        for target in range(args.step, args.pairs + args.step, args.step):
            target = min(target, args.pairs)
            for name in names:
                with open_database(urls[name]) as db:
                    key, fingerprint = database_key(db), schema_fingerprint(db.schema())
                    t = time.perf_counter()
                    report = learn(db, llm, store, database_key=key, schema_fingerprint=fingerprint,
                                   pairs=target, work=work_dir / f"{name}.sqlite", seed=args.seed)
                    synth = report.synth
                    per_db[name] = {"verified": synth.verified, "attempts": synth.attempts, "kept": synth.kept,
                                    "questions": synth.questions, "rejections": synth.rejections,
                                    "unverified": synth.unverified,
                                    "seconds": {k: round(v, 1) for k, v in synth.seconds.items()}}
                    print(f"[{time.perf_counter() - started:7.0f}s] {name}: {synth.verified}/{target} verified "
                          f"({synth.attempts} written, {synth.kept} kept; {time.perf_counter() - t:.0f}s)",
                          flush=True)
            _export(args, work_dir, [n for n in names if n in per_db], per_db)  # each round: a stop keeps it
            if target >= args.pairs:
                break
    return 0


def _export(args, work_dir: Path, names: list[str], per_db: dict[str, dict]) -> None:
    """The pairs of the work files (verified or not) as JSON Lines, and the yield figures."""
    from sqlwright.synth.dataset import work_pairs
    from sqlwright.synth.workfile import open_work_file

    pairs = []
    for name in names:
        with open_work_file(work_dir / f"{name}.sqlite") as wf:
            pairs += [p.to_json() | {"db_id": name} for p in work_pairs(wf)]
    out = work_dir / f"learned-{args.kind}-{args.model}.jsonl"  # run data: next to the work files, not committed
    out.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    totals = _yield(per_db)
    print(json.dumps(totals), flush=True)
    _save(f"learn-{args.kind}-{args.model}" + (f"-{args.label}" if args.label else ""), {
        "per_database": per_db, "totals": totals, "exported": str(out),
        "command": " ".join(["bench/learn_lift.py", *sys.argv[1:]])})


def _yield(per_db: dict[str, dict]) -> dict:
    """Totals over databases: pairs, verified share, rejections by reason, pairs per CPU-hour per stage."""
    totals: dict = {"databases": len(per_db), "written": 0, "kept": 0, "questions": 0, "verified": 0,
                    "rejections": {}, "unverified": {}, "seconds": {}}
    for row in per_db.values():
        totals["written"] += row["attempts"]
        totals["kept"] += row["kept"]
        totals["questions"] += row["questions"]
        totals["verified"] += row["verified"]
        for field in ("rejections", "unverified", "seconds"):
            for k, v in row[field].items():
                totals[field][k] = round(totals[field].get(k, 0) + v, 1)
    seconds = sum(totals["seconds"].values())
    totals["verified_share_of_questions"] = round(totals["verified"] / max(1, totals["questions"]), 3)
    totals["verified_per_hour"] = round(3600 * totals["verified"] / seconds, 1) if seconds else None
    totals["per_hour_by_stage"] = {k: round(3600 * totals["kept"] / v, 1) for k, v in totals["seconds"].items() if v}
    return totals


def cmd_leakage(args) -> int:
    import numpy as np

    from sqlwright.config import load_settings
    from sqlwright.pipeline.embeddings import load_default_embedder
    from sqlwright.store import open_state_store

    settings = load_settings(state_dir=args.state)
    store = open_state_store(settings)
    embedder = load_default_embedder(settings.cache_dir)
    if embedder is None:
        raise SystemExit("the leakage check needs the bundled embedding model")
    nearest: list[float] = []
    removed: list[dict] = []
    with _dataset(args) as dataset:
        by_db: dict[str, list[str]] = {}
        for example in dataset.examples:
            by_db.setdefault(example.db, []).append(example.question)
        for name, questions in sorted(by_db.items()):
            if args.db_id and name not in args.db_id:
                continue
            key, fingerprint = _identity(dataset.database_url(name))
            learned = [e for e in store.examples(key, schema_fingerprint=fingerprint) if e.source == "synthesized"]
            if not learned:
                nearest += [0.0] * len(questions)
                continue
            lv = embedder.encode([e.question for e in learned])
            qv = embedder.encode(questions)
            cos = qv @ lv.T
            nearest += [float(x) for x in cos.max(axis=1)]
            for j in np.nonzero(cos.max(axis=0) > args.threshold)[0]:
                e = learned[int(j)]
                i = int(cos[:, j].argmax())
                removed.append({"db": name, "learned": e.question, "evaluated": questions[i],
                                "cosine": round(float(cos[i, j]), 3)})
                if not args.dry_run:
                    store.remove_example(e.database, e.id, schema_fingerprint=e.schema_fingerprint)
    qs = sorted(nearest)
    record = {
        "questions": len(qs), "threshold": args.threshold,
        "nearest_cosine": {"median": round(statistics.median(qs), 3), "p90": round(qs[int(0.9 * (len(qs) - 1))], 3),
                           "max": round(qs[-1], 3),
                           "above_0.8": sum(x > 0.8 for x in qs), "above_threshold": sum(x > args.threshold for x in qs)},
        "removed": removed, "dry_run": args.dry_run,
        "command": " ".join(["bench/learn_lift.py", *sys.argv[1:]]),
    }
    print(json.dumps({k: v for k, v in record.items() if k != "removed"} | {"removed": len(removed)}))
    _save(f"leakage-{args.kind}" + (f"-{args.label}" if args.label else ""), record)
    return 0


def cmd_affected(args) -> int:
    """The ids of the evaluated questions that a similarity floor lets see at least one stored example (the
    same similarity `ask` ranks examples by): only their prompts differ from the run without examples."""
    from sqlwright.config import load_settings
    from sqlwright.pipeline.embeddings import load_default_embedder
    from sqlwright.pipeline.examples import similarities, usable_examples
    from sqlwright.store import open_state_store

    settings = load_settings(state_dir=args.state)
    store = open_state_store(settings)
    embedder = load_default_embedder(settings.cache_dir)
    ids = []
    with _dataset(args) as dataset:
        pools: dict[str, list] = {}
        for example in dataset.examples:
            if args.db_id and example.db not in args.db_id:
                continue
            if example.db not in pools:
                key, fingerprint = _identity(dataset.database_url(example.db))
                pools[example.db] = usable_examples(store.examples(key, schema_fingerprint=fingerprint))
            pool = pools[example.db]
            if pool and float(similarities(example.question, [e.question for e in pool], embedder).max()) >= args.floor:
                ids.append(example.id)
    Path(args.out).write_text("".join(f"{i}\n" for i in ids))
    print(f"{len(ids)} questions with an example at similarity >= {args.floor} -> {args.out}")
    return 0


def _verdicts(run_file: Path) -> dict[str, bool]:
    con = sqlite3.connect(f"file:{run_file}?mode=ro", uri=True)
    try:
        return {row[0]: bool(row[1]) for row in con.execute("SELECT id, correct FROM verdicts")}
    finally:
        con.close()


def _seconds(run_file: Path) -> list[float]:
    con = sqlite3.connect(f"file:{run_file}?mode=ro", uri=True)
    try:
        return [row[0] for row in con.execute("SELECT seconds FROM predictions WHERE seconds IS NOT NULL")]
    finally:
        con.close()


def _nearest_shown(run_file: Path) -> dict[str, float]:
    """For each question of a run with examples, the similarity of the most similar example it was shown
    (0 when none was shown), from the predictions' traces."""
    con = sqlite3.connect(f"file:{run_file}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, trace FROM predictions").fetchall()
    finally:
        con.close()
    nearest = {}
    for qid, trace in rows:
        shown = (json.loads(trace) or {}).get("examples") or [] if trace else []
        nearest[qid] = max((float(e.get("similarity") or 0.0) for e in shown), default=0.0)
    return nearest


def _by_floor(common: list[str], base: dict[str, bool], new: dict[str, bool], nearest: dict[str, float],
              floors: list[float]) -> dict[str, dict]:
    """What a similarity floor would have done, estimated from the two runs: a question whose nearest shown
    example is below the floor gets the base's prompt (no example), hence the base's verdict; the others keep
    the examples run's verdict (an estimate: under the floor they would see only the examples above it)."""
    out = {}
    for floor in floors:
        above = [i for i in common if nearest.get(i, 0.0) >= floor]
        estimate = [new[i] if i in above else base[i] for i in common]
        out[f"{floor:g}"] = {
            "questions_with_an_example": len(above),
            "ex_base_on_them": round(100 * sum(base[i] for i in above) / len(above), 1) if above else None,
            "ex_examples_on_them": round(100 * sum(new[i] for i in above) / len(above), 1) if above else None,
            "estimated_ex": round(100 * sum(estimate) / len(common), 1),
        }
    return out


def paired_bootstrap(a: list[bool], b: list[bool], *, samples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% interval of mean(b) - mean(a) over questions resampled with replacement (pairs kept together)."""
    rng = random.Random(seed)
    n = len(a)
    diffs = []
    for _ in range(samples):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(sum(b[i] - a[i] for i in idx) / n)
    diffs.sort()
    return diffs[int(0.025 * samples)], diffs[int(0.975 * samples) - 1]


def cmd_compare(args) -> int:
    base = _verdicts(args.base)
    new = {k: v for run in args.new for k, v in _verdicts(run).items()}  # runs of disjoint questions, merged
    common = sorted(set(base) & set(new))
    if not common:
        raise SystemExit("the two runs share no questions")
    a = [base[i] for i in common]
    b = [new[i] for i in common]
    low, high = paired_bootstrap(a, b)
    sa, sb = _seconds(args.base), [x for run in args.new for x in _seconds(run)]
    record = {
        "questions": len(common),
        "ex_base": round(100 * sum(a) / len(a), 1), "ex_examples": round(100 * sum(b) / len(b), 1),
        "difference": round(100 * (sum(b) - sum(a)) / len(a), 1),
        "bootstrap_95": [round(100 * low, 1), round(100 * high, 1)],
        "only_base_right": sum(x and not y for x, y in zip(a, b, strict=True)),
        "only_examples_right": sum(y and not x for x, y in zip(a, b, strict=True)),
        "median_seconds": {"base": round(statistics.median(sa), 2) if sa else None,  # each run's own questions
                           "examples": round(statistics.median(sb), 2) if sb else None},
        "command": " ".join(["bench/learn_lift.py", *sys.argv[1:]]),
    }
    if args.unaffected_as_base:  # the new run evaluated only the questions `affected` listed
        ids = sorted(base)
        whole_new = [new.get(i, base[i]) for i in ids]
        whole_base = [base[i] for i in ids]
        low, high = paired_bootstrap(whole_base, whole_new)
        record["whole_dataset"] = {
            "questions": len(ids), "ex_base": round(100 * sum(whole_base) / len(ids), 1),
            "ex_examples": round(100 * sum(whole_new) / len(ids), 1),
            "difference": round(100 * (sum(whole_new) - sum(whole_base)) / len(ids), 1),
            "bootstrap_95": [round(100 * low, 1), round(100 * high, 1)],
            "note": "questions not in the new run saw no example (their prompt is the base's): base verdict kept"}
    if args.floors:
        record["by_similarity_floor"] = _by_floor(common, base, new, {k: v for run in args.new for k, v in _nearest_shown(run).items()},
                                                  [float(x) for x in args.floors.split(",")])
    print(json.dumps(record))
    _save(f"compare-{args.label}", record)
    return 0


def cmd_export(args) -> int:
    """The pairs of every work file in --work (a stopped learn run too: nothing waits for a round's end) as
    JSON Lines, and each database's yield (its datasheet: attempts, rejections, CPU seconds per stage)."""
    from sqlwright.synth.dataset import datasheet, work_pairs
    from sqlwright.synth.workfile import open_work_file

    pairs, per_db = [], {}
    for path in sorted(Path(args.work).glob("*.sqlite")):
        with open_work_file(path, must_exist=True) as wf:
            found = work_pairs(wf)
            pairs += [p.to_json() | {"db_id": path.stem} for p in found]
            sheet = datasheet(wf, found)
        per_db[path.stem] = {"pairs": sheet["pairs"], "verified": sheet["verified"], "sql": sheet["sql"],
                             "unverified": sheet["unverified"], "by_complexity": sheet["by_complexity"],
                             "cpu_seconds": round(sheet["cpu_seconds"], 1),
                             "stages": {k: {"items": v["items"], "cpu_seconds": round(v["cpu_seconds"], 1)}
                                        for k, v in sheet["stages"].items()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    cpu = sum(d["cpu_seconds"] for d in per_db.values())
    verified = sum(d["verified"] for d in per_db.values())
    totals = {"databases": len(per_db), "written": sum(d["sql"]["attempts"] for d in per_db.values()),
              "kept": sum(d["sql"]["kept"] for d in per_db.values()), "pairs": len(pairs), "verified": verified,
              "cpu_hours": round(cpu / 3600, 2), "verified_per_cpu_hour": round(3600 * verified / cpu, 1) if cpu else None}
    print(json.dumps(totals))
    _save(f"export-{args.label}", {"per_database": per_db, "totals": totals, "exported": str(out),
                                   "command": " ".join(["bench/learn_lift.py", *sys.argv[1:]])})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("learn", "leakage", "affected"):
        p = sub.add_parser(name)
        p.add_argument("kind", choices=["sqleval", "spider"])
        p.add_argument("--data", required=True)
        p.add_argument("--dialect", default=None)
        p.add_argument("--state", type=Path, required=True, help="State directory holding the learned examples.")
        p.add_argument("--db-id", action="append", default=[], help="Only this database (repeatable).")
    learn_p = sub.choices["learn"]
    learn_p.add_argument("--model", default="qwen2.5-coder-1.5b")
    learn_p.add_argument("--pairs", type=int, default=12)
    learn_p.add_argument("--step", type=int, default=3)
    learn_p.add_argument("--seed", type=int, default=0)
    learn_p.add_argument("--limit", type=int, default=None, help="Only the first N databases.")
    learn_p.add_argument("--work", default=None, help="Folder of the work files (default: under cache_dir).")
    learn_p.add_argument("--label", default=None, help="Saved as learn-KIND-MODEL-LABEL (default: learn-KIND-MODEL).")
    leak_p = sub.choices["leakage"]
    leak_p.add_argument("--threshold", type=float, default=0.9)
    leak_p.add_argument("--dry-run", action="store_true")
    leak_p.add_argument("--label", default=None, help="Saved as leakage-KIND-LABEL (default: leakage-KIND).")
    aff_p = sub.choices["affected"]
    aff_p.add_argument("--floor", type=float, required=True, help="The --examples-min-similarity to check.")
    aff_p.add_argument("--out", required=True, help="File for the question ids, one per line.")
    exp_p = sub.add_parser("export")
    exp_p.add_argument("--work", required=True, help="Folder of the learn run's work files.")
    exp_p.add_argument("--out", required=True, help="JSON Lines file for the pairs (verified or not).")
    exp_p.add_argument("--label", required=True)
    cmp_p = sub.add_parser("compare")
    cmp_p.add_argument("base", type=Path)
    cmp_p.add_argument("new", type=Path, nargs="+", help="The run(s) with examples (several: disjoint questions).")
    cmp_p.add_argument("--label", required=True)
    cmp_p.add_argument("--unaffected-as-base", action="store_true", help="The new run holds only the questions "
                       "`affected` listed: also report the whole dataset, the others keeping the base's verdict.")
    cmp_p.add_argument("--floors", default=None, help="Comma-separated similarity floors to estimate from the "
                       "traces of the run with examples (e.g. 0.5,0.6,0.7).")
    args = parser.parse_args()
    return {"learn": cmd_learn, "leakage": cmd_leakage, "affected": cmd_affected, "export": cmd_export,
            "compare": cmd_compare}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
