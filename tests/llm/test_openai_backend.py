"""The OpenAI-compatible backend against a real server (llama-cpp-python's, on the 0.5B model) and a dead port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sqlwright.errors import ConfigError, LLMRequestFailed
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
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model_file), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "4096", "--verbose", "false"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer /v1/models within 180 s")
            time.sleep(0.5)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    with pytest.raises(LLMRequestFailed, match=r"nothing-here: HTTP 404"):
        wrong_path.complete(MESSAGES, max_tokens=2)


def test_down_server_fails_quickly_with_the_url() -> None:
    from sqlwright.llm.openai_backend import OpenAILLM

    base_url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there any more
    llm = OpenAILLM("m", base_url, timeout=5, retries=1)
    started = time.monotonic()
    with pytest.raises(LLMRequestFailed) as info:
        llm.complete(MESSAGES, max_tokens=2)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert message.startswith(base_url) and "cannot reach the server" in message
    assert "\n" not in message
    # Without a tokenize route the count is an estimate.
    assert llm.count_tokens("x" * 35) == 10


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
