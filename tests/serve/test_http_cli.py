"""`sqlwright serve`: what it refuses before listening (one line, exit 2), and a real server process started
by the command, answering over loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from http_support import TOKEN, make_sqlite

from sqlwright.cli import main

NO_MODEL = "/nonexistent/model.gguf"
SQLWRIGHT = Path(sys.executable).with_name("sqlwright")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("SQLWRIGHT_MODEL", NO_MODEL)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SQLWRIGHT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SQLWRIGHT_TOKEN", raising=False)


@pytest.fixture()
def db(tmp_path) -> str:
    return str(make_sqlite(tmp_path / "shop.sqlite"))


def invoke(capsys, monkeypatch, args: list[str]) -> tuple[int, str]:
    """Run `sqlwright ARGS` in this process; (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sqlwright", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_a_bind_beyond_loopback_without_a_token_is_refused(capsys, monkeypatch, db, host) -> None:
    code, err = invoke(capsys, monkeypatch, ["serve", db, "--host", host])
    assert code == 2
    line = one_line(err)
    assert f"refusing to listen on {host} without a token" in line and NO_MODEL not in line


def test_a_short_token_is_refused_from_the_flag_or_the_environment(capsys, monkeypatch, db) -> None:
    code, err = invoke(capsys, monkeypatch, ["serve", db, "--token", "short"])
    assert code == 2 and "the token is too short (5 characters)" in one_line(err)
    monkeypatch.setenv("SQLWRIGHT_TOKEN", "tiny")
    code, err = invoke(capsys, monkeypatch, ["serve", db, "--host", "0.0.0.0"])
    assert code == 2 and "the token is too short (4 characters)" in one_line(err)


def test_a_model_that_will_not_load_is_one_line_and_frees_the_port(capsys, monkeypatch, db) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err = invoke(capsys, monkeypatch, ["serve", db, "--port", str(port)])
    assert code == 2 and NO_MODEL in one_line(err)
    with socket.socket() as again:  # the server's socket was closed
        again.bind(("127.0.0.1", port))


def test_a_missing_database_or_a_taken_port_is_one_line(capsys, monkeypatch, db, tmp_path) -> None:
    code, err = invoke(capsys, monkeypatch, ["serve", str(tmp_path / "missing.sqlite")])
    assert code == 2 and "missing.sqlite" in one_line(err) and NO_MODEL not in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, err = invoke(capsys, monkeypatch, ["serve", db, "--port", str(port)])
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in one_line(err)
    code, err = invoke(capsys, monkeypatch, ["serve", db, "--host", "no-such-host.invalid", "--token", TOKEN])
    assert code == 2 and "cannot listen on 'no-such-host.invalid'" in one_line(err)


def test_serve_starts_a_server_that_answers(tmp_path, db) -> None:
    """The command as a user runs it (a model served elsewhere that is down): the API answers with the token,
    refuses without it, and a question the model cannot answer is a 502 line, not a 500."""
    env = {**os.environ, "SQLWRIGHT_STATE_DIR": str(tmp_path / "state"), "SQLWRIGHT_CACHE_DIR": str(tmp_path / "cache"),
           "SQLWRIGHT_RETRIES": "0", "SQLWRIGHT_TOKEN": TOKEN}
    process = subprocess.Popen([str(SQLWRIGHT), "serve", f"shop={db}", "--port", "0", "--model", "openai:nothing",
                                "--base-url", "http://127.0.0.1:9/v1", "--queue", "2"],
                               env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = process.stderr.readline()
        match = re.search(r"serving shop with openai:nothing on http://127\.0\.0\.1:(\d+)/ .*token required", line)
        assert match, line
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{match.group(1)}", timeout=30) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/api/v1/info").status_code == 401
            info = client.get("/api/v1/info", headers=auth).json()
            assert info["model"] == "openai:nothing" and info["databases"] == ["shop"] and info["queue"]["size"] == 2
            run = client.post("/api/v1/sql", json={"sql": "SELECT count(*) FROM singer"}, headers=auth).json()
            assert run["rows"] == [[5]]
            ask = client.post("/api/v1/ask", json={"question": "How many singers?"}, headers=auth)
            assert ask.status_code == 502 and "\n" not in ask.json()["detail"]
            assert client.get("/", headers={"Host": "evil.example"}).status_code == 421
        process.send_signal(signal.SIGTERM)  # a service manager's stop: graceful, exit 0
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        process.stderr.close()
