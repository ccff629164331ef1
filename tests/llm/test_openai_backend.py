"""The OpenAI-compatible backend against a real server (llama-cpp-python's, on the 0.5B model), and against
loopback servers that misbehave: a closed port, one that accepts and never answers, one that answers errors."""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlwright.errors import (
    ConfigError,
    LLMRequestFailed,
    ModelAPIKeyRefused,
    ModelNotServed,
    ModelServerNotAnswering,
    ModelServerUnreachable,
)
from sqlwright.llm.base import LLM

MESSAGES = [
    {"role": "system", "content": "You write SQLite SQL. Answer with one SQL query and nothing else."},
    {"role": "user", "content": "CREATE TABLE singer (singer_id INTEGER, name TEXT, age INTEGER);\n"
     "Question: How many singers are there?"},
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free port; yields its /v1 base URL once /v1/models answers."""
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
    from remote_stub import running_llama_server

    try:
        with running_llama_server(model_file, tmp_path_factory.mktemp("llama-server") / "server.log") as url:
            yield url  # pytest resumes a fixture after its tests, never throws their errors in here
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def server_llm(llama_server: str):
    from sqlwright.llm.openai_backend import OpenAILLM

    return OpenAILLM("qwen2.5-coder-0.5b", llama_server, timeout=120, retries=1)


@pytest.mark.model
@pytest.mark.slow
def test_completion_with_usage(server_llm) -> None:
    assert isinstance(server_llm, LLM)
    [c] = server_llm.complete(MESSAGES, max_tokens=40)
    assert "SELECT" in c.text.upper()
    assert c.prompt_tokens > 20 and 0 < c.completion_tokens <= 40
    assert c.finish_reason in ("stop", "length") and c.seconds > 0


@pytest.mark.model
@pytest.mark.slow
def test_n_is_made_up_when_the_server_returns_fewer_choices(server_llm) -> None:
    # llama-cpp-python's server answers one choice whatever n says: the backend asks again for the rest.
    samples = server_llm.complete(MESSAGES, n=2, temperature=0.8, max_tokens=12, seed=7, stop=[";"])
    assert len(samples) == 2
    assert all(s.completion_tokens > 0 and ";" not in s.text for s in samples)


@pytest.mark.model
@pytest.mark.slow
def test_count_tokens_uses_the_servers_tokenizer(server_llm, embedded_llm) -> None:
    text = "SELECT name, age FROM singer WHERE age > 30 ORDER BY age DESC"
    assert server_llm.count_tokens(text) == embedded_llm.count_tokens(text)


@pytest.mark.model
@pytest.mark.slow
def test_http_error_is_llm_request_failed(llama_server: str) -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    wrong_path = OpenAILLM("m", llama_server.removesuffix("/v1") + "/nothing-here", retries=0)
    with pytest.raises(ModelNotServed, match=r"nothing-here\) does not know model 'm' \(HTTP 404"):
        wrong_path.complete(MESSAGES, max_tokens=2)


def test_down_server_fails_quickly_with_the_url() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    base_url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there any more
    llm = OpenAILLM("m", base_url, timeout=5, retries=1)
    started = time.monotonic()
    with pytest.raises(ModelServerUnreachable) as info:
        llm.complete(MESSAGES, max_tokens=2)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert message == f"Could not connect to the model server ({base_url}): connection refused"
    assert info.value.exit_code == 2
    # The first token count is the first contact: it fails the same way rather than guess.
    with pytest.raises(ModelServerUnreachable):
        llm.count_tokens("x" * 35)


def test_missing_base_url_is_config_error() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with pytest.raises(ConfigError, match="base_url"):
        OpenAILLM("m", "")


def test_logprobs_are_averaged_from_the_response() -> None:
    """Servers that send logprobs (vLLM, OpenAI) fill mean_logprob; parsed with the client's own types."""
    from openai.types.chat import ChatCompletion

    from sqlwright.llm.openai_backend import _token_logprobs

    response = ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "SELECT 1"},
            "logprobs": {"content": [
                {"token": "SELECT", "logprob": -0.5, "bytes": None, "top_logprobs": []},
                {"token": " 1", "logprob": -1.5, "bytes": None, "top_logprobs": []},
            ]},
        }, {
            "index": 1, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "SELECT 2"}, "logprobs": None,
        }],
    })
    assert _token_logprobs(response.choices[0]) == [-0.5, -1.5]
    assert _token_logprobs(response.choices[1]) == []


# --- servers that misbehave, on loopback -----------------------------------------------------------------
OK_COMPLETION = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "SELECT 1"}}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
}


