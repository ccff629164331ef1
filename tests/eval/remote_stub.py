"""A loopback OpenAI-compatible server that answers SQL from a table, after a fixed delay per request.

It stands in for a model server that works on many requests at once (vLLM, SGLang): each request is served
by its own thread and sleeps `delay` seconds, so N requests in flight take about as long as one. Used by
tests/eval/test_remote_concurrency.py and bench/remote_throughput.py.

    with StubModelServer({"How many singers?": "SELECT count(*) FROM singer"}, delay=0.3) as server:
        llm = OpenAILLM("stub", server.url)

The question is read from the prompt's "Question:" section (sqlwright's prompt layout); a question the table
does not hold gets an UNANSWERABLE reply. Rate limits are staged with `reject`: the next k completion requests
get HTTP 429 with the given Retry-After header.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

_QUESTION = re.compile(r"Question:\n(.+?)\s*$", re.S)


@dataclass
class Hit:
    """One request the stub received."""

    path: str
    arrived: float  # time.monotonic()
    question: str | None = None
    status: int = 0  # 0 while the stub works on it


@dataclass
class StubModelServer:
    answers: dict[str, str]
    delay: float = 0.0
    slow: dict[str, float] = field(default_factory=dict)  # question -> its own delay (e.g. one that hangs)
    fail: dict[str, int] = field(default_factory=dict)  # question -> the HTTP status it always gets
    tokenize: bool = False  # answer llama-cpp-python's /extras/tokenize (a token per word); else 404
    hits: list[Hit] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rejects: list[tuple[int, dict[str, str]]] = []
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- staging -------------------------------------------------------------------------------
    def reject(self, times: int = 1, *, status: int = 429, headers: dict[str, str] | None = None) -> None:
        """The next `times` completion requests get `status` (with `headers`, e.g. Retry-After)."""
        with self._lock:
            self._rejects.extend([(status, dict(headers or {}))] * times)

    def completions(self, question: str | None = None) -> list[Hit]:
        """The completion requests answered (status 200), all or those for `question`, in order of arrival."""
        with self._lock:
            return [h for h in self.hits if h.path.endswith("/chat/completions") and h.status == 200
                    and (question is None or h.question == question)]

    # --- serving -------------------------------------------------------------------------------
    def _reply(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path.split("?")[0]
        hit = Hit(path, time.monotonic())
        if path == "/v1/chat/completions":
            request = json.loads(body or b"{}")
            hit.question = _question(request.get("messages") or [])
        with self._lock:
            self.hits.append(hit)
        if path == "/v1/models":
            status, payload, headers = 200, {"object": "list", "data": [{"id": "stub", "object": "model"}]}, {}
        elif path == "/extras/tokenize" and self.tokenize:
            words = str(json.loads(body or b"{}").get("input") or "").split()
            status, payload, headers = 200, {"tokens": list(range(len(words)))}, {}
        elif path == "/v1/chat/completions":
            with self._lock:
                staged = self._rejects.pop(0) if self._rejects else None
            if staged is None and hit.question in self.fail:
                staged = (self.fail[hit.question], {})
            if staged is not None:
                status, headers = staged
                payload = {"error": {"message": "rate limited" if status == 429 else f"failed with {status}",
                                     "type": "server_error"}}
            else:
                wait = self.slow.get(hit.question or "", self.delay)
                if wait and self._released.wait(wait):
                    return  # the server is closing: drop the request
                status, headers = 200, {}
                payload = _completion(self.answers.get(hit.question or ""), request)
        else:
            status, payload, headers = 404, {"detail": "Not Found"}, {}
        hit.status = status
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> StubModelServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
            # One segment per reply, sent at once: headers and body written apart would wait on Nagle's
            # algorithm and the client's delayed ACK (40 ms a request on Linux).
            wbufsize = -1
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                stub._reply(self)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 128
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _question(messages: list[dict]) -> str | None:
    for message in messages:
        if message.get("role") == "user":
            found = _QUESTION.search(str(message.get("content") or ""))
            if found:
                return found.group(1).strip()
    return None


def _completion(sql: str | None, request: dict) -> dict:
    text = f"```sql\n{sql}\n```" if sql else "-- UNANSWERABLE: not in the stub's table"
    n = max(1, int(request.get("n") or 1))
    return {
        "id": "stub", "object": "chat.completion", "created": 0, "model": request.get("model", "stub"),
        "choices": [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    for i in range(n)],
        "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112},
    }


# --- a small Spider-like database and its questions ----------------------------------------------------
COUNTRIES = ("Netherlands", "United States", "France", "Japan", "Brazil")


def build_concert_db(path: Path) -> Path:
    """A singer/concert database in the shape of Spider's concert_singer (40 singers)."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);"
            "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER);"
            "CREATE TABLE singer_in_concert (concert_id INTEGER REFERENCES concert (concert_id), "
            "singer_id INTEGER REFERENCES singer (singer_id), PRIMARY KEY (concert_id, singer_id));"
        )
        conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)",
                         [(i, f"Singer {i}", COUNTRIES[i % len(COUNTRIES)], 20 + i) for i in range(1, 41)])
        conn.executemany("INSERT INTO concert VALUES (?, ?, ?)", [(i, f"Concert {i}", 2010 + i) for i in range(1, 9)])
        conn.executemany("INSERT INTO singer_in_concert VALUES (?, ?)",
                         [(c, s) for c in range(1, 9) for s in range(c, 41, 7)])
    return path


def concert_questions(n: int, db: str) -> list[dict]:
    """`n` questions (id, question, sql, db) over build_concert_db's database, each with its gold SQL; no two
    questions alike (the stub knows them by their text)."""
    templates = (
        ("How many singers are older than {k}?", "SELECT count(*) FROM singer WHERE age > {k}"),
        ("List the names of singers aged {k} or less.", "SELECT name FROM singer WHERE age <= {k}"),
        ("How many singers older than {k} performed in concert {c}?",
         "SELECT count(*) FROM singer_in_concert AS sc JOIN singer AS s ON s.singer_id = sc.singer_id "
         "WHERE sc.concert_id = {c} AND s.age > {k}"),
        ("What is the average age of singers from {country} younger than {k}?",
         "SELECT avg(age) FROM singer WHERE country = '{country}' AND age < {k}"),
    )
    out = []
    for i in range(n):
        question, sql = templates[i % len(templates)]
        values = {"k": 21 + i, "c": 1 + i % 8, "country": COUNTRIES[i % len(COUNTRIES)]}
        out.append({"id": f"q{i}", "question": question.format(**values), "sql": sql.format(**values), "db": db})
    return out


def stub_answers(questions: list[dict], wrong_every: int = 4) -> dict[str, str]:
    """The stub's table: the gold SQL, except for every `wrong_every`-th question (its filter negated, avg made min)."""
    answers = {}
    for i, q in enumerate(questions):
        sql = q["sql"]
        wrong = wrong_every and i % wrong_every == wrong_every - 1
        answers[q["question"]] = sql.replace(" = ", " <> ", 1).replace("avg(", "min(") if wrong else sql
    return answers


@contextlib.contextmanager
def running_llama_server(model_file: Path, log_path: Path, *, n_ctx: int = 4096, nice: int = 0,
                         wait: float = 180.0) -> Iterator[str]:
    """`python -m llama_cpp.server` for `model_file` on a free loopback port: yields its /v1 base URL once
    GET /v1/models answers (RuntimeError if it exits or does not answer within `wait` seconds), and stops it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_file), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(n_ctx), "--verbose", "false"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(["nice", "-n", str(nice), *command] if nice else command,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + wait
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer /v1/models within {wait:g} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
