"""`sqlwright examples …` and `sqlwright notes …` on a real SQLite database, with a state directory of the
test's own (SQLWRIGHT_STATE_DIR), through the real entry point."""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import sqlite3
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sqlwright
from sqlwright.cli import main
from sqlwright.errors import ExampleRejected, InvalidQuestion, StateStoreError

app_module = importlib.import_module("sqlwright.cli.app")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "state"
    monkeypatch.setenv("SQLWRIGHT_STATE_DIR", str(path))
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    return path


@pytest.fixture()
def db(tmp_path) -> str:
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
        CREATE TABLE purchase (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer (id), amount REAL);
        INSERT INTO customer VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome'), (3, 'Cy', 'Oslo');
        INSERT INTO purchase VALUES (1, 1, 9.5), (2, 1, 3.0), (3, 2, 12.0);
    """)
    conn.close()
    return str(path)


def sw(capsys, monkeypatch, *args: str, stdin: str | None = None):
    """Run `sqlwright ARGS` as the executable does: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sqlwright", *args])
    monkeypatch.setattr(app_module.err_console, "width", 80)
    monkeypatch.setattr(app_module.console, "width", 200)
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def listed(capsys, monkeypatch, db: str) -> list[dict]:
    code, out, err = sw(capsys, monkeypatch, "examples", "list", db, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_add_list_remove(capsys, monkeypatch, db):
    code, out, err = sw(capsys, monkeypatch, "examples", "add", db, "How many customers live in Oslo?",
                        "SELECT count(*) FROM customer WHERE city = 'Oslo'")
    assert (code, out.strip(), err) == (0, "stored example 1", "")
    code, out, _ = sw(capsys, monkeypatch, "examples", "add", db, "How many customers live in Oslo? ",
                      "SELECT count(*) FROM customer WHERE city = 'Oslo'")
    assert (code, out.strip()) == (0, "already stored as example 1")
    rows = listed(capsys, monkeypatch, db)
    assert [(r["id"], r["question"], r["source"], r["verified"]) for r in rows] == [
        (1, "How many customers live in Oslo?", "taught", True)]
    code, out, _ = sw(capsys, monkeypatch, "examples", "list", db, "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "id,source,verified,question,sql,database"
    code, out, _ = sw(capsys, monkeypatch, "examples", "list", db)
    assert code == 0 and "How many customers live in Oslo?" in out
    code, out, err = sw(capsys, monkeypatch, "examples", "remove", db, "7")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no example 7" in err
    code, out, _ = sw(capsys, monkeypatch, "examples", "remove", db, "1")
    assert (code, out.strip()) == (0, "removed example 1")
    assert listed(capsys, monkeypatch, db) == []


@pytest.mark.parametrize(("sql", "reason"), [
    ("DELETE FROM customer", "refused"),
    ("SELECT 1; DROP TABLE customer", "refused"),
    ("SELECT nosuch FROM customer", "does not run"),
    ("SELECT * FROM nowhere", "does not run"),
])
def test_add_refuses_sql_that_is_refused_or_fails(capsys, monkeypatch, db, sql, reason):
    code, out, err = sw(capsys, monkeypatch, "examples", "add", db, "Some question?", sql)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and reason in lines[0], err
    assert listed(capsys, monkeypatch, db) == []
    assert sqlite3.connect(db).execute("SELECT count(*) FROM customer").fetchone()[0] == 3


def test_add_refuses_an_empty_question(capsys, monkeypatch, db):
    code, _, err = sw(capsys, monkeypatch, "examples", "add", db, "  ", "SELECT 1")
    assert code == 2 and "question is empty" in err


def test_import_reports_bad_lines_and_export_round_trips(capsys, monkeypatch, db, tmp_path):
    lines = [
        {"question": "Who lives in Rome?", "sql": "SELECT name FROM customer WHERE city = 'Rome'"},
        {"question": "Total spent?", "sql": "SELECT sum(amount) FROM purchase", "source": "synthesized",
         "verified": False, "style": "concise", "complexity": "simple", "provenance": {"model": "q", "seed": 1}},
        {"question": "Bad column", "sql": "SELECT nosuch FROM customer"},
        {"question": "Write", "sql": "UPDATE customer SET city = 'x'"},
        {"sql": "SELECT 1"},
        ["not", "an", "object"],
        {"question": "Odd source", "sql": "SELECT 1", "source": "guessed"},
        {"question": "Who lives in Rome?", "sql": "SELECT name FROM customer WHERE city = 'Rome'"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines[:4]) + "\n\n"
                      + "\n".join(json.dumps(line) for line in lines[4:]) + "\n")
    code, out, err = sw(capsys, monkeypatch, "examples", "import", db, str(source))
    assert code == 0, err
    assert out.strip() == "imported 2 new, 1 already stored, 5 skipped"
    skipped = err.strip().splitlines()
    assert [s.split(":")[1].strip() for s in skipped] == ["line 3", "line 4", "line 6", "line 7", "line 8"]
    assert "does not run" in skipped[0] and "refused" in skipped[1] and "no question" in skipped[2]
    stored = listed(capsys, monkeypatch, db)
    assert stored[1]["provenance"] == {"model": "q", "seed": 1, "style": "concise", "complexity": "simple"}
    assert (stored[1]["source"], stored[1]["verified"]) == ("synthesized", False)

    exported = tmp_path / "out.jsonl"
    code, _, err = sw(capsys, monkeypatch, "examples", "export", db, "--output", str(exported))
    assert code == 0 and "2 examples written" in err
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [sorted(r) for r in records] == [sorted(["question", "sql", "source", "verified", "provenance",
                                                    "created"])] * 2
    # Into a fresh state directory, and out again: the same records.
    monkeypatch.setenv("SQLWRIGHT_STATE_DIR", str(tmp_path / "other-state"))
    code, out, err = sw(capsys, monkeypatch, "examples", "import", db, str(exported))
    assert (code, out.strip(), err) == (0, "imported 2 new, 0 already stored, 0 skipped", "")
    code, out, _ = sw(capsys, monkeypatch, "examples", "export", db)
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == records


@pytest.mark.parametrize(("content", "message"), [
    ('{"question": "q", "sql": "SELECT 1"}\n{"question": oops}\n', "line 2 is not JSON"),
    ("", "holds no examples"),
    (None, "examples file not found"),
])
def test_import_of_a_malformed_file_is_one_line_exit_2(capsys, monkeypatch, db, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    if content is not None:
        path.write_text(content)
    code, out, err = sw(capsys, monkeypatch, "examples", "import", db, str(path))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err
    assert listed(capsys, monkeypatch, db) == []  # nothing imported from a malformed file


def test_import_from_stdin(capsys, monkeypatch, db):
    code, out, _ = sw(capsys, monkeypatch, "examples", "import", db, "-",
                      stdin='{"question": "How many?", "sql": "SELECT count(*) FROM customer"}\n')
    assert (code, out.strip()) == (0, "imported 1 new, 0 already stored, 0 skipped")


@pytest.mark.parametrize("change", [
    "ALTER TABLE customer DROP COLUMN city",
    "ALTER TABLE customer RENAME COLUMN city TO town",
])
def test_check_reports_examples_broken_by_a_schema_change(capsys, monkeypatch, db, tmp_path, change):
    copy = tmp_path / "copy.sqlite"
    shutil.copy(db, copy)
    for question, sql in [("Who lives in Oslo?", "SELECT name FROM customer WHERE city = 'Oslo'"),
                          ("Total spent?", "SELECT sum(amount) FROM purchase")]:
        assert sw(capsys, monkeypatch, "examples", "add", str(copy), question, sql)[0] == 0
    code, out, _ = sw(capsys, monkeypatch, "examples", "check", str(copy), "--format", "json")
    assert code == 0 and json.loads(out)["failed"] == 0
    conn = sqlite3.connect(copy)
    conn.execute(change)
    conn.commit()
    conn.close()
    code, out, _ = sw(capsys, monkeypatch, "examples", "check", str(copy), "--format", "json")
    report = json.loads(out)
    assert code == 1 and (report["examples"], report["failed"]) == (2, 1)
    broken, fine = report["results"]
    assert broken["ok"] is False and "city" in broken["error"] and broken["schema_changed"] is True
    assert fine["ok"] is True and fine["schema_changed"] is True
    code, out, err = sw(capsys, monkeypatch, "examples", "check", str(copy))
    assert code == 1 and "FAILS" in out and "1 no longer run; 2 stored under another schema" in err
    # The original still has the schema the examples were stored under: it sees them, and they all run.
    assert [r["question"] for r in listed(capsys, monkeypatch, db)] == ["Who lives in Oslo?", "Total spent?"]
    code, out, _ = sw(capsys, monkeypatch, "examples", "check", db, "--format", "json")
    assert code == 0 and json.loads(out)["failed"] == 0
    assert not any(r["schema_changed"] for r in json.loads(out)["results"])


def test_examples_follow_the_schema_to_a_copy(capsys, monkeypatch, db, tmp_path):
    assert sw(capsys, monkeypatch, "examples", "add", db, "How many?", "SELECT count(*) FROM customer")[0] == 0
    copy = tmp_path / "moved.sqlite"
    shutil.copy(db, copy)
    assert [r["question"] for r in listed(capsys, monkeypatch, str(copy))] == ["How many?"]


def test_notes_add_list_remove(capsys, monkeypatch, db):
    text = "An active customer bought something in the last 90 days."
    code, out, _ = sw(capsys, monkeypatch, "notes", "add", db, text)
    assert (code, out.strip()) == (0, "stored note 1")
    assert sw(capsys, monkeypatch, "notes", "add", db, text)[1].strip() == "already stored as note 1"
    code, out, _ = sw(capsys, monkeypatch, "notes", "list", db, "--format", "json")
    assert code == 0 and [n["text"] for n in json.loads(out)] == [text]
    code, out, _ = sw(capsys, monkeypatch, "notes", "list", db, "--format", "csv")
    assert out.splitlines() == ["id,note", f"1,{text}"]
    code, _, err = sw(capsys, monkeypatch, "notes", "remove", db, "2")
    assert code == 2 and "no note 2" in err
    assert sw(capsys, monkeypatch, "notes", "remove", db, "1")[:2] == (0, "removed note 1\n")
    code, out, _ = sw(capsys, monkeypatch, "notes", "list", db, "--format", "json")
    assert json.loads(out) == []
    code, _, err = sw(capsys, monkeypatch, "notes", "add", db, " ")
    assert code == 2 and "note is empty" in err


def test_sample_database_is_accepted(capsys, monkeypatch):
    code, out, err = sw(capsys, monkeypatch, "examples", "add", "sample", "How many products?",
                        "SELECT count(*) FROM products")
    assert code == 0, err
    assert [r["question"] for r in listed(capsys, monkeypatch, "sample")] == ["How many products?"]


def test_python_api(db, state_dir):
    with sqlwright.connect(db) as conn:
        taught = conn.teach("Who spent most?", "SELECT customer_id FROM purchase GROUP BY 1 ORDER BY sum(amount) "
                                               "DESC LIMIT 1")
        assert taught.source == "taught" and taught.verified
        assert conn.teach(" Who spent most?", taught.sql) == taught
        assert conn.examples() == [taught]
        with pytest.raises(ExampleRejected, match="refused"):
            conn.teach("Drop it", "DROP TABLE customer")
        with pytest.raises(ExampleRejected, match="does not run"):
            conn.teach("Broken", "SELECT nope FROM customer")
        with pytest.raises(InvalidQuestion):
            conn.teach("", "SELECT 1")
        note = conn.add_note("Amounts are in euros.")
        assert conn.notes() == [note]
        store = conn.store
    assert (state_dir / "state.db").is_file()
    with pytest.raises(StateStoreError, match="closed"):
        store.examples("x")  # closed with the connection
    with sqlwright.connect(db) as conn:
        assert [e.question for e in conn.examples()] == ["Who spent most?"]


# --- odd command lines: exit 0, 1 or 2, one line, never a traceback -----------------------------------------
ODD_VALUES = ["", " ", "-", "0", "-1", "99999999999999999999", "1.5", "nan", "\x00", "a\nb", "x" * 300,
              "DROP TABLE customer", "SELECT 1; SELECT 2", "sqlite:///missing.db", "missing/dir/x.jsonl", ".",
              "folder", "garbage.bin", "SELECT name FROM customer", "How many?"]


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from([("examples", "add", 3), ("examples", "list", 1), ("examples", "remove", 2),
                                ("examples", "import", 2), ("examples", "export", 1), ("examples", "check", 1),
                                ("notes", "add", 2), ("notes", "list", 1), ("notes", "remove", 2)]),
       values=st.lists(st.sampled_from(ODD_VALUES) | st.text(max_size=8), min_size=3, max_size=3),
       options=st.lists(st.sampled_from(["--format", "--output", "--timeout", "--max-rows"]), max_size=2),
       real_db=st.booleans())
def test_odd_command_lines_exit_cleanly(db, tmp_path, command, values, options, real_db):
    from typer.testing import CliRunner

    group, name, count = command
    (tmp_path / "folder").mkdir(exist_ok=True)
    (tmp_path / "garbage.bin").write_bytes(b"\xff\x00\xfe" * 50)
    argv = [group, name, *([db] if real_db else []), *values[: count - 1 if real_db else count]]
    for option in options:
        argv += [option, values[0]]
    with contextlib.chdir(tmp_path):
        result = CliRunner().invoke(app_module.app, argv, catch_exceptions=True)
    shown = f"sqlwright {argv!r} -> {result.exit_code}: {result.output[-1000:]}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__} escaped: {shown}") from result.exception
    assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output, shown
