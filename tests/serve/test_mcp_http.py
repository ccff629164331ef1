"""`sqlwright mcp --http`: streamable HTTP on a loopback port, started as the console script, driven by the
SDK's own client and by plain HTTP requests. The bearer token and the Host allow-list (RequestGuard) and
the bind rule (check_bind) are checked on the real server."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

TOKEN = "test-token-0123456789abcdef"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def sqlwright_command() -> list[str]:
    script = Path(sys.executable).parent / "sqlwright"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from sqlwright.cli import main; main()"]


def server_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SQLWRIGHT_TOKEN"}
    env["SQLWRIGHT_CACHE_DIR"] = str(tmp_path / "cache")
    return env


@pytest.fixture(scope="module")
def http_server(sqlite_testdb, tmp_path_factory) -> Iterator[str]:
    """`sqlwright mcp test=URL --http --port 0 --token … --allow-host mcp.example`; yields its URL."""
    process = subprocess.Popen(
        [*sqlwright_command(), "mcp", f"test={sqlite_testdb.url}", "--http", "--port", "0", "--token", TOKEN,
         "--allow-host", "mcp.example"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=server_env(tmp_path_factory.mktemp("mcp-http")))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        seen = []
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                pytest.fail(f"the server did not start: {seen}")
            seen.append(line)
            found = re.search(r"at (http://127\.0\.0\.1:\d+/mcp)", line)
            if found:
                break
        yield found.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.stdout.read() == ""  # the HTTP server prints nothing on stdout


def with_client(url: str, token: str | None, body, statuses: list[int] | None = None):
    """Run `body(client)` with the SDK's client over streamable HTTP; `statuses` collects the HTTP status
    of every response."""

    async def record(response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async def main():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (httpx2.AsyncClient(headers=headers, timeout=30, event_hooks={"response": [record]}) as http,
                    Client(streamable_http_client(url, http_client=http)) as client):
            with anyio.fail_after(30):
                return await body(client)

    return anyio.run(main)


def test_http_tools_need_the_token(http_server, sqlite_testdb):
    before = sqlite_testdb.admin.checksum()

    async def body(client):
        tools = (await client.list_tools()).tools
        count = await client.call_tool("run_sql", {"sql": "SELECT count(*) FROM singer"})
        escape = await client.call_tool("run_sql", {"sql": "COMMIT; DROP TABLE singer"})
        schema = (await client.read_resource("schema://test")).contents[0].text
        return tools, count, escape, schema

    tools, count, escape, schema = with_client(http_server, TOKEN, body)
    assert {t.name for t in tools} >= {"ask", "run_sql", "validate_sql", "search_schema", "describe_table"}
    assert count.structured_content["rows"] == [[5]]
    assert escape.is_error and "only one statement" in escape.content[0].text
    assert "# Table: singer" in schema

    for token in (None, "wrong-token-0123456789abcdef"):
        statuses: list[int] = []
        with pytest.raises(Exception):  # noqa: B017 (the SDK reports the refusal as a generic error)
            with_client(http_server, token, lambda c: c.list_tools(), statuses)
        assert statuses and set(statuses) == {401}, statuses
    assert sqlite_testdb.admin.checksum() == before


def test_http_refusals_are_json_with_a_reason(http_server):
    port = http_server.rsplit(":", 1)[1].split("/")[0]
    with httpx.Client(timeout=10) as http:
        missing = http.post(http_server, json=INITIALIZE, headers=MCP_HEADERS)
        assert missing.status_code == 401 and "bearer token is required" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = http.post(http_server, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401

        auth = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
        rebound = http.post(http_server, json=INITIALIZE, headers={**auth, "Host": f"evil.example:{port}"})
        assert rebound.status_code == 421 and "evil.example" in rebound.json()["detail"]
        allowed = http.post(http_server, json=INITIALIZE, headers={**auth, "Host": f"mcp.example:{port}"})
        assert allowed.status_code == 200, allowed.text
        cross_site = http.post(http_server, json=INITIALIZE, headers={**auth, "Origin": "http://evil.example"})
        assert cross_site.status_code == 403, cross_site.text
        accepted = http.post(http_server, json=INITIALIZE, headers=auth)
        assert accepted.status_code == 200 and accepted.headers.get("mcp-session-id")
        huge = http.post(http_server, content=b"x" * 2_000_000, headers=auth)
        assert huge.status_code == 413


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "0.0.0.0"], "refusing to listen on 0.0.0.0 without a token"),
    (["--token", "short"], "the token is too short"),
])
def test_http_bind_rules_exit_2_with_one_line(sqlite_testdb, tmp_path, args, message):
    done = subprocess.run([*sqlwright_command(), "mcp", sqlite_testdb.url, "--http", *args],
                          capture_output=True, text=True, timeout=60, env=server_env(tmp_path), stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr


def test_http_port_in_use_exits_2_with_one_line(http_server, sqlite_testdb, tmp_path):
    port = http_server.rsplit(":", 1)[1].split("/")[0]
    done = subprocess.run([*sqlwright_command(), "mcp", sqlite_testdb.url, "--http", "--port", port],
                          capture_output=True, text=True, timeout=60, env=server_env(tmp_path), stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
