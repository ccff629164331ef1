"""Evaluator fidelity: do sqlwright's SQL-Eval verdicts agree with Defog's own code?

For SQL-Eval's 210 PostgreSQL questions this judges (question, predicted SQL) pairs twice:

- Defog's verdict: ``compare_query_results`` from eval/eval.py of defog-ai/sql-eval (``--defog DIR``: a
  checkout, or a git directory whose HEAD is extracted to a temporary folder with ``git archive``; the
  project does not ship Defog's code), on the PostgreSQL databases sqlwright materialises (the server
  and database names of ``dataset.database_url``). Defog's function runs the queries itself, through
  its own ``query_postgres_db``; each worker is a separate interpreter (``--defog-python``, default
  this one) whose sessions are read-only (``PGOPTIONS``: Defog's code opens read-write connections)
  with a statement timeout. Its right/wrong is what Defog's runners record: ``correct`` (exact or
  subset match); an exception (an error in the prediction, or in Defog's code) counts wrong.
- sqlwright's verdict: ``run_eval`` with the dataset's ``sqleval`` rule (and, for comparison, the
  ``sqleval-strict`` rule of ``--sqleval-strict``), with the note each verdict carries.

Pairs come from two sources:

- ``--crafted``: predictions built from each question's first gold query (the first alternative,
  first column subset), one per kind in :data:`KINDS` where the kind applies (columns reordered,
  renamed, added, duplicated, dropped; DISTINCT toggled; ORDER BY reversed or dropped; LIMIT changed;
  values scaled; filter emptied; an error; ties reordered). Agreement is reported per kind.
- ``--other-dialects``: other people's SQL for the same questions: the gold queries SQL-Eval wrote for
  MySQL, SQLite, BigQuery and T-SQL (each alternative, all its columns), run on PostgreSQL as they are
  (many fail there; the rest are realistic rewrites). Agreement is reported per dialect.
- ``--predictions``: sqlwright run files (.sqlite, read read-only: the run may still be going) or any
  file ``read_predictions`` accepts; ``--candidates`` adds every distinct candidate SQL the pipeline
  tried, from the run files' traces. Each distinct (question, SQL) pair is judged once.

It prints the agreement (%), the counts, the notes and every disagreement, and writes
bench/results/sqleval_defog_agreement-<name>.json (``--out`` to choose). Example::

    .venv/bin/python bench/sqleval_defog_agreement.py --defog /work/.mirror/defog-ai+sql-eval/repo \\
        --defog-python /tmp/defog-env/bin/python --crafted --other-dialects \\
        --predictions runs/sqleval-postgres-0.5b-c4.sqlite --candidates

Defog's code needs, in the interpreter that runs it, pandas, numpy, sqlalchemy, psycopg2 and
func_timeout — bench-only packages, not sqlwright dependencies. Its verdicts depend on the pandas
version: sqlwright reproduces pandas 2.2–2.3 (integers compared exactly since 2.2; pandas 3 makes
text columns a string dtype, where NULL is NaN and no longer equals NULL), so give an environment with
pandas 2.3, e.g.::

    python3 -m venv /tmp/defog-env
    /tmp/defog-env/bin/pip install 'pandas==2.3.3' sqlalchemy psycopg2-binary func_timeout

(or ``.venv/bin/pip install sqlalchemy psycopg2-binary func_timeout`` and run it in .venv, with .venv's
pandas, whose version the output records and warns about when it is not 2.x).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import select
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote, urlsplit

import sqlglot
from sqlglot import exp

from spider_official_agreement import load_predictions, run_file_candidates
from sqlwright.db import open_database
from sqlwright.eval.compare import expand_sqleval_gold, normalize_result
from sqlwright.eval.datasets import load_dataset
from sqlwright.eval.runner import run_eval
from sqlwright.eval.types import Example, Prediction

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCALE = "1.0000001"  # values-scaled: 5 becomes 5.0000005, within pandas' float tolerance of 5


def data_dir() -> Path:
    return Path(os.environ.get("SQLWRIGHT_DATA") or ROOT.parent / "shared" / "data") / "sqleval"


# --- Defog's code, in worker interpreters ----------------------------------------------------------
def extract_defog(source: Path, into: Path) -> tuple[Path, str]:
    """A folder holding Defog's eval/ and utils/ (the checkout itself, or its git HEAD extracted into
    `into`), and the commit it is (or "" when unknown)."""
    def commit(git_dir: Path) -> str:
        out = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip()

    if (source / "eval" / "eval.py").is_file():
        git_dir = source / ".git"
        return source, commit(git_dir) if git_dir.exists() else ""
    archive = subprocess.run(["git", f"--git-dir={source}", "archive", "--format=tar", "HEAD", "eval", "utils"],
                             capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--defog {source}: neither a checkout (eval/eval.py) nor a git directory: "
                         f"{archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into, commit(source)


# The worker: reads one JSON job per line, answers one JSON line. Defog's code may print: its output
# goes to stderr, the answers to the original stdout.
WORKER = r"""
import json, os, sys, warnings
warnings.simplefilter("ignore")
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr
sys.path.insert(0, sys.argv[1])
import pandas
from eval.eval import compare_query_results
creds = json.loads(sys.argv[2])
answers.write(json.dumps({"ready": True, "pandas": pandas.__version__}) + "\n")
answers.flush()
for line in sys.stdin:
    job = json.loads(line)
    try:
        exact, correct = compare_query_results(
            query_gold=job["gold"], query_gen=job["pred"], db_name=job["db"], db_type="postgres",
            db_creds=creds, question=job["question"], query_category=job["category"], timeout=job["timeout"])
        out = {"status": "ok", "correct": int(bool(correct)), "exact": int(bool(exact))}
    except BaseException as exc:  # Defog's runners count any exception wrong; func_timeout's is a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        out = {"status": "error", "correct": 0, "error": (type(exc).__name__ + ": " + " ".join(str(exc).split()))[:400]}
    answers.write(json.dumps(out) + "\n")
    answers.flush()
