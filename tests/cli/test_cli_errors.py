"""Errors a user can cause, through the real `sqlwright` entry point: one line on stderr at any terminal
width, the right exit code, and no model work when the input alone is wrong."""

from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqlwright.cli import main

app_module = importlib.import_module("sqlwright.cli.app")  # the module (the package exports the Typer app)

NO_MODEL = "/nonexistent/model.gguf"  # any attempt to load a model fails loudly with this path


def invoke(capsys, monkeypatch, args: list[str], *, width: int = 80, stdin: str | None = None):
    """Run `sqlwright ARGS` in this process as the executable does; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sqlwright", *args])
    monkeypatch.setattr(app_module.err_console, "width", width)
    monkeypatch.setattr(app_module.console, "width", max(width, 40))
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture()
def db(tmp_path) -> str:
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)")
    conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "shipped"), (2, "pending")])
    conn.commit()
    conn.close()
    return str(path)


@pytest.fixture()
def empty_dbs(tmp_path) -> list[str]:
    """An empty file named like a database, and a real SQLite database with no tables."""
    empty_file = tmp_path / "x.sqlite"
    empty_file.write_bytes(b"")
    no_tables = tmp_path / "none.sqlite"
    conn = sqlite3.connect(no_tables)
    conn.execute("PRAGMA user_version = 7")  # a valid database file, without a table
    conn.commit()
    conn.close()
    return [str(empty_file), str(no_tables)]


@pytest.fixture(autouse=True)
def _no_model(monkeypatch, tmp_path):
    monkeypatch.setenv("SQLWRIGHT_MODEL", NO_MODEL)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


# --- a database with no tables ---------------------------------------------------------------------
def test_ask_on_a_database_without_tables_says_so_at_once(capsys, monkeypatch, empty_dbs):
    for path in empty_dbs:
        started = time.monotonic()
        code, out, err = invoke(capsys, monkeypatch, ["ask", path, "How many orders are there?"])
        assert code == 2, err
        assert "has no tables" in err and NO_MODEL not in err  # refused before the model loads
        assert time.monotonic() - started < 5


def test_schema_of_a_database_without_tables_is_an_error(capsys, monkeypatch, empty_dbs):
    for path in empty_dbs:
        for fmt in ("text", "json"):
            code, out, err = invoke(capsys, monkeypatch, ["schema", path, "--format", fmt])
            assert code == 2 and "has no tables" in err and out == ""


def test_the_engine_refuses_a_database_without_tables_before_asking_the_model(empty_dbs):
    from sqlwright.db import open_database
    from sqlwright.errors import EmptyDatabase
    from sqlwright.llm.mock import ScriptedLLM
    from sqlwright.pipeline import Engine

    llm = ScriptedLLM(["SELECT * FROM x"])
    with open_database(empty_dbs[1]) as database, pytest.raises(EmptyDatabase, match="has no tables"):
        Engine(llm, max_question_chars=100).ask(database, "How many?")
    assert llm.requests == []


# --- questions ----------------------------------------------------------------------------------
def test_a_huge_question_is_refused_as_too_long_before_any_model_work(capsys, monkeypatch, db):
    code, out, err = invoke(capsys, monkeypatch, ["ask", db, "How many orders " * 7000])
    assert code == 2
    assert "the question is too long: 111,999 characters, at most 4,000" in err
    assert "SQLWRIGHT_MAX_QUESTION_CHARS" in err and NO_MODEL not in err


def test_the_question_cap_is_a_setting_and_covers_evidence(capsys, monkeypatch, db):
    monkeypatch.setenv("SQLWRIGHT_MAX_QUESTION_CHARS", "20")
    code, _, err = invoke(capsys, monkeypatch, ["ask", db, "How many orders are there now?"])
    assert code == 2 and "at most 20" in err
    code, _, err = invoke(capsys, monkeypatch, ["ask", db, "How many?", "--evidence", "x" * 21])
    assert code == 2 and "the evidence is too long" in err
    # Within the cap, the question reaches the model (which cannot load here).
    code, _, err = invoke(capsys, monkeypatch, ["ask", db, "How many?"])
    assert NO_MODEL in err


def test_an_empty_question_is_refused(capsys, monkeypatch, db):
    code, _, err = invoke(capsys, monkeypatch, ["ask", db, "   "])
    assert code == 2 and "the question is empty" in err


# --- SQL a person gives ---------------------------------------------------------------------------
COMMENTED = "-- note\nSELECT count(*) AS n FROM orders"


def test_sql_that_starts_with_a_comment_is_refused_with_the_way_to_give_it(capsys, monkeypatch, db):
    code, out, err = invoke(capsys, monkeypatch, ["sql", db, COMMENTED])
    assert code == 2 and len(err.splitlines()) == 1
    assert "--query" in err and "--file" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["--query", COMMENTED], [f"--query={COMMENTED}"], ["-q", COMMENTED],
                                  ["--", COMMENTED]])
def test_sql_that_starts_with_a_comment_runs_when_given_as_a_value(capsys, monkeypatch, db, args):
    code, out, err = invoke(capsys, monkeypatch, ["sql", db, "--format", "csv", *args])
    assert (code, out.splitlines(), err) == (0, ["n", "2"], "")


def test_sql_from_standard_input_and_from_a_file(capsys, monkeypatch, db, tmp_path):
    code, out, err = invoke(capsys, monkeypatch, ["sql", db, "-", "--format", "csv"], stdin=COMMENTED)
    assert (code, out.splitlines()) == (0, ["n", "2"]), err
    code, out, err = invoke(capsys, monkeypatch, ["sql", db, "--file", "-", "--format", "csv"], stdin=COMMENTED)
    assert (code, out.splitlines()) == (0, ["n", "2"]), err
    script = tmp_path / "q.sql"
    script.write_text(COMMENTED + ";\n", encoding="utf-8")
    code, out, err = invoke(capsys, monkeypatch, ["sql", db, "--file", str(script), "--format", "csv"])
    assert (code, out.splitlines()) == (0, ["n", "2"]), err


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--file", "/nonexistent/q.sql"], None, "SQL file not found: /nonexistent/q.sql"),
    (["SELECT 1", "--query", "SELECT 2"], None, "give the SQL once"),
    ([], None, "no SQL given"),
    (["-"], "  \n", "the SQL is empty"),
])
def test_sql_input_mistakes(capsys, monkeypatch, db, args, stdin, message):
    code, out, err = invoke(capsys, monkeypatch, ["sql", db, *args], stdin=stdin)
    assert code == 2 and message in err and len(err.splitlines()) == 1


# --- one line, at any width -------------------------------------------------------------------------
def _error_invocations(db: str, empty: str, tmp_path: Path) -> list[tuple[list[str], int]]:
    long_name = "a_rather_long_column_name_that_does_not_exist_anywhere_" * 3
    return [
        (["sql", "/nonexistent/dir/database.sqlite", "SELECT 1"], 2),
        (["sql", str(tmp_path), "SELECT 1"], 2),
        (["sql", "oracle://scott@localhost/x", "SELECT 1"], 2),
        (["sql", db, "DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE status = 'pending')"], 2),
        (["sql", db, "SELEC 1 FROM orders"], 2),
        (["sql", db, f"SELECT {long_name}\nFROM orders\nWHERE [status] = 'x'"], 1),
        (["sql", db, "SELECT [bold]x[/bold] FROM orders"], 2),
        (["sql", db, COMMENTED], 2),
        (["sql"], 2),
        (["sql", db, "SELECT 1", "--no-such-option"], 2),
        (["sql", db, "SELECT 1", "--timeout", "soon"], 2),
        (["ask", empty, "How many orders?"], 2),
        (["ask", db, "How many orders? " * 500], 2),
        (["ask", db, "How many orders?"], 2),  # the model cannot be loaded
        (["ask", db, "How many orders?", "--model", "no-such-model"], 2),
        (["schema", empty], 2),
        (["eval", "spider", "--data", "/nonexistent/spider", "--predictions", "/nonexistent/p.txt"], 2),
        (["models", "path", "no-such-model"], 2),
        (["nonsense-command"], 2),
    ]


def test_every_error_is_one_line_at_any_terminal_width(capsys, monkeypatch, db, empty_dbs, tmp_path):
    for args, expected in _error_invocations(db, empty_dbs[0], tmp_path):
        for width in (20, 80, 400):
            code, out, err = invoke(capsys, monkeypatch, args, width=width)
            lines = err.splitlines()
            assert code == expected, (args, err)
            assert len(lines) == 1 and lines[0].startswith("error: "), (args, width, err)
            assert "Traceback" not in err + out


def test_a_message_with_line_breaks_and_brackets_prints_as_one_literal_line(capsys, monkeypatch):
    from sqlwright.cli.app import print_error

    monkeypatch.setattr(app_module.err_console, "width", 10)
    print_error("near [bold]x[/bold]:\n  SELECT *\n  FROM t  [/]")
    assert capsys.readouterr().err == "error: near [bold]x[/bold]: SELECT * FROM t [/]\n"


def test_the_executable_prints_one_line_when_stderr_is_a_pipe(db):
    """The real process: stderr is not a terminal and COLUMNS is tiny (logs, CI)."""
    exe = Path(sys.executable).with_name("sqlwright")
    env = {**os.environ, "COLUMNS": "20", "SQLWRIGHT_MODEL": NO_MODEL}
    proc = subprocess.run([str(exe), "sql", db, "SELECT status FROM orders WHERE id = 'a very long literal "
                           "that would wrap at twenty columns' AND nope = 1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and "no such column: nope" in proc.stderr
