"""`sqlwright mcp` over stdio, as an agent host runs it: the console script started as a subprocess and
driven by the SDK's own stdio client. The model is reached the product's way, `--model openai:NAME
--base-url URL`, here a loopback stub of an OpenAI-compatible server (tests/eval/remote_stub.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "db"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from hostile_sql import hostile_for  # noqa: E402
from remote_stub import StubModelServer  # noqa: E402

from sqlwright.db import database_key, open_database  # noqa: E402
from sqlwright.store import open_state_store  # noqa: E402


def sqlwright_command() -> tuple[str, list[str]]:
    """The installed console script next to this Python, else the same entry point through -c."""
    script = Path(sys.executable).parent / "sqlwright"
    if script.is_file():
        return str(script), []
    return sys.executable, ["-c", "from sqlwright.cli import main; main()"]


def stdio_session(args: list[str], tmp_path: Path, body, *, global_args: tuple[str, ...] = (),
                  env: dict[str, str] | None = None):
    """Start `sqlwright [GLOBAL_ARGS] mcp ARGS` and run `body(client)` over its stdin/stdout; returns (body's
    result, the server's stderr, messages that were not protocol). Its state and cache directories are the
    test's own (tmp_path/state, tmp_path/cache)."""
    command, prefix = sqlwright_command()
    env = {"SQLWRIGHT_STATE_DIR": str(tmp_path / "state"), "SQLWRIGHT_CACHE_DIR": str(tmp_path / "cache"),
           **(env or {})}
    params = StdioServerParameters(command=command, args=[*prefix, *global_args, "mcp", *args], env=env)
    stray: list[object] = []
    errlog = tmp_path / "stderr.txt"

    async def on_message(message) -> None:
        if isinstance(message, Exception):  # a stdout line that is not a JSON-RPC message
            stray.append(message)

    async def main():
        with open(errlog, "w") as err:
            async with Client(stdio_client(params, errlog=err), message_handler=on_message) as client:
                with anyio.fail_after(60):
                    return await body(client)

    result = anyio.run(main)
    return result, errlog.read_text(), stray


@pytest.fixture(scope="module")
def model_server():
    answers = {"How many singers are there?": "SELECT count(*) FROM singer",
               "Delete all the singers.": "DELETE FROM singer"}
    with StubModelServer(answers) as stub:
        yield stub


def test_stdio_tools_resources_and_hostile_sql(sqlite_testdb, tmp_path):
    before = sqlite_testdb.admin.checksum()
    # A lone surrogate cannot be written as JSON by this client (the in-process test sends it).
    cases = [(sql, words) for sql, words in hostile_for("sqlite") if "\ud800" not in sql]

    async def body(client):
        tools = (await client.list_tools()).tools
        resources = (await client.list_resources()).resources
        schema = (await client.read_resource("schema://test")).contents[0].text
        count = await client.call_tool("run_sql", {"sql": "SELECT count(*) AS n FROM singer"})
        refused = [(sql, words, await client.call_tool("run_sql", {"sql": sql})) for sql, words in cases]
        escape = await client.call_tool("run_sql", {"sql": "COMMIT; DROP TABLE singer"})
        table = await client.call_tool("describe_table", {"table": "concert"})
        asked = await client.call_tool("ask", {"question": "How many singers are there?"})
        after = await client.call_tool("run_sql", {"sql": "SELECT max(age) FROM singer"})
        return tools, resources, schema, count, refused, escape, table, asked, after

    result, stderr, stray = stdio_session(["test=" + sqlite_testdb.url, "--model", "no-such-model"], tmp_path, body)
    tools, resources, schema, count, refused, escape, table, asked, after = result
    assert stray == []  # nothing but protocol on stdout
    assert {t.name for t in tools} == {"ask", "generate_sql", "run_sql", "validate_sql", "search_schema",
                                       "describe_table", "list_databases"}
    assert all(t.annotations.read_only_hint for t in tools)
    assert [str(r.uri) for r in resources] == ["schema://test"] and "# Table: singer" in schema
    assert count.structured_content["columns"] == ["n"] and count.structured_content["rows"] == [[5]]
    assert len(refused) >= 40
    for sql, words, outcome in refused:
        assert outcome.is_error, sql
        assert words.lower() in outcome.content[0].text.lower(), (sql, outcome.content[0].text)
    assert "only one statement" in escape.content[0].text
    assert [c["name"] for c in table.structured_content["columns"]] == ["concert_id", "concert_name", "year"]
    assert asked.is_error and "no-such-model" in asked.content[0].text  # the model loads lazily, and fails cleanly
    assert after.structured_content["rows"] == [[52]]
    assert sqlite_testdb.admin.checksum() == before


def test_stdio_ask_with_a_model_server_examples_and_logs(sqlite_testdb, tmp_path, model_server):
    before = sqlite_testdb.admin.checksum()

    async def body(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        asked = await client.call_tool("ask", {"question": "How many singers are there?", "db": "test"})
        generated = await client.call_tool("generate_sql", {"question": "How many singers are there?"})
        hostile = await client.call_tool("ask", {"question": "Delete all the singers."})
        taught = await client.call_tool("add_example", {"question": "Oldest singer?",
                                                        "sql": "SELECT name FROM singer ORDER BY age DESC LIMIT 1"})
        return tools, asked, generated, hostile, taught

    result, stderr, stray = stdio_session(
        ["test=" + sqlite_testdb.url, "--model", "openai:stub", "--base-url", model_server.url, "--allow-examples"],
        tmp_path, body, global_args=("--verbose",))
    tools, asked, generated, hostile, taught = result
    assert stray == []  # with --verbose's INFO logs, stdout still carries only protocol
    assert "INFO sqlwright.pipeline.ask: abstained on 'Delete all the singers.'" in stderr
    assert "add_example" in tools
    assert not asked.is_error, asked.content
    assert asked.structured_content["sql"] == "SELECT count(*) FROM singer"
    assert asked.structured_content["rows"] == [[5]] and asked.structured_content["confidence"] > 0.5
    assert generated.structured_content["sql"] == "SELECT count(*) FROM singer"
    assert hostile.structured_content["abstained"] is True and hostile.structured_content["sql"] is None
    assert model_server.completions("Delete all the singers.")  # the model was asked, its DELETE refused
    assert not taught.is_error, taught.content
    with open_state_store(tmp_path / "state") as store, \
            open_database(sqlite_testdb.url) as db:
        assert "Oldest singer?" in [e.question for e in store.examples(database_key(db))]
    assert sqlite_testdb.admin.checksum() == before
