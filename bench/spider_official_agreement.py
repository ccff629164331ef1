"""Evaluator fidelity: do sqlwright's Spider verdicts agree with the official test-suite execution match?

For every Spider dev question that has a predicted SQL, this computes

- the official verdict: ``exec_eval.eval_exec_match`` from a checkout of taoyds/test-suite-sql-eval
  (``--official DIR``; the project does not ship its code), on the single official database
  ``<data>/database/<db_id>/<db_id>.sqlite`` with ``plug_value=False, keep_distinct=False`` — its
  defaults. Each call runs in a worker process with a wall-clock limit (``--timeout``, default 60 s,
  the official TIMEOUT, which its asyncio wrapper cannot enforce): a call past it is killed and
  counted as official=0, and the report says which;
- sqlwright's verdict: ``run_eval`` with the dataset's ``spider`` rule on the same predictions;

and prints the agreement (%), the number of questions and every disagreement (id, db, gold, pred, both
verdicts). Predictions without SQL (abstentions, model errors) are not compared: both evaluators
count them wrong without running anything. The official function runs on copies of the database
files, made read-only (it opens them read-write).

    .venv/bin/python bench/spider_official_agreement.py --official /tmp/official/test-suite-sql-eval \\
        --predictions runs/spider-s300-1.5b-greedy.sqlite runs/spider-s300-1.5b-full.sqlite [--candidates]

`--predictions`: Spider predictions files (one SQL per line), JSONL of {id, sql}, anything
``read_predictions`` accepts, or sqlwright run files (.sqlite: their stored predictions, read without
writing to them); several are pooled, each distinct (question, SQL) pair judged once. `--candidates`
adds every distinct candidate SQL the pipeline tried (kept in a run file's traces). Default: the gold
SQL itself. Output: bench/results/spider_official_agreement-<names>.json (or ``--out``).
The official script needs ``sqlparse`` and ``tqdm`` (bench-only: ``.venv/bin/pip install sqlparse tqdm``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import multiprocessing.connection as mpc
import os
import shutil
import sqlite3
import stat
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from sqlwright.eval.datasets import load_dataset, read_predictions
from sqlwright.eval.runner import run_eval
from sqlwright.eval.types import Example, Prediction

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def data_dir() -> Path:
    return Path(os.environ.get("SQLWRIGHT_DATA") or ROOT.parent / "shared" / "data") / "spider"


# --- predictions -----------------------------------------------------------------------------------
def load_predictions(path: Path | None, examples: list[Example]) -> dict[str, Prediction]:
    """Predictions keyed by example id: gold itself, a run file's stored predictions, or a file."""
    if path is None:
        return {e.id: Prediction(e.id, e.gold) for e in examples}
    if path.suffix in (".sqlite", ".db"):
        return run_file_predictions(path, {e.id for e in examples})
    return read_predictions(path, examples)