"""


class DefogWorker:
    """One interpreter running Defog's ``compare_query_results`` on the jobs it is sent."""

    def __init__(self, python: str, defog_dir: Path, creds: dict, timeout: float) -> None:
        env = dict(os.environ)
        # Defog's sessions are read-write; these make them read-only, with a server-side time limit.
        env["PGOPTIONS"] = (f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)}")
        self.proc = subprocess.Popen([python, "-c", WORKER, str(defog_dir), json.dumps(creds)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env)
        self.job: tuple[str, float] | None = None  # (pair id, deadline)
        ready = self.read(60)
        if not ready or not ready.get("ready"):
            self.stop()
            raise SystemExit(f"Defog's eval.py did not load in {python} (needs pandas, sqlalchemy, psycopg2, "
                             "func_timeout)")
        self.pandas = ready["pandas"]

    def read(self, timeout: float) -> dict | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def send(self, pair_id: str, job: dict, deadline: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        self.job = (pair_id, deadline)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def defog_verdicts(python: str, defog_dir: Path, creds: dict, jobs: list[tuple[str, dict]], *, workers: int,
                   timeout: float) -> tuple[dict[str, dict], str]:
    """`jobs`: (pair id, job). Returns pair id -> answer ({"status": "ok"|"error"|"timeout", "correct": 0|1,
    …}) and the pandas version the workers use. A job past its time (the statement timeout for every
    query it runs, plus a grace) has its worker killed and counts as a timeout (wrong)."""
    pool = [DefogWorker(python, defog_dir, creds, timeout) for _ in range(max(1, workers))]
    pandas_version = pool[0].pandas
    todo = list(reversed(jobs))
    out: dict[str, dict] = {}
    try:
        while todo or any(w.job for w in pool):
            for w in pool:
                if w.job is None and todo:
                    pair_id, job = todo.pop()
                    budget = timeout * (len(expand_sqleval_gold(job["gold"])) + 1) + 30
                    w.send(pair_id, job, time.monotonic() + budget)
            busy = [w for w in pool if w.job]
            wait = max(0.0, min(w.job[1] for w in busy) - time.monotonic())
            ready, _, _ = select.select([w.proc.stdout for w in busy], [], [], wait)
            for i, w in enumerate(pool):
                if w.job is None:
                    continue
                if w.proc.stdout in ready:
                    answer = w.read(0)
                    if answer is None:  # the interpreter died
                        out[w.job[0]] = {"status": "error", "correct": 0, "error": "Defog worker died"}
                        w.stop()
                        pool[i] = DefogWorker(python, defog_dir, creds, timeout)
                        continue
                    out[w.job[0]] = answer
                    w.job = None
                elif time.monotonic() > w.job[1]:
                    out[w.job[0]] = {"status": "timeout", "correct": 0}
                    w.stop()
                    pool[i] = DefogWorker(python, defog_dir, creds, timeout)
    finally:
        for w in pool:
            w.stop()
    return out, pandas_version


def postgres_target(url: str) -> tuple[str, dict]:
    """The database name and Defog-style connection creds of a sqlwright PostgreSQL URL."""
    parts = urlsplit(url)
    creds = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
             "user": unquote(parts.username or "postgres"), "password": unquote(parts.password or "")}
    return parts.path.lstrip("/"), creds


# --- crafted predictions ---------------------------------------------------------------------------
def _projections(tree: exp.Expression) -> list[exp.Expression] | None:
    """The select list of a plain SELECT (None for set operations and SELECT *)."""
    if not isinstance(tree, exp.Select) or any(isinstance(p, exp.Star) or p.is_star for p in tree.expressions):
        return None
    return tree.expressions


def _with_projections(tree: exp.Select, projections: list[exp.Expression]) -> str:
    out = tree.copy()
    out.set("expressions", [p.copy() for p in projections])
    return out.sql(dialect="postgres")


def _output_name(p: exp.Expression, i: int) -> str:
    return p.alias_or_name or f"col{i}"


def _renamed(tree: exp.Select, projections: list[exp.Expression]) -> str:
    new = {p.alias_or_name.lower(): f"{_output_name(p, i)}_renamed" for i, p in enumerate(projections)}
    out = tree.copy()
    out.set("expressions", [exp.alias_(p.unalias().copy(), f"{_output_name(p, i)}_renamed", quoted=False)
                            for i, p in enumerate(projections)])
    order = out.args.get("order")
    if order is not None:  # an ORDER BY naming an output alias follows the new name
        for key in order.find_all(exp.Column):
            if not key.table and key.name.lower() in new:
                key.replace(exp.column(new[key.name.lower()]))
    return out.sql(dialect="postgres")


def _order_flipped(tree: exp.Expression) -> str | None:
    order = tree.args.get("order")
    if order is None:
        return None
    out = tree.copy()
    for ordered in out.args["order"].expressions:
        ordered.set("desc", not ordered.args.get("desc"))  # DESC becomes the implicit default: ascending
        ordered.set("nulls_first", None)
    return out.sql(dialect="postgres")


def _without_order(tree: exp.Expression) -> str | None:
    if tree.args.get("order") is None:
        return None
    out = tree.copy()
    out.set("order", None)
    return out.sql(dialect="postgres")


def _limit_changed(tree: exp.Expression) -> str | None:
    limit = tree.args.get("limit")
    if limit is None or not isinstance(limit.expression, exp.Literal) or not limit.expression.is_int:
        return None
    out = tree.copy()
    out.args["limit"].set("expression", exp.Literal.number(int(limit.expression.this) + 1))
    return out.sql(dialect="postgres")


def _ties_reordered(tree: exp.Expression, width: int) -> str | None:
    """The gold's ORDER BY followed by every output column descending: rows tied on the gold's keys
    come in another order (when the gold's came otherwise)."""
    order = tree.args.get("order")
    if order is None:
        return None
    out = tree.copy()
    keys = out.args["order"].expressions + [exp.Ordered(this=exp.Literal.number(i + 1), desc=True)
                                           for i in range(width)]
    out.args["order"].set("expressions", keys)
    return out.sql(dialect="postgres")


def _filter_emptied(tree: exp.Expression) -> str | None:
    if not isinstance(tree, exp.Select):
        return None
    out = tree.copy()
    where = out.args.get("where")
    condition = exp.false() if where is None else exp.and_(exp.paren(where.this.copy()), exp.false())
    out.set("where", exp.Where(this=condition))
    return out.sql(dialect="postgres")


def _values_scaled(tree: exp.Select, projections: list[exp.Expression], numeric: list[bool]) -> str | None:
    if not any(numeric):
        return None
    scaled = [exp.alias_(exp.Mul(this=exp.paren(p.unalias().copy()), expression=exp.Literal.number(SCALE)),
                         _output_name(p, i), quoted=True) if is_number else p
              for i, (p, is_number) in enumerate(zip(projections, numeric, strict=True))]
    return _with_projections(tree, scaled)


KINDS: dict[str, str] = {
    "same": "the gold query itself",
    "columns-reordered": "the select list reversed",
    "columns-renamed": "every output column given another name",
    "column-added": "a copy of the first column added, under another name",
    "column-duplicated": "the first column repeated, under the same name",
    "column-dropped": "the last column left out",
    "distinct-toggled": "SELECT DISTINCT made SELECT, or SELECT made SELECT DISTINCT",
    "order-reversed": "every ORDER BY key's direction flipped (DESC becomes the implicit ascending)",
    "order-dropped": "the ORDER BY left out",
    "limit-changed": "LIMIT n made LIMIT n+1",
    "values-scaled": f"numeric output columns multiplied by {SCALE}",
    "filter-emptied": "AND FALSE added to the WHERE clause",
    "error": "a column that does not exist selected",
    "ties-reordered": "every output column appended to the ORDER BY, descending",
}


def craft(gold: str, columns: tuple[str, ...], numeric: list[bool]) -> dict[str, str]:
    """The crafted predictions of one gold query, by kind (kinds that do not apply are left out)."""
    out = {"same": gold, "error": f"SELECT no_such_column FROM ({gold}) AS crafted"}
    try:
        tree = sqlglot.parse_one(gold, read="postgres")
    except sqlglot.errors.SqlglotError:
        return out
    makers: dict[str, Callable[[], str | None]] = {
        "order-reversed": lambda: _order_flipped(tree),
        "order-dropped": lambda: _without_order(tree),
        "limit-changed": lambda: _limit_changed(tree),
        "filter-emptied": lambda: _filter_emptied(tree),
        "ties-reordered": lambda: _ties_reordered(tree, len(columns)),
    }
    projections = _projections(tree)
    if projections is not None and isinstance(tree, exp.Select) and len(projections) == len(columns):
        first = projections[0]
        makers.update({
            "columns-reordered": lambda: (_with_projections(tree, projections[::-1])
                                          if len(projections) > 1 else None),
            "columns-renamed": lambda: _renamed(tree, projections),
            "column-added": lambda: _with_projections(
                tree, [*projections, exp.alias_(first.unalias().copy(), "added_column")]),
            "column-duplicated": lambda: _with_projections(
                tree, [*projections, exp.alias_(first.unalias().copy(), _output_name(first, 0), quoted=True)]),
            "column-dropped": lambda: (_with_projections(tree, projections[:-1]) if len(projections) > 1 else None),
            "distinct-toggled": lambda: _distinct_toggled(tree),
            "values-scaled": lambda: _values_scaled(tree, projections, numeric),
        })
    for kind, make in makers.items():
        try:
            sql = make()
        except (sqlglot.errors.SqlglotError, ValueError, TypeError):
            sql = None
        if sql:
            out[kind] = sql
    return {kind: out[kind] for kind in KINDS if kind in out}


def _distinct_toggled(tree: exp.Select) -> str:
    out = tree.copy()
    out.set("distinct", None if tree.args.get("distinct") else exp.Distinct())
    return out.sql(dialect="postgres")


def crafted_pairs(examples: list[Example], urls: dict[str, str]) -> list[tuple[Example, str, str]]:
    """(example, kind, SQL) for every crafted prediction of every question. Each gold query runs once
    here, through sqlwright, to know its columns and which of them hold numbers."""
    out = []
    databases = {}
    try:
        for e in examples:
            gold = expand_sqleval_gold(e.gold)[0]
            db = databases.get(e.db) or databases.setdefault(e.db, open_database(urls[e.db]))
            result = normalize_result(db.execute(gold, timeout=60, guard=False))
            numeric = [bool(result.rows) and all(isinstance(row[i], int | float) and not isinstance(row[i], bool)
                                                 for row in result.rows if row[i] is not None)
                       and any(row[i] is not None for row in result.rows)
                       for i in range(len(result.columns))]
            for kind, sql in craft(gold, result.columns, numeric).items():
                out.append((e, kind, sql))
    finally:
        for db in databases.values():
            db.close()
    return out


# --- pairs -----------------------------------------------------------------------------------------
OTHER_DIALECTS = ("mysql", "sqlite", "bigquery", "tsql")


def other_dialect_pairs(data: Path, examples: list[Example]) -> list[tuple[Example, str, str]]:
    """(example, "dialect-<name>", SQL) for each alternative of the gold SQL-Eval wrote for the same
    question in another dialect (its widest column set), where that file has the question on the
    same row."""
    out = []
    by_row = {e.extra["row"]: e for e in examples}
    for dialect in OTHER_DIALECTS:
        path = data / "questions" / f"questions_gen_{dialect}.csv"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            for row, record in enumerate(csv.DictReader(handle)):
                e = by_row.get(row)
                if e is None or record.get("question", "").strip() != e.question:
                    continue
                for alternative in (a.strip() for a in record["query"].split(";") if a.strip()):
                    out.append((e, f"dialect-{dialect}", expand_sqleval_gold(alternative)[-1]))
    return out


def collect(paths: list[Path], examples: list[Example], *, candidates: bool, made: list[tuple[Example, str, str]]):
    """The pairs to judge as examples with ids of their own ("<question id>#<n>"), their predictions,
    and per pair its source ("model", a crafted kind or "dialect-<name>"); plus the number of
    predictions without SQL. `made`: (example, source, SQL) built by this script."""
    by_id = {e.id: e for e in examples}
    pairs: dict[tuple[str, str, str], Prediction] = {}
    no_sql = 0
    for e, source, sql in made:
        pairs.setdefault((source, e.id, sql.strip()), Prediction(e.id, sql.strip()))
    for path in paths:
        for ex_id, p in load_predictions(path, examples).items():
            if p.sql is None or not p.sql.strip():
                no_sql += 1
            else:
                pairs.setdefault(("model", ex_id, p.sql.strip()), p)
        if candidates and path.suffix in (".sqlite", ".db"):
            for ex_id, sqls in run_file_candidates(path, set(by_id)).items():
                for sql in sqls:
                    pairs.setdefault(("model", ex_id, sql), Prediction(ex_id, sql))
    out_examples, out_predictions = [], {}
    for n, ((source, ex_id, _), p) in enumerate(pairs.items()):
        e = by_id[ex_id]
        pair_id = f"{ex_id}#{n}"
        out_examples.append(dataclasses.replace(e, id=pair_id, extra={**e.extra, "question_id": ex_id,
                                                                       "source": source}))
        out_predictions[pair_id] = dataclasses.replace(p, id=pair_id)
    return out_examples, out_predictions, no_sql


def _agreement(rows: list[dict]) -> dict:
    n = len(rows)
    agree = sum(r["defog"] == r["sqlwright"] for r in rows)
    return {
        "pairs": n,
        "agree": agree,
        "agreement_pct": round(100.0 * agree / n, 2) if n else None,
        "defog_right": sum(r["defog"] for r in rows),
        "sqlwright_right": sum(r["sqlwright"] for r in rows),
        "strict_right": sum(r["strict"] for r in rows),
        "strict_differs_from_defog": sum(r["strict"] != r["defog"] for r in rows),
        "sqlwright_refused": sum((r["sqlwright_error"] or "").startswith("Refused") for r in rows),
        "defog_errors": sum(r["defog_status"] != "ok" for r in rows),
        "notes": dict(sorted(Counter(note for r in rows for note in filter(None, (r["note"] or "").split("; ")))
                             .items())),
    }


# --- main -----------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defog", type=Path, required=True,
                        help="defog-ai/sql-eval: a checkout, or a git directory (its HEAD is extracted)")
    parser.add_argument("--defog-python", default=sys.executable,
                        help="the interpreter that runs Defog's code (with pandas, sqlalchemy, psycopg2, "
                             "func_timeout); default: this one")
    parser.add_argument("--crafted", action="store_true", help="judge predictions crafted from the golds")
    parser.add_argument("--other-dialects", action="store_true", help="judge SQL-Eval's golds for other "
                        "dialects (MySQL, SQLite, BigQuery, T-SQL) as predictions")
    parser.add_argument("--predictions", type=Path, nargs="+", default=[],
                        help="sqlwright run files (.sqlite) or predictions files; several are pooled")
    parser.add_argument("--candidates", action="store_true", help="also every distinct candidate SQL kept in "
                        "the run files' traces (greedy, samples, repairs), besides the final predictions")
    parser.add_argument("--data", type=Path, default=data_dir(), help="the SQL-Eval folder (questions/, databases/)")
    parser.add_argument("--out", type=Path, help="JSON summary (default: bench/results/"
                        "sqleval_defog_agreement-<name>.json)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per statement, for both evaluators")
    parser.add_argument("--workers", type=int, default=2, help="processes for each evaluator")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    args = parser.parse_args()
    if not (args.crafted or args.other_dialects or args.predictions):
        parser.error("give --crafted, --other-dialects and/or --predictions")
    if not (args.data / "questions" / "questions_gen_postgres.csv").is_file():
        print(f"no SQL-Eval data at {args.data}; use --data or SQLWRIGHT_DATA", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp, load_dataset("sqleval", args.data, dialect="postgres") as dataset:
        defog_dir, defog_commit = extract_defog(args.defog, Path(tmp) / "defog")
        base = dataset.examples[: args.limit] if args.limit else list(dataset.examples)
        urls = {db: dataset.database_url(db) for db in dict.fromkeys(e.db for e in base)}
        made = crafted_pairs(base, urls) if args.crafted else []
        made += other_dialect_pairs(args.data, base) if args.other_dialects else []
        examples, predictions, no_sql = collect(args.predictions, base, candidates=args.candidates, made=made)
        print(f"{len(examples)} (question, predicted SQL) pairs over {len({e.extra['question_id'] for e in examples})}"
              f" questions ({no_sql} predictions without SQL not compared)")

        verdicts = {}
        for rule, strict in (("sqleval", False), ("sqleval-strict", True)):
            start = time.perf_counter()
            with load_dataset("sqleval", args.data, dialect="postgres", strict=strict) as judged:
                summary = run_eval(judged, predictions, run_file=Path(tmp) / f"{rule}.sqlite", examples=examples,
                                   workers=args.workers, timeout=args.timeout, progress=False)
            verdicts[rule] = {v.id: v for v in summary.verdicts}
            print(f"sqlwright {rule}: {time.perf_counter() - start:.1f} s")

        creds = postgres_target(next(iter(urls.values())))[1]
        jobs = [(e.id, {"gold": e.gold, "pred": predictions[e.id].sql, "db": postgres_target(urls[e.db])[0],
                        "question": e.question, "category": e.category or "", "timeout": args.timeout})
                for e in examples]
        start = time.perf_counter()
        defog, pandas_version = defog_verdicts(args.defog_python, defog_dir, creds, jobs, workers=args.workers,
                                               timeout=args.timeout)
        defog_seconds = time.perf_counter() - start
    print(f"Defog: {defog_seconds:.1f} s, pandas {pandas_version}")
    if not pandas_version.startswith(("2.2", "2.3")):
        print(f"warning: Defog's code ran with pandas {pandas_version}; sqlwright reproduces it with pandas "
              "2.2-2.3 (see --defog-python)", file=sys.stderr)

    rows = []
    for e in examples:
        answer, v, s = defog[e.id], verdicts["sqleval"][e.id], verdicts["sqleval-strict"][e.id]
        rows.append({"id": e.id, "question_id": e.extra["question_id"], "source": e.extra["source"], "db": e.db,
                     "category": e.category, "question": e.question, "gold": e.gold, "pred": predictions[e.id].sql,
                     "defog": answer["correct"], "defog_status": answer["status"],
                     "defog_error": answer.get("error"), "sqlwright": int(v.correct), "note": v.note,
                     "sqlwright_error": v.error or v.gold_error, "strict": int(s.correct)})
    model_rows = [r for r in rows if r["source"] == "model"]
    kinds = {kind: [r for r in rows if r["source"] == kind] for kind in KINDS}
    dialects = {d: [r for r in rows if r["source"] == f"dialect-{d}"] for d in OTHER_DIALECTS}
    report = {"model": _agreement(model_rows) if model_rows else None,
              "crafted": {kind: _agreement(rs) for kind, rs in kinds.items() if rs} or None,
              "other_dialects": {d: _agreement(rs) for d, rs in dialects.items() if rs} or None}
    crafted_rows = [r for r in rows if r["source"] in KINDS]
    if crafted_rows:
        report["crafted_all"] = _agreement(crafted_rows)
    dialect_rows = [r for r in rows if r["source"].startswith("dialect-")]
    if dialect_rows:
        report["other_dialects_all"] = _agreement(dialect_rows)
    disagreements = [r for r in rows if r["defog"] != r["sqlwright"]]

    if report["model"]:
        m = report["model"]
        print(f"model predictions: {m['agree']}/{m['pairs']} = {m['agreement_pct']:.2f} % agreement "
              f"(Defog right {m['defog_right']}, sqlwright {m['sqlwright_right']}, strict {m['strict_right']}; "
              f"refused by sqlwright's guard {m['sqlwright_refused']}, errors in Defog {m['defog_errors']})")
    if report["crafted"]:
        print(f"{'crafted kind':<20} {'pairs':>6} {'agree':>7} {'Defog right':>12} {'sqlwright':>10} {'strict':>7}")
        for kind, a in report["crafted"].items():
            print(f"{kind:<20} {a['pairs']:>6} {a['agreement_pct']:>6.2f}% {a['defog_right']:>12} "
                  f"{a['sqlwright_right']:>10} {a['strict_right']:>7}")
        a = report["crafted_all"]
        print(f"{'all crafted':<20} {a['pairs']:>6} {a['agreement_pct']:>6.2f}% {a['defog_right']:>12} "
              f"{a['sqlwright_right']:>10} {a['strict_right']:>7}")
    if report["other_dialects"]:
        print(f"{'gold of dialect':<20} {'pairs':>6} {'agree':>7} {'Defog right':>12} {'sqlwright':>10} {'strict':>7}")
        for name, a in [*report["other_dialects"].items(), ("all", report["other_dialects_all"])]:
            print(f"{name:<20} {a['pairs']:>6} {a['agreement_pct']:>6.2f}% {a['defog_right']:>12} "
                  f"{a['sqlwright_right']:>10} {a['strict_right']:>7}")
    notes = Counter(note for r in rows for note in filter(None, (r["note"] or "").split("; ")))
    for note, count in sorted(notes.items()):
        print(f"note {note!r}: {count}")
    statuses = Counter(r["defog_status"] for r in rows)
    print(f"Defog statuses: {dict(statuses)}")
    for r in disagreements:
        print(f"\n#{r['id']} [{r['source']}] ({r['db']}, {r['category']}): Defog {r['defog']}"
              f"{' (' + r['defog_status'] + ': ' + str(r['defog_error']) + ')' if r['defog_status'] != 'ok' else ''}, "
              f"sqlwright {r['sqlwright']}{' (' + r['sqlwright_error'] + ')' if r['sqlwright_error'] else ''}"
              f"{' [' + r['note'] + ']' if r['note'] else ''}")
        print(f"  question: {r['question']}\n  gold: {r['gold']}\n  pred: {r['pred']}")

    stem = "+".join((["crafted"] if args.crafted else []) + (["other-dialects"] if args.other_dialects else [])
                    + [p.stem for p in args.predictions])
    stem += "-candidates" if args.candidates else ""
    out = args.out or RESULTS / f"sqleval_defog_agreement-{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "defog": str(args.defog), "defog_commit": defog_commit, "pandas": pandas_version,
        "predictions": [str(p) for p in args.predictions], "candidates": args.candidates, "crafted": args.crafted,
        "other_dialects_used": args.other_dialects,
        "questions": len({r["question_id"] for r in rows}), "without_sql": no_sql, "timeout": args.timeout,
        **report, "kinds": KINDS if args.crafted else None,
        "defog_statuses": dict(statuses), "disagreements": disagreements,
    }, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