@contextmanager
def stub_server(routes: dict[str, tuple[int, object]], *, slow: dict[str, float] | None = None) -> Iterator[dict]:
    """An HTTP server on a free loopback port: `routes` maps a path to (status, body); a dict body is sent as
    JSON, a str as plain text; other paths get FastAPI's 404. `slow` delays the reply to a path by seconds.
    Yields {"url": its /v1 base URL, "hits": the paths asked, in order}."""
    state: dict = {"hits": []}
    released = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?")[0]
            state["hits"].append(path)
            if released.wait((slow or {}).get(path, 0)):
                return  # the test is over
            status, body = routes.get(path, (404, {"detail": "Not Found"}))
            data = json.dumps(body).encode() if isinstance(body, dict) else str(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        released.set()
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A port that accepts TCP connections (the kernel completes them) and never answers: a hung server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def _tiny_db(tmp_path: Path) -> str:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO items VALUES (1, 'pen')")
    return str(path)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's environment with no outside model settings, its cache in tmp_path; returns a tiny database."""
    for name in ("BASE_URL", "API_KEY", "REQUEST_TIMEOUT", "CONNECT_TIMEOUT", "RETRIES", "MODEL"):
        monkeypatch.delenv(f"SQLWRIGHT_{name}", raising=False)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    return Path(_tiny_db(tmp_path))


def _ask(db: Path, base_url: str, *extra: str):
    from sqlwright.cli import app

    return CliRunner().invoke(app, ["ask", str(db), "How many items?", "--model", "openai:m",
                                    "--base-url", base_url, *extra])


def test_default_worst_case_for_a_silent_server_is_under_a_minute() -> None:
    """With the default settings, a server that accepts and never answers is reported in < 60 s in all: the
    liveness check (connect + write + read, not retried) decides before any completion is sent."""
    from sqlwright.config import LIVENESS_TIMEOUT, Settings
    from sqlwright.llm import load_llm

    defaults = Settings()
    worst = 2 * defaults.connect_timeout + min(defaults.request_timeout, LIVENESS_TIMEOUT)
    assert worst < 60
    llm = load_llm("openai:m", Settings(base_url="http://127.0.0.1:9/v1"))
    assert llm.silent_server_deadline == worst
    # The client itself never retries (it would retry timeouts), and its limits are separate.
    assert llm._client.max_retries == 0
    limits = llm._client.timeout
    assert (limits.connect, limits.read) == (defaults.connect_timeout, defaults.request_timeout)
    # A slow but working server keeps a generation deadline far above the hung-server bound.
    assert defaults.request_timeout >= 2 * worst


def test_silent_server_is_reported_once_not_retried() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with silent_server() as base_url:
        llm = OpenAILLM("m", base_url, timeout=1, connect_timeout=0.5, retries=2)
        started = time.monotonic()
        with pytest.raises(ModelServerNotAnswering) as info:
            llm.complete(MESSAGES, max_tokens=2)
        elapsed = time.monotonic() - started
    # One wait of the liveness limit, not three of the request timeout.
    assert elapsed < llm.silent_server_deadline + 0.5 and elapsed < 2
    message = str(info.value)
    assert message == (f"The model server ({base_url}) accepted the connection but did not answer within 1s: "
                       "is it the right address, and is the server running?")
    assert info.value.exit_code == 2


def test_ask_reports_a_silent_server_in_one_line_exit_2(cli_env: Path) -> None:
    with silent_server() as base_url:
        started = time.monotonic()
        result = _ask(cli_env, base_url, "--request-timeout", "1", "--connect-timeout", "1")
        elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert elapsed < 10
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "did not answer within 1s" in lines[0] and base_url in lines[0]


def test_ask_reports_a_closed_port_like_an_unreachable_database(cli_env: Path) -> None:
    base_url = f"http://127.0.0.1:{_free_port()}/v1"
    result = _ask(cli_env, base_url)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: Could not connect to the model server ({base_url}): connection refused"


def test_connect_timeout_flag_bounds_a_full_accept_queue(cli_env: Path) -> None:
    """A listener whose accept queue is full drops new connections' SYNs: the connect itself hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        port = sock.getsockname()[1]
        fillers = []
        for _ in range(4):  # more than the queue holds; the extra ones stay half-open
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        with socket.socket() as probe:
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                pass
            else:  # e.g. net.ipv4.tcp_abort_on_overflow=1 refuses instead of dropping
                pytest.skip("this kernel does not drop connections to a full accept queue")
        try:
            started = time.monotonic()
            result = _ask(cli_env, f"http://127.0.0.1:{port}/v1", "--connect-timeout", "0.5")
            elapsed = time.monotonic() - started
        finally:
            for filler in fillers:
                filler.close()
    assert result.exit_code == 2, result.output
    assert "no connection within 0.5s" in result.output and elapsed < 5


def test_server_error_shows_the_servers_own_text(cli_env: Path) -> None:
    error = {"error": {"message": "CUDA out of memory\nwhile allocating the KV cache", "type": "server_error"}}
    with stub_server({"/v1/models": (200, {"data": []}), "/v1/chat/completions": (500, error)}) as stub:
        result = _ask(cli_env, stub["url"], "--request-timeout", "5")
        completions = stub["hits"].count("/v1/chat/completions")
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (f"error: The model server ({stub['url']}) answered HTTP 500: "
                                     "CUDA out of memory while allocating the KV cache")
    assert completions == 3  # a 5xx is retried (retries = 2)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"detail": "engine is loading"}, "engine is loading"),
        ({"error": "plain error string"}, "plain error string"),
        ("Traceback (most recent call last):\n  File x\nRuntimeError: boom", "Traceback (most recent call last): "
         "File x RuntimeError: boom"),
        ("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", "502 Bad Gateway nginx"),
    ],
)
def test_error_body_forms_become_one_line(body: object, expected: str) -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    with stub_server({"/v1/models": (200, {"data": []}), "/v1/chat/completions": (502, body)}) as stub:
        llm = OpenAILLM("m", stub["url"], retries=0)
        with pytest.raises(LLMRequestFailed) as info:
            llm.complete(MESSAGES, max_tokens=2)
    message = str(info.value)
    assert message.startswith(f"The model server ({stub['url']}) answered HTTP 502: ")
    assert " ".join(message.split(": ", 1)[1].split()).endswith(expected)


def test_a_long_error_text_is_cut_to_one_line() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    body = {"error": {"message": "prompt too long: " + "token " * 2000}}
    with stub_server({"/v1/models": (200, {"data": []}), "/v1/chat/completions": (400, body)}) as stub:
        with pytest.raises(LLMRequestFailed) as info:
            OpenAILLM("m", stub["url"], retries=2).complete(MESSAGES, max_tokens=2)
        assert stub["hits"].count("/v1/chat/completions") == 1  # a 400 is not retried
    message = str(info.value)
    assert "HTTP 400: prompt too long: token token" in message
    assert "\n" not in message and len(message) < 300 and message.endswith("…")


@pytest.mark.parametrize(
    ("status", "api_key", "server_text", "error_class", "words"),
    [
        (401, "sk-wrong", "Incorrect API key provided", ModelAPIKeyRefused,
         "refused the API key (HTTP 401: Incorrect API key provided)"),
        (403, None, "Forbidden", ModelAPIKeyRefused, "needs an API key (HTTP 403: Forbidden)"),
        (404, None, "The model `m` does not exist.", ModelNotServed,
         "does not know model 'm' (HTTP 404: The model `m` does not exist.)"),
    ],
)
def test_key_and_model_refusals_are_user_errors(status: int, api_key: str | None, server_text: str,
                                                 error_class: type, words: str) -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    body = {"error": {"message": server_text, "code": status}}
    with stub_server({"/v1/models": (status, body), "/v1/chat/completions": (status, body)}) as stub:
        with pytest.raises(error_class) as info:
            OpenAILLM("m", stub["url"], api_key=api_key, retries=2).complete(MESSAGES, max_tokens=2)
        assert stub["hits"].count("/v1/chat/completions") == 1
    assert info.value.exit_code == 2
    assert words in str(info.value)


def test_a_working_server_answers_through_the_checks() -> None:
    """The liveness check happens once, not before every request; without a tokenize route, an estimate."""
    from sqlwright.llm.openai_backend import OpenAILLM

    with stub_server({"/v1/models": (200, {"data": []}), "/v1/chat/completions": (200, OK_COMPLETION)}) as stub:
        llm = OpenAILLM("m", stub["url"])
        assert llm.count_tokens("x" * 35) == 10
        [first] = llm.complete(MESSAGES, max_tokens=5)
        [second] = llm.complete(MESSAGES, max_tokens=5)
        hits = stub["hits"]
    assert first.text == second.text == "SELECT 1" and first.prompt_tokens == 30
    assert hits.count("/v1/models") == 1 and hits.count("/v1/chat/completions") == 2


def test_request_timeout_flag_reaches_the_backend_in_ask(cli_env: Path) -> None:
    routes = {"/v1/models": (200, {"data": []}), "/v1/chat/completions": (200, OK_COMPLETION)}
    with stub_server(routes, slow={"/v1/chat/completions": 30}) as stub:
        started = time.monotonic()
        result = _ask(cli_env, stub["url"], "--request-timeout", "1")
        elapsed = time.monotonic() - started
        completions = stub["hits"].count("/v1/chat/completions")
    # A slow server (it answers its liveness check) runs out of the request timeout: exit 1, not retried.
    assert result.exit_code == 1, result.output
    assert "did not finish the completion within 1s" in result.output and "--request-timeout" in result.output
    assert completions == 1 and elapsed < 10


def test_request_timeout_flag_reaches_the_backend_in_eval(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlwright.cli import app

    data = cli_env.parent / "questions.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "How many items?", "sql": "SELECT count(*) FROM items",
                                "db": cli_env.name}) + "\n")
    routes = {"/v1/models": (200, {"data": []}), "/v1/chat/completions": (200, OK_COMPLETION)}
    with stub_server(routes, slow={"/v1/chat/completions": 30}) as stub:
        monkeypatch.setenv("SQLWRIGHT_BASE_URL", stub["url"])
        result = CliRunner().invoke(app, [
            "eval", "jsonl", "--data", str(data), "--db-root", str(cli_env.parent), "--model", "openai:m",
            "--no-progress", "--workers", "0", "--format", "json", "--run-file", str(cli_env.parent / "run.sqlite"),
            "--request-timeout", "1", "--connect-timeout", "1", "--greedy",
        ])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)["results"]
    assert "did not finish the completion within 1s" in entry["error"]


# --- sqlwright eval against the real server, one and four questions at a time ------------------------------
EVAL_QUESTIONS = [
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("What is the average age of all singers?", "SELECT avg(age) FROM singer"),
    ("How many singers are from France?", "SELECT count(*) FROM singer WHERE country = 'France'"),
    ("What is the name of the oldest singer?", "SELECT name FROM singer ORDER BY age DESC LIMIT 1"),
]


@pytest.fixture(scope="module")
def eval_results(llama_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The EVAL_QUESTIONS evaluated through the server at concurrency 1 and 4 (greedy): summary and run file."""
    from sqlwright.eval.datasets import load_dataset
    from sqlwright.eval.predictors import PipelinePredictor
    from sqlwright.eval.runner import run_eval
    from sqlwright.llm.openai_backend import OpenAILLM
    from sqlwright.pipeline.ask import AskOptions, Engine

    folder = tmp_path_factory.mktemp("remote-eval")
    with sqlite3.connect(folder / "concert.sqlite") as conn:
        conn.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
        conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", [
            (1, "Joe Sharp", "Netherlands", 52), (2, "Timbaland", "United States", 32),
            (3, "Justin Brown", "France", 29), (4, "Rose White", "France", 41), (5, "John Nizinik", "France", 43)])
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "sql": sql, "db": "concert.sqlite"}) + "\n"
                            for i, (q, sql) in enumerate(EVAL_QUESTIONS)))
    out = {}
    for concurrency in (1, 4):
        llm = OpenAILLM("qwen2.5-coder-0.5b", llama_server, timeout=300, retries=1)
        predictor = PipelinePredictor(Engine(llm, AskOptions.greedy(), cache_dir=folder / "cache"))
        run_file = folder / f"run{concurrency}.sqlite"
        with load_dataset("jsonl", data, db_root=folder) as dataset:
            try:
                summary = run_eval(dataset, predictor, run_file=run_file, workers=1, progress=False,
                                   concurrency=concurrency)
            finally:
                predictor.close()
        out[concurrency] = (summary, run_file)
    return out


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 4])
def test_eval_through_the_real_server_records_each_question_once(eval_results: dict, concurrency: int) -> None:
    summary, run_file = eval_results[concurrency]
    ids = [f"q{i}" for i in range(len(EVAL_QUESTIONS))]
    with sqlite3.connect(run_file) as conn:
        verdicts = [row[0] for row in conn.execute("SELECT id FROM verdicts")]
        predictions = [row[0] for row in conn.execute("SELECT id FROM predictions")]
    assert sorted(verdicts) == sorted(predictions) == ids
    results = summary.results()
    assert [r["id"] for r in results] == ids
    assert all(r["pred_sql"] and r["error"] is None and r["completion_tokens"] > 0 for r in results), results
    assert summary.metrics["correct"] >= 2  # simple questions: the 0.5B model gets most of them
