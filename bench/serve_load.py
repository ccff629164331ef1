"""Load test of `sqlwright serve` over loopback: N concurrent clients asking questions of one server.

The server (the same Service and app `sqlwright serve` runs) listens on 127.0.0.1 in this process, with its
state in a fresh temporary folder; the clients are threads, each with its own HTTP connection, sending
POST /api/v1/ask until the request count or the time budget is spent. Printed: latency p50/p95 of the
answered questions, the share of 429s (queue full) and of other statuses, throughput, the process's RSS
before and after, and whether the history holds exactly the answers given (no entry lost or duplicated).

    .venv/bin/python bench/serve_load.py --model scripted --delay 0.2 --clients 16 --requests 200
    .venv/bin/python bench/serve_load.py --model qwen2.5-coder-0.5b --clients 4 --requests 24 --max-seconds 600

`--model scripted` answers every question with a fixed SQL after `--delay` seconds (the server's own cost);
any other value is a model name for sqlwright's loader (the real model, loaded once). Exit code 1 when the
history does not match the answers or a 5xx was seen.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import uvicorn

from sqlwright.config import load_settings
from sqlwright.errors import Cancelled
from sqlwright.llm import load_llm
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions
from sqlwright.serve.app import create_app
from sqlwright.serve.databases import DatabaseSet
from sqlwright.serve.service import Service
from sqlwright.store import open_state_store

QUESTIONS = [
    "How many customers are there?",
    "Which three products brought in the most revenue?",
    "How many orders has each status?",
    "What is the average price of products per category?",
    "Which employees work in each department?",
    "How many orders were placed per month?",
    "Which customers placed more than two orders?",
    "What is the total quantity sold per product?",
]


class DelayedScriptedLLM(ScriptedLLM):
    """The scripted model answering every prompt with `sql` after `delay` seconds (stoppable meanwhile)."""

    def __init__(self, sql: str, delay: float) -> None:
        super().__init__()
        self.reply = f"```sql\n{sql}\n```"
        self.delay = delay

    def complete(self, messages, *, n: int = 1, should_stop=None, **kwargs):
        end = time.monotonic() + self.delay
        while time.monotonic() < end:
            if should_stop is not None and should_stop():
                raise Cancelled("stopped")
            time.sleep(min(0.01, max(0.0, end - time.monotonic())))
        self.queue(*[self.reply] * n)
        return super().complete(messages, n=n, should_stop=should_stop, **kwargs)


def rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), else its peak (getrusage), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="scripted", help="'scripted' or a model name (default scripted)")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per scripted model call")
    parser.add_argument("--db", default="sample", help="database to serve (default: the bundled sample)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="questions sent in all, at most")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    parser.add_argument("--queue", type=int, default=8, help="the server's --queue")
    parser.add_argument("--deadline", type=float, default=120.0, help="the server's --deadline")
    parser.add_argument("--candidates", type=int, default=None, help="SQL candidates per question")
    parser.add_argument("--max-backoff", type=float, default=2.0,
                        help="longest wait after a 429 before the next question (Retry-After, capped; 0: none)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()

    state = tempfile.TemporaryDirectory(prefix="sqlwright-load-")
    settings = load_settings(state_dir=Path(state.name) / "state")
    databases = DatabaseSet.open([args.db], settings)
    if args.model == "scripted":
        table = sorted(databases.get(None).schema().tables, key=lambda t: t.name)[0].name
        llm = DelayedScriptedLLM(f"SELECT count(*) FROM {table}", args.delay)
        options = AskOptions(candidates=args.candidates or 1, repair_rounds=0, values=False)
    else:
        llm = load_llm(args.model, settings)
        options = AskOptions(**({"candidates": args.candidates} if args.candidates else {}))
    service = Service(databases, llm, open_state_store(settings), settings, options=options,
                      queue_size=args.queue, deadline=args.deadline, model_name=args.model)
    app = create_app(service)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    gc.collect()
    rss_before = rss_mib()

    lock = threading.Lock()
    budget = {"left": args.requests}
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    answer_ids: list[str] = []
    transport_errors: Counter[str] = Counter()
    stop_at = time.monotonic() + args.max_seconds

    def client(number: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=args.deadline + 30) as http:
            i = number
            while time.monotonic() < stop_at:
                with lock:
                    if budget["left"] <= 0:
                        return
                    budget["left"] -= 1
                question = QUESTIONS[i % len(QUESTIONS)]
                i += args.clients
                started = time.monotonic()
                try:
                    response = http.post("/api/v1/ask", json={"question": question})
                except httpx.HTTPError as exc:
                    with lock:
                        transport_errors[type(exc).__name__] += 1
                    continue
                elapsed = time.monotonic() - started
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        latencies.append(elapsed)
                        answer_ids.append(response.json()["id"])
                if response.status_code == 429:  # back off as the server asks, up to --max-backoff
                    time.sleep(min(float(response.headers.get("retry-after", 1)), args.max_backoff))

    began = time.monotonic()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    wall = time.monotonic() - began

    history = service.store.history(limit=10 * args.requests + 10)
    history_ids = [e.id for e in history]
    gc.collect()
    rss_after = rss_mib()
    server.should_exit = True
    thread.join(10)
    sock.close()
    service.close()
    state.cleanup()

    sent = sum(statuses.values()) + sum(transport_errors.values())
    answered = statuses.get(200, 0)
    history_ok = sorted(history_ids) == sorted(answer_ids) and len(set(history_ids)) == len(history_ids)
    figures = {
        "model": args.model, "delay": args.delay if args.model == "scripted" else None, "clients": args.clients,
        "queue": args.queue, "deadline": args.deadline, "sent": sent, "answered": answered,
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "transport_errors": dict(transport_errors),
        "share_429": statuses.get(429, 0) / sent if sent else 0.0,
        "p50_seconds": percentile(latencies, 0.50), "p95_seconds": percentile(latencies, 0.95),
        "mean_seconds": statistics.fmean(latencies) if latencies else float("nan"),
        "answers_per_second": answered / wall if wall else 0.0, "wall_seconds": wall,
        "rss_mib_before": round(rss_before, 1), "rss_mib_after": round(rss_after, 1),
        "history_rows": len(history_ids), "history_matches_answers": history_ok,
    }
    print(f"model {args.model}, {args.clients} clients, queue {args.queue}: {sent} questions in {wall:.1f} s")
    print(f"  answered {answered} ({figures['answers_per_second']:.2f}/s); statuses {figures['statuses']}"
          f"{'; transport errors ' + str(dict(transport_errors)) if transport_errors else ''}")
    print(f"  latency of answers: p50 {figures['p50_seconds']:.3f} s, p95 {figures['p95_seconds']:.3f} s")
    print(f"  429 (queue full): {100 * figures['share_429']:.1f} % of requests")
    print(f"  RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB after")
    print(f"  history rows {len(history_ids)} == answers {answered}: {'yes' if history_ok else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    server_errors = sum(v for k, v in statuses.items() if k >= 500)
    return 0 if history_ok and not server_errors and not transport_errors else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
