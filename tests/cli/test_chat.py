"""`sqlwright chat`: the real executable, its stdin piped, over a loopback OpenAI-compatible model stub that
answers SQL by the question it is asked (the last one of the conversation)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("sqlwright")
_LAST_QUESTION = re.compile(r"Question:\n(.+?)\s*$", re.S)

ANSWERS = {
    "How many singers are there?": "SELECT count(*) AS singers FROM singer",
    "and from France?": "SELECT count(*) AS french FROM singer WHERE country = 'France'",
    "and from Japan?": "SELECT count(*) AS japanese FROM singer WHERE country = 'Japan'",
    "Slow question?": "SELECT count(*) AS slow FROM singer",
}
FAILING = "Which question breaks the model server?"


class ModelStub:
    """An OpenAI-compatible server on loopback. A completion's question is the last "Question:" of its last
    message; a question in `hold` waits until `release()`; FAILING gets HTTP 400."""

    def __init__(self, hold: frozenset[str] = frozenset()) -> None:
        self.hold = hold
        self.requests: list[dict] = []  # the completion requests' bodies, in order
        self.arrived = threading.Event()  # a held question arrived
        self._released = threading.Event()
        self.url = ""

    def release(self) -> None:
        self._released.set()

    def questions(self) -> list[str]:
        return [question_of(r) for r in self.requests]

    def reply(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        path = handler.path.split("?")[0]
        status, payload = 404, {"detail": "Not Found"}
        if path == "/v1/models":
            status, payload = 200, {"object": "list", "data": [{"id": "stub", "object": "model"}]}
        elif path == "/v1/chat/completions":
            request = json.loads(body)
            self.requests.append(request)
            question = question_of(request)
            if question in self.hold:
                self.arrived.set()
                self._released.wait(30)
            if question == FAILING:
                status, payload = 400, {"error": {"message": "the model cannot do this", "type": "invalid_request"}}
            else:
                sql = ANSWERS.get(question)
                text = f"```sql\n{sql}\n```" if sql else "-- UNANSWERABLE: the stub does not know"
                status, payload = 200, {
                    "id": "stub", "object": "chat.completion", "created": 0, "model": "stub",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112}}
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def question_of(request: dict) -> str:
    found = _LAST_QUESTION.search(request["messages"][-1]["content"])
    return found.group(1).strip() if found else ""


@contextmanager
def model_stub(hold: frozenset[str] = frozenset()) -> Iterator[ModelStub]:
    stub = ModelStub(hold)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            stub.reply(self)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield stub
    finally:
        stub.release()
        server.shutdown()
        server.server_close()


@pytest.fixture()
def singers(tmp_path: Path) -> str:
    path = tmp_path / "singers.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
        "INSERT INTO singer VALUES (1, 'Ann', 'France'), (2, 'Bob', 'Japan'), (3, 'Cleo', 'France'), "
        "(4, 'Dev', 'Netherlands'), (5, 'Eve', 'France');"
    )
    con.commit()
    con.close()
    return str(path)


def chat_command(db: str, url: str) -> list[str]:
    return [str(EXE), "chat", db, "--model", "openai:stub", "--base-url", url, "--greedy"]


def chat_env(tmp_path: Path) -> dict[str, str]:
    # The state directory is the session's own (tests/conftest.py), inherited through the environment.
    return {**os.environ, "SQLWRIGHT_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "120"}


def test_a_conversation_with_follow_ups_commands_and_errors(singers: str, tmp_path: Path) -> None:
    lines = [
        "How many singers are there?",
        "and from France?",
        "\\sql SELECT name FROM singer WHERE country = 'Japan'",
        "\\sql DELETE FROM singer",
        "\\schema",
        "\\explain",
        "\\examples",
        FAILING,
        "\\bogus",
        "",
        "\\new",
        "and from Japan?",
        "\\help",
        "\\quit",
        "How many singers are there?",  # after \quit: never asked
    ]
    with model_stub() as stub:
        proc = subprocess.run(chat_command(singers, stub.url), input="\n".join(lines) + "\n", capture_output=True,
                              text=True, env=chat_env(tmp_path), timeout=90)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, err
    assert stub.questions() == ["How many singers are there?", "and from France?", FAILING, "and from Japan?"]
    # The follow-up carried the earlier question and its SQL; after \new the conversation starts afresh.
    follow_up = stub.requests[1]["messages"]
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    assert follow_up[1]["content"].endswith("Question:\nHow many singers are there?")
    assert ANSWERS["How many singers are there?"] in follow_up[2]["content"]
    assert [m["role"] for m in stub.requests[2]["messages"]] == ["system", "user", "assistant", "user",
                                                                 "assistant", "user"]
    assert [m["role"] for m in stub.requests[3]["messages"]] == ["system", "user"]
    # Answers, the SQL run by hand, the schema, the help: on stdout; the explanation on stderr, as `ask`'s.
    for shown in ("singers", "french", "japanese", "Bob", "# Table: singer", "\\sql SELECT"):
        assert shown in out, shown
    assert re.search(r"┃ french ┃\n.*\n│ 3 +│", out)  # the count of French singers
    assert "candidates" in err and "confidence 1.00" in err
    # Each failure is one error line on stderr, and the chat went on after it.
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, err
    assert "Refused" in errors[0] or "refused" in errors[0]
    assert "400" in errors[1] or "cannot do this" in errors[1]
    assert "unknown command \\bogus" in errors[2]
    assert "no examples or notes stored" in err


def test_ctrl_c_cancels_the_question_in_progress_and_the_chat_goes_on(singers: str, tmp_path: Path) -> None:
    with model_stub(hold=frozenset({"Slow question?"})) as stub:
        proc = subprocess.Popen(chat_command(singers, stub.url), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=chat_env(tmp_path))
        assert proc.stdin is not None
        proc.stdin.write("Slow question?\nHow many singers are there?\n\\quit\n")
        proc.stdin.flush()
        assert stub.arrived.wait(60), "the slow question never reached the model"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the chat sees the signal while the request is in flight
        stub.release()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "cancelling" in err and "cancelled" in err
    assert "slow" not in out.split("singers")[0]  # the cancelled question printed no answer
    assert "singers" in out and "5" in out  # the next question was answered
    assert stub.questions() == ["Slow question?", "How many singers are there?"]


def test_a_database_without_tables_is_one_line_at_the_start(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    proc = subprocess.run(chat_command(str(empty), "http://127.0.0.1:9/v1"), input="How many?\n",
                          capture_output=True, text=True, env=chat_env(tmp_path), timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "has no tables" in proc.stderr


def test_the_line_history_is_kept_in_the_state_directory(tmp_path: Path) -> None:
    readline = pytest.importorskip("readline")
    from sqlwright.cli.chat import HISTORY_FILE, line_history

    readline.clear_history()
    with line_history(tmp_path / "state"):
        readline.add_history("How many singers are there?")
    saved = tmp_path / "state" / HISTORY_FILE
    assert saved.is_file() and "How many singers are there?" in saved.read_text()
    readline.clear_history()
    with line_history(tmp_path / "state"):
        assert readline.get_current_history_length() == 1
        assert readline.get_history_item(1) == "How many singers are there?"
    readline.clear_history()


def _read_until(fd: int, marker: str, timeout: float = 60) -> str:
    """What the terminal shows until `marker` appears (AssertionError after `timeout` seconds)."""
    import select

    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{marker!r} never appeared; the terminal showed: {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other end closed
                break
            seen += chunk.decode("utf-8", "replace")
    return seen


def test_in_a_terminal_it_prompts_keeps_history_and_ctrl_d_quits(singers: str, tmp_path: Path) -> None:
    pytest.importorskip("readline")
    import pty

    state = tmp_path / "state"
    env = {**chat_env(tmp_path), "SQLWRIGHT_STATE_DIR": str(state), "TERM": "dumb"}
    main, terminal = pty.openpty()
    proc = subprocess.Popen(chat_command(singers, "http://127.0.0.1:9/v1"), stdin=terminal, stdout=terminal,
                            stderr=terminal, env=env, close_fds=True)
    os.close(terminal)
    try:
        _read_until(main, "ask> ")
        os.write(main, b"\\help\n")
        assert "Commands:" in _read_until(main, "ask> ")
        os.write(main, b"\x04")  # Ctrl-D
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    assert (state / "chat_history").read_text().splitlines()[-1] == "\\help"
