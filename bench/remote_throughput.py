"""Remote throughput: questions per second of `sqlwright eval` with a model behind an OpenAI-compatible server,
at --concurrency 1, 4 and 8.

Two servers:
- the loopback stub of the tests (tests/eval/remote_stub.py): a fixed delay per request, any number of requests
  at once, so it shows what the runner itself can keep in flight (the ideal is N times the rate at 1);
- with ``--llama``, a real ``python -m llama_cpp.server`` on the 0.5B GGUF (started here under ``nice -n 10``).
  llama-cpp-python's server (0.3.x) has no parallel slots: a lock serves one completion at a time, so
  concurrency can only overlap sqlwright's own work (prompt, SQL execution, comparison) with generation.

Questions: the concert database of the tests (singers, concerts; counts, lists, averages), greedy pipeline (one
request per question). After a warm-up (one question on the stub; the whole question set, untimed, on
llama_cpp.server), every level runs `--repeat` times in rounds, each run on a fresh run file; the summary keeps every run's rate, the median per level, and how many answers differ from the first
run (a stub answers alike; llama-cpp-python's prompt cache may change a greedy token with the order of requests).
Prints the figures and writes a JSON summary.

    .venv/bin/python bench/remote_throughput.py [--questions 48] [--delay 0.3] [--levels 1,4,8] [--repeat 2]
        [--llama] [--llama-questions 12] [--model qwen2.5-coder-0.5b] [--out bench/results/remote_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "eval"))  # the stub server and the concert database of the tests

from remote_stub import (  # noqa: E402
    StubModelServer,
    build_concert_db,
    concert_questions,
    running_llama_server,
    stub_answers,
)

from sqlwright.eval.datasets import load_dataset  # noqa: E402
from sqlwright.eval.predictors import PipelinePredictor  # noqa: E402
from sqlwright.eval.runner import run_eval  # noqa: E402
from sqlwright.llm.openai_backend import OpenAILLM  # noqa: E402
from sqlwright.pipeline.ask import AskOptions, Engine  # noqa: E402


def dataset_file(folder: Path, n: int) -> tuple[Path, list[dict]]:
    if not (folder / "concert.sqlite").exists():
        build_concert_db(folder / "concert.sqlite")
    questions = concert_questions(n, "concert.sqlite")
    data = folder / f"questions-{n}.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in questions))
    return data, questions


def timed_run(data: Path, model: str, url: str, run_file: Path, concurrency: int, workers: int,
              request_timeout: float) -> dict:
    """One evaluation of `data`: wall seconds, questions per second, EX, and the SQL of each answer."""
    llm = OpenAILLM(model, url, timeout=request_timeout, retries=2)
    predictor = PipelinePredictor(Engine(llm, AskOptions.greedy(), cache_dir=run_file.parent / "cache"))
    with load_dataset("jsonl", data, db_root=data.parent) as dataset:
        try:
            started = time.perf_counter()
            summary = run_eval(dataset, predictor, run_file=run_file, workers=workers, progress=False,
                               concurrency=concurrency)
            seconds = time.perf_counter() - started
        finally:
            predictor.close()
    n = len(summary.pairs)
    return {"concurrency": concurrency, "questions": n, "seconds": round(seconds, 3),
            "questions_per_second": round(n / seconds, 3), "ex": round(summary.ex, 4),
            "sql": {e.id: v.pred_sql for e, v in summary.pairs}}


def measure(label: str, data: Path, warm: Path, model: str, url: str, folder: Path, levels: list[int],
            workers: int, request_timeout: float, repeat: int) -> list[dict]:
    """Every level `repeat` times, in rounds (1, 4, 8, 1, 4, 8, …: a drift of the machine's load or a warm-up
    shows as a difference between rounds); per level the median rate, and how many answers differ from the
    first level's first run."""
    timed_run(warm, model, url, folder / f"{label}-warm-up.sqlite", 1, workers, request_timeout)
    runs: dict[int, list[dict]] = {n: [] for n in levels}
    for r in range(repeat):
        for n in levels:
            run = timed_run(data, model, url, folder / f"{label}-c{n}-r{r}.sqlite", n, workers, request_timeout)
            runs[n].append(run)
            print(f"{label:>6}  N={n:<3} round {r + 1}  {run['questions']:>4} questions  {run['seconds']:8.2f} s  "
                  f"{run['questions_per_second']:7.2f} q/s  EX {run['ex']:.3f}", flush=True)
    reference = runs[levels[0]][0]["sql"]
    rows = []
    for n in levels:
        rates = sorted(run["questions_per_second"] for run in runs[n])
        median = statistics.median(rates)
        rows.append({
            "concurrency": n, "questions": runs[n][0]["questions"],
            "seconds": [run["seconds"] for run in runs[n]],
            "questions_per_second": [run["questions_per_second"] for run in runs[n]],
            "median_questions_per_second": round(median, 3),
            "ex": [run["ex"] for run in runs[n]],
            "answers_differing_from_first_run": [sum(run["sql"][k] != v for k, v in reference.items())
                                                 for run in runs[n]],
        })
    for row in rows:
        row["speedup"] = round(row["median_questions_per_second"] / rows[0]["median_questions_per_second"], 2)
        print(f"{label:>6}  N={row['concurrency']:<3} median {row['median_questions_per_second']:7.2f} q/s  "
              f"x{row['speedup']}", flush=True)
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=48, help="questions against the stub")
    parser.add_argument("--delay", type=float, default=0.3, help="the stub's seconds per request")
    parser.add_argument("--levels", default="1,4,8", help="concurrency levels, comma-separated")
    parser.add_argument("--workers", type=int, default=1, help="comparison processes (eval --workers)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the levels")
    parser.add_argument("--llama", action="store_true", help="also measure a real llama_cpp.server")
    parser.add_argument("--llama-questions", type=int, default=12)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="registered model the server loads")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "remote_throughput.json")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    summary: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "pipeline": "greedy (one request per question)",
        "warm_up": "stub: one question; llama_cpp.server: the whole question set at N = 1, untimed",
        "comparison_workers": args.workers,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["SQLWRIGHT_CACHE_DIR"] = str(folder / "cache")
        warm, _ = dataset_file(folder, 1)
        data, questions = dataset_file(folder, args.questions)
        with StubModelServer(stub_answers(questions), delay=args.delay) as stub:
            rows = measure("stub", data, warm, "stub", stub.url, folder, levels, args.workers, 60, args.repeat)
        summary["stub"] = {"delay_seconds": args.delay, "ideal_questions_per_second_at_1": round(1 / args.delay, 3),
                           "levels": rows}

        if args.llama:
            import llama_cpp

            from sqlwright.config import load_settings
            from sqlwright.llm import model_path

            model_file = model_path(args.model, load_settings().cache_dir)
            data, _ = dataset_file(folder, args.llama_questions)
            try:
                with running_llama_server(model_file, folder / "llama-server.log", nice=10, wait=300) as url:
                    # Requests wait in the server's queue: the deadline covers N requests' generation.
                    # Warmed up on the very questions: on this machine the first pass over a question set took
                    # twice as long as the next ones whatever the concurrency (35.8 s, then 17.1 s, at N = 1).
                    rows = measure("llama", data, data, args.model, url, folder, levels, args.workers, 600,
                                   args.repeat)
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from exc
            summary["llama_cpp_server"] = {
                "model": args.model, "llama_cpp_python": llama_cpp.__version__, "nice": 10, "n_ctx": 4096,
                "parallel_slots": "none: llama_cpp.server 0.3.x serves one completion at a time (no n_parallel "
                                  "setting); concurrency only overlaps sqlwright's own work with generation",
                "levels": rows,
            }
    summary["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
