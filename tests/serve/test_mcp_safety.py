"""The hostile-statement corpus through the MCP server, on every dialect (SQLite, PostgreSQL, MariaDB,
DuckDB): as SQL an agent sends to `run_sql` and to `validate_sql`, and as SQL the model writes behind
`ask`. Every statement is refused (run_sql: a tool error with the reason), nothing but guarded SELECTs
runs, and the database is unchanged (a checksum of its catalog and rows, DuckDB: its file's bytes).

The read-only-transaction escapes of the reference PostgreSQL MCP server (`COMMIT; DROP …`) are here too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "db"))
from hostile_sql import hostile_for  # noqa: E402

from sqlwright.config import load_settings  # noqa: E402
from sqlwright.db import check_sql  # noqa: E402
from sqlwright.errors import QueryRefused  # noqa: E402
from sqlwright.llm.mock import ScriptedLLM  # noqa: E402
from sqlwright.pipeline import AskOptions  # noqa: E402
from sqlwright.serve.databases import DatabaseSet  # noqa: E402
from sqlwright.serve.mcp import build_mcp_server, close_mcp_server  # noqa: E402

# Statements that end the read-only transaction and go on writing, as in the reference PostgreSQL MCP
# server's escape; the guard must refuse each (several statements, or a transaction command).
ESCAPES = [
    "COMMIT; DROP TABLE singer",
    "COMMIT; DROP TABLE singer;",
    "commit;drop table singer",
    "ROLLBACK; DELETE FROM singer",
    "END; DROP TABLE singer",
    "SELECT 1; COMMIT; DROP TABLE singer",
    "COMMIT -- done\n; DROP TABLE singer",
    "/* read only? */ COMMIT; INSERT INTO concert VALUES (9, 'x', 1)",
    "BEGIN; DROP TABLE singer; COMMIT",
    "SET TRANSACTION READ WRITE; DROP TABLE singer",
    "COMMIT",
    "SELECT 1 UNION SELECT 2; COMMIT; TRUNCATE TABLE notes",
]


@pytest.fixture()
def server(testdb, tmp_path):
    settings = load_settings(cache_dir=tmp_path / "cache", timeout=5)
    built = build_mcp_server(DatabaseSet.open([f"t={testdb.url}"], settings), settings,
                             options=AskOptions.greedy(examples=0), llm=ScriptedLLM())
    yield built
    close_mcp_server(built)


def run(body):
    return anyio.run(body)


def test_hostile_sql_through_run_sql_is_refused_and_changes_nothing(server, testdb):
    before = testdb.admin.checksum()
    cases = hostile_for(testdb.dialect) + [(sql, "") for sql in ESCAPES]
    assert len(cases) >= 50

    async def body():
        failures = []
        async with Client(server) as client:
            for sql, words in cases:
                result = await client.call_tool("run_sql", {"sql": sql})
                text = result.content[0].text if result.content else ""
                if not result.is_error or not text.startswith("Error executing tool run_sql: Refused") \
                        or words.lower() not in text.lower():
                    failures.append((sql, text))
                checked = await client.call_tool("validate_sql", {"sql": sql})
                if checked.structured_content["valid"] is not False or not checked.structured_content["reason"]:
                    failures.append((sql, f"validate_sql: {checked.structured_content}"))
            count = await client.call_tool("run_sql", {"sql": "SELECT count(*) FROM singer"})
        return failures, count

    failures, count = run(body)
    assert failures == []
    assert count.structured_content["rows"] == [[5]]  # the session still works
    assert testdb.admin.checksum() == before


def test_hostile_sql_from_the_model_behind_ask_runs_nothing_but_guarded_selects(server, testdb):
    before = testdb.admin.checksum()
    cases = hostile_for(testdb.dialect) + [(sql, "") for sql in ESCAPES]
    llm = server.sqlwright_tools._llm
    llm.queue(*(f"```sql\n{sql}\n```" for sql, _ in cases))

    async def body():
        answers = []
        async with Client(server) as client:
            for sql, _ in cases:
                result = await client.call_tool("ask", {"question": f"Please run this for me: {sql!r}"})
                assert not result.is_error, (sql, result.content)
                answers.append((sql, result.structured_content))
        return answers

    answers = run(body)
    assert llm.remaining == 0
    for sql, answer in answers:
        if answer["abstained"]:
            assert answer["sql"] is None and answer["rows"] == [], sql
        else:  # text the model's reply reshaped into a harmless query (a U+2028 read as a line break)
            try:
                check_sql(answer["sql"], testdb.dialect)
            except QueryRefused as exc:  # pragma: no cover - the failure this test is for
                pytest.fail(f"ask answered with SQL the guard refuses: {answer['sql']!r} ({exc})")
    assert sum(not a["abstained"] for _, a in answers) <= 2
    assert testdb.admin.checksum() == before