def _read_run_file(path: Path) -> list[tuple]:
    """(id, sql, seconds, prompt_tokens, completion_tokens, error, trace JSON or None) of every stored
    prediction, read on a read-only connection: the run may be going on in another process, and opening
    it as a RunFile could change its tables under it."""
    if not path.is_file():
        raise SystemExit(f"no run file at {path}")
    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    try:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(predictions)")}
        trace = "trace" if "trace" in columns else "NULL"
        return conn.execute(
            f"SELECT id, sql, seconds, prompt_tokens, completion_tokens, error, {trace} FROM predictions"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise SystemExit(f"{path} is not a sqlwright run file: {exc}") from exc
    finally:
        conn.close()


def run_file_predictions(path: Path, known: set[str]) -> dict[str, Prediction]:
    """The predictions stored in a sqlwright run file (see :func:`_read_run_file`)."""
    return {r[0]: Prediction(*r[:6]) for r in _read_run_file(path) if r[0] in known}


def run_file_candidates(path: Path, known: set[str]) -> dict[str, list[str]]:
    """Per question, the distinct SQL of every candidate the pipeline tried (greedy, samples, repairs),
    from the traces a run file keeps: more of the same model's predictions, failing ones included."""
    out: dict[str, list[str]] = {}
    for r in _read_run_file(path):
        if r[0] not in known or not r[6]:
            continue
        sqls = [c.get("sql") for c in json.loads(r[6]).get("candidates") or []]
        out[r[0]] = list(dict.fromkeys(q.strip() for q in sqls if q and q.strip()))
    return out


# --- the official verdicts, each in a worker process with a time limit -----------------------------
def _official_worker(official: str, conn) -> None:
    sys.path.insert(0, official)
    import exec_eval  # the official module (and its parse.py), from --official

    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        db, pred, gold = job
        try:
            score = exec_eval.eval_exec_match(
                db=db, p_str=pred, g_str=gold, plug_value=False, keep_distinct=False,
                progress_bar_for_each_datapoint=False,
            )
            conn.send(("ok", int(score)))
        except AssertionError as exc:  # the official asserts that the gold query runs
            conn.send(("gold_error", str(exc)))
        except Exception as exc:  # noqa: BLE001 - anything the official code raises is reported as such
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx, official: Path) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_official_worker, args=(str(official), child), daemon=True)
        self.proc.start()
        child.close()
        self.job: tuple[str, float] | None = None  # (example id, deadline)
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            raise RuntimeError(f"the official exec_eval did not load from {official}")

    def stop(self, *, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.proc.join(5)
        self.conn.close()


def official_verdicts(
    official: Path, jobs: list[tuple[str, str, str, str]], *, workers: int, timeout: float, timed: bool = False
):
    """`jobs`: (id, db path, pred, gold). Returns id -> ("ok", 0|1) | ("timeout", 0) | (error kind, message);
    with `timed`, also the seconds from the first job sent (the workers already loaded) to the last verdict."""
    ctx = multiprocessing.get_context("fork")  # this process holds no model
    pool = [_Worker(ctx, official) for _ in range(max(1, workers))]
    todo = list(reversed(jobs))
    start = time.perf_counter()
    out: dict[str, tuple[str, int | str]] = {}
    try:
        while todo or any(w.job for w in pool):
            for w in pool:
                if w.job is None and todo:
                    ex_id, db, pred, gold = todo.pop()
                    w.conn.send((db, pred, gold))
                    w.job = (ex_id, time.monotonic() + timeout)
            busy = [w for w in pool if w.job]
            wait = max(0.0, min(w.job[1] for w in busy) - time.monotonic())
            ready = mpc.wait([w.conn for w in busy], timeout=wait)
            for i, w in enumerate(pool):
                if w.job is None:
                    continue
                if w.conn in ready:
                    try:
                        out[w.job[0]] = w.conn.recv()
                    except EOFError:  # the worker died (e.g. the official code crashed the process)
                        out[w.job[0]] = ("error", "official worker died")
                        w.stop(kill=True)
                        pool[i] = _Worker(ctx, official)
                        continue
                    w.job = None
                elif time.monotonic() > w.job[1]:
                    out[w.job[0]] = ("timeout", 0)
                    w.stop(kill=True)
                    pool[i] = _Worker(ctx, official)
        seconds = time.perf_counter() - start
    finally:
        for w in pool:
            w.stop(kill=w.job is not None)
    return (out, seconds) if timed else out


def readonly_copy(database_dir: Path, db_ids: set[str], into: Path) -> Path:
    """Copy each database folder's ``*.sqlite*`` files (what the official globs) and make them read-only."""
    for db_id in sorted(db_ids):
        src, dst = database_dir / db_id, into / db_id
        dst.mkdir(parents=True)
        for f in src.iterdir():
            if ".sqlite" in f.name:
                shutil.copyfile(f, dst / f.name)
                (dst / f.name).chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        dst.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return into


def collect(paths: list[Path] | None, examples: list[Example], *, candidates: bool):
    """The (question, SQL) pairs to judge, as examples with ids of their own and their predictions:
    each distinct SQL of a question once, whichever file (or candidate list) it came from."""
    sources = [load_predictions(p, examples) for p in paths] if paths else [load_predictions(None, examples)]
    extra = [run_file_candidates(p, {e.id for e in examples}) for p in paths or [] if candidates
             and p.suffix in (".sqlite", ".db")]
    by_id = {e.id: e for e in examples}
    pairs: dict[tuple[str, str], Prediction] = {}
    no_sql = 0
    for preds in sources:
        for ex_id, p in preds.items():
            if p.sql is None:
                no_sql += 1
            else:
                pairs.setdefault((ex_id, p.sql.strip()), p)
    for cands in extra:
        for ex_id, sqls in cands.items():
            for sql in sqls:
                pairs.setdefault((ex_id, sql), Prediction(ex_id, sql))
    out_examples, out_predictions = [], {}
    order = {e.id: i for i, e in enumerate(examples)}
    one_each = len(pairs) == len({k[0] for k in pairs})  # then the pairs keep their questions' ids
    for n, ((ex_id, _), p) in enumerate(sorted(pairs.items(), key=lambda kv: order[kv[0][0]])):
        e = by_id[ex_id]
        pair_id = ex_id if one_each else f"{ex_id}#{n}"
        out_examples.append(dataclasses.replace(e, id=pair_id, extra={**e.extra, "question_id": ex_id}))
        out_predictions[pair_id] = dataclasses.replace(p, id=pair_id)
    return out_examples, out_predictions, no_sql


# --- main -----------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of test-suite-sql-eval")
    parser.add_argument("--predictions", type=Path, nargs="+", help="Spider lines, JSONL, or sqlwright run "
                        "files (.sqlite); several are pooled; default: the gold SQL itself")
    parser.add_argument("--candidates", action="store_true", help="also every distinct candidate SQL kept in "
                        "the run files' traces (greedy, samples, repairs), besides the final predictions")
    parser.add_argument("--data", type=Path, default=data_dir(), help="the Spider folder (dev.json, database/)")
    parser.add_argument("--out", type=Path, help="JSON summary (default: bench/results/"
                        "spider_official_agreement-<predictions>.json)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per official call")
    parser.add_argument("--workers", type=int, default=2, help="processes for each evaluator")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    if not (args.official / "exec_eval.py").is_file():
        print(f"no exec_eval.py in {args.official}", file=sys.stderr)
        return 2
    if not (args.data / "dev.json").is_file():
        print(f"no Spider data at {args.data}; use --data or SQLWRIGHT_DATA", file=sys.stderr)
        return 2

    with load_dataset("spider", args.data) as dataset:
        base = dataset.examples[: args.limit] if args.limit else list(dataset.examples)
        examples, predictions, no_sql = collect(args.predictions, base, candidates=args.candidates)
        print(f"{len(examples)} (question, predicted SQL) pairs over {len({x.extra['question_id'] for x in examples})}"
              f" questions ({no_sql} predictions without SQL not compared)")

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_eval(dataset, predictions, run_file=Path(tmp) / "run.sqlite", examples=examples,
                               workers=args.workers, progress=False)
        ours = {v.id: v for v in summary.verdicts}
        ours_seconds = time.perf_counter() - start

        with tempfile.TemporaryDirectory() as tmp:
            copies = readonly_copy(dataset.database_dir, {e.db for e in examples}, Path(tmp) / "database")
            jobs = [(e.id, str(copies / e.db / f"{e.db}.sqlite"), predictions[e.id].sql, e.gold)
                    for e in examples]
            start = time.perf_counter()
            official = official_verdicts(args.official, jobs, workers=args.workers, timeout=args.timeout)
            official_seconds = time.perf_counter() - start
            for db_id in {e.db for e in examples}:  # let the TemporaryDirectory remove the copies
                (copies / db_id).chmod(stat.S_IRWXU)

    rows, disagreements = [], []
    for e in examples:
        kind, value = official[e.id]
        off = value if kind == "ok" else 0
        v = ours[e.id]
        row = {"id": e.id, "question_id": e.extra["question_id"], "db": e.db, "gold": e.gold,
               "pred": predictions[e.id].sql,
               "official": off, "official_status": kind, "sqlwright": int(v.correct),
               "sqlwright_error": v.error or v.gold_error}
        if kind != "ok":
            row["official_error"] = value if kind != "timeout" else f"no verdict within {args.timeout:g} s"
        rows.append(row)
        if off != int(v.correct):
            disagreements.append(row)
    unsure = [r for r in rows if r["official_status"] != "ok"]
    agree = sum(r["official"] == r["sqlwright"] for r in rows)
    n = len(rows)
    pct = 100.0 * agree / n if n else 0.0
    print(f"pairs: {n}   agreement: {agree}/{n} = {pct:.2f} %")
    print(f"EX official {sum(r['official'] for r in rows) / max(n, 1):.4f}   "
          f"EX sqlwright {sum(r['sqlwright'] for r in rows) / max(n, 1):.4f}")
    errors = [r["sqlwright_error"] for r in rows if r["sqlwright_error"]]
    print(f"predictions that failed to run in sqlwright: {len(errors)} "
          f"({sum(e.startswith('Refused') for e in errors)} refused by the guard)")
    print(f"seconds: sqlwright {ours_seconds:.1f}, official {official_seconds:.1f} ({args.workers} processes each)")
    for r in unsure:
        print(f"official {r['official_status']} on #{r['id']} ({r['db']}), counted as 0: {r['official_error']}")
    for r in disagreements:
        note = f"  [official {r['official_status']}: {r.get('official_error')}]" if r["official_status"] != "ok" else ""
        print(f"\n#{r['id']} ({r['db']}): official {r['official']}, sqlwright {r['sqlwright']}"
              f"{' (' + r['sqlwright_error'] + ')' if r['sqlwright_error'] else ''}{note}")
        print(f"  gold: {r['gold']}\n  pred: {r['pred']}")

    stem = "+".join(p.stem for p in args.predictions) if args.predictions else "gold"
    stem += "-candidates" if args.candidates else ""
    out = args.out or RESULTS / f"spider_official_agreement-{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "predictions": [str(p) for p in args.predictions] if args.predictions else "gold",
        "candidates": args.candidates,
        "pairs": n,
        "questions": len({r["question_id"] for r in rows}),
        "without_sql": no_sql,
        "agree": agree,
        "agreement_pct": round(pct, 2),
        "official_ex": round(sum(r["official"] for r in rows) / max(n, 1), 4),
        "sqlwright_ex": round(sum(r["sqlwright"] for r in rows) / max(n, 1), 4),
        "sqlwright_errors": sum(bool(r["sqlwright_error"]) for r in rows),
        "sqlwright_refused": sum((r["sqlwright_error"] or "").startswith("Refused") for r in rows),
        "official_timeouts": sum(r["official_status"] == "timeout" for r in rows),
        "official_errors": sum(r["official_status"] not in ("ok", "timeout") for r in rows),
        "timeout": args.timeout,
        "disagreements": disagreements,
    }, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
