"""The cancel hook of the OpenAI-compatible backend, against loopback servers: `should_stop` is polled before
each request (retries included) and while waiting out a Retry-After."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sqlwright.errors import Cancelled

MESSAGES = [{"role": "user", "content": "How many singers are there?"}]
ONE_CHOICE = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "SELECT 1"}}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33},
}


@contextmanager
def model_server(completion: tuple[int, dict, dict[str, str]]) -> Iterator[dict]:
    """A loopback server: GET /v1/models answers, every POST /v1/chat/completions gets `completion`
    (status, body, headers). Yields {"url", "completions": the number of completion requests received}."""
    state: dict = {"completions": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?")[0]
            if path.endswith("/chat/completions"):
                with lock:
                    state["completions"] += 1
                status, body, headers = completion
            elif path.endswith("/models"):
                status, body, headers = 200, {"object": "list", "data": [{"id": "m", "object": "model"}]}, {}
            else:
                status, body, headers = 404, {"detail": "Not Found"}, {}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _llm(url: str, retries: int = 2):
    from sqlwright.llm.openai_backend import OpenAILLM

    return OpenAILLM("m", url, timeout=30, retries=retries)


def test_a_stop_before_the_request_sends_nothing() -> None:
    with model_server((200, ONE_CHOICE, {})) as server:
        llm = _llm(server["url"])
        with pytest.raises(Cancelled):
            llm.complete(MESSAGES, should_stop=lambda: True)
        assert server["completions"] == 0
        [completion] = llm.complete(MESSAGES, should_stop=lambda: False)
        assert completion.text == "SELECT 1" and server["completions"] == 1


def test_the_stop_is_polled_before_each_request_of_a_call() -> None:
    # The server returns one choice whatever n says, so n=3 takes three requests; a stop after the first
    # response leaves the other two unsent.
    with model_server((200, ONE_CHOICE, {})) as server:
        llm = _llm(server["url"])
        with pytest.raises(Cancelled):
            llm.complete(MESSAGES, n=3, temperature=0.7, should_stop=lambda: server["completions"] >= 1)
        assert server["completions"] == 1


def test_a_stop_ends_the_wait_for_a_retry_at_once() -> None:
    # The server asks to come back in 30 seconds; the stop comes after 0.3 s and is seen within a poll.
    busy = {"error": {"message": "busy", "type": "server_error"}}
    with model_server((503, busy, {"Retry-After": "30"})) as server:
        llm = _llm(server["url"])
        started = time.monotonic()
        with pytest.raises(Cancelled):
            llm.complete(MESSAGES, should_stop=lambda: time.monotonic() - started > 0.3)
        assert time.monotonic() - started < 2.0
        assert server["completions"] == 1  # no retry was sent
