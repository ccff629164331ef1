"""Fuzzing the command line: random argument lists, built from the real command tree (its command names
and each command's options, read from click) and odd values, through the Typer app. Whatever the
arguments, the exit code is 0, 1 or 2, no exception escapes, and no traceback is printed.

Nothing here loads a model or reaches the network: SQLWRIGHT_MODEL names a file that does not exist, no
drawn value is a registered model name or an `openai:` model, server URLs point at a closed loopback port,
and the cache is a temporary folder. `--debug` is never drawn: showing the traceback is its job.
Examples are derandomized, so CI sees the same inputs every run.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sqlwright.cli import app
from sqlwright.llm.models import MODELS

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOWEST_RUN = 20.0  # seconds for one command line; every drawn one fails (or finishes) well within it


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CLOSED_PORT = _closed_port()


# --- the command tree, as click sees it -------------------------------------------------------------
# Read by duck typing: Typer ships its own copy of click, whose classes are not `click`'s.
def _commands() -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append((path, command))
        for name, sub in sorted(getattr(command, "commands", {}).items()):  # a group's subcommands
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and "--debug" not in p.opts]


def _names(option: Any) -> list[str]:
    return [*option.opts, *option.secondary_opts]


COMMANDS = _commands()
# Commands first, groups (the root, eval, models) last: Hypothesis draws early entries more often.
LINE_TARGETS = sorted(COMMANDS, key=lambda entry: hasattr(entry[1], "commands"))
ROOT_OPTIONS = [name for option in _options(COMMANDS[0][1]) for name in _names(option)]
ALL_OPTIONS = sorted({name for _, command in COMMANDS for option in _options(command) for name in _names(option)})


def test_the_tree_was_read():
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"ask", "sql", "schema", "sample", "models list", "models path", "eval spider", "eval diff"} <= paths
    assert {"--model", "--format", "--timeout", "--max-rows", "--data", "--predictions"} <= set(ALL_OPTIONS)


# --- values --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def playground(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli_fuzz")
    with contextlib.closing(sqlite3.connect(root / "tiny.sqlite")) as conn:
        conn.executescript("CREATE TABLE t (x INTEGER, name TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');")
        conn.commit()
    (root / "notes.txt").write_text("not a database\nnor a dataset\nnor predictions\n")
    (root / "garbage.bin").write_bytes(b"\xff\x00\xfe" * 100)
    (root / "empty.sqlite").write_bytes(b"")
    (root / "folder").mkdir()
    # A valid custom dataset (no `id` field: it must not pass for a predictions file) and predictions for it.
    (root / "set.jsonl").write_text(
        '{"question": "How many?", "db": "tiny.sqlite", "sql": "SELECT count(*) FROM t"}\n'
        '{"question": "Names?", "db": "tiny.sqlite", "sql": "SELECT name FROM t"}\n'
    )
    (root / "pred.sql").write_text("SELECT count(*) FROM t\nSELECT name FROM t ORDER BY 1\n")
    return root


PLAYGROUND_FILES = ["tiny.sqlite", "notes.txt", "garbage.bin", "empty.sqlite", "folder", "set.jsonl", "pred.sql",
                    "missing.sqlite", "missing/dir/x.jsonl", "cache"]
FIXED_VALUES = [
    "", " ", "-", "--", "sample", "0", "1", "-1", "2", "1e309", "nan", "inf", "-inf", "0.001",
    "99999999999999999999", "-99999999999999999999", "1.5", "true", "json", "csv", "table", "text", "ddl",
    "sqlite", "postgres", "mysql", "duckdb", "spider", "SELECT 1", "SELECT * FROM t", "SELECT x FROM t ORDER BY x",
    "DROP TABLE t", "SELECT 1; SELECT 2", "ATTACH 'x' AS y", "SELECT '\u00e9\u2028'", "How many rows are there?",
    "sqlite:///missing.db", "postgres:/x", "postgresql:x", "sqlite//x", "http://example.com/db",
    f"postgresql://u@127.0.0.1:{CLOSED_PORT}/db", f"mysql://u@127.0.0.1:{CLOSED_PORT}/db", "/dev/null",
    "~no_such_user_sqlwright/x.db", "x" * 300, "a\nb", "\x00", "qwen2.5-coder", "model.gguf", "/nonexistent.gguf",
]
FORBIDDEN_VALUES = set(MODELS)  # a registered model name would assemble (and load) a real model


def _allowed(value: str) -> bool:
    return value not in FORBIDDEN_VALUES and not value.strip().lower().startswith("openai:")


random_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
values = (st.sampled_from(FIXED_VALUES) | st.sampled_from(PLAYGROUND_FILES) | random_text).filter(_allowed)


def _option_values(option: Any) -> st.SearchStrategy[list[str]]:
    """What follows an option: nothing for a flag, else one value (a choice, a number or anything)."""
    if option.is_flag or option.count:
        return st.just([])
    typed = values
    choices, numeric = _value_kind(option)
    if choices:
        typed = st.sampled_from(choices) | values
    elif numeric is not None:
        usual = st.sampled_from(["0", "1", "2", "3", "10"] + (["0.5", "1e-3"] if numeric is float else []))
        edges = st.integers().map(str) | st.floats().map(str) | values
        typed = st.integers(0, 5).flatmap(lambda n: edges if n == 0 else usual)
    return typed.map(lambda v: [v])


def _value_kind(option: Any) -> tuple[list[str], type | None]:
    """(the choices, int or float or None) of an option's value: from click's `type` where the option has
    one, else from the annotation Typer keeps (Typer 0.29 builds its click types late)."""
    kind = getattr(option, "type", None)
    if kind is not None:
        number = {"integer": int, "float": float}.get(kind.name.split(" ")[0])
        return [str(c) for c in getattr(kind, "choices", ())], number
    annotation = getattr(getattr(option, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation], None
    return [], annotation if annotation in (int, float) else None


def _arguments(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "argument"]


@st.composite
def command_lines(draw) -> list[str]:
    """A command path from the tree, a value for each of its arguments, some of its options with values
    of their kind (required ones mostly given), and now and then something out of place: a bogus
    command, a missing or extra argument, another command's option."""
    argv: list[str] = []
    if draw(st.integers(0, 5)) == 0:
        argv.append(draw(st.sampled_from(ROOT_OPTIONS)))
    path, command = draw(st.sampled_from(LINE_TARGETS))
    argv.extend(path)
    odd = draw(st.integers(0, 9)) == 0  # one line in ten is malformed on purpose
    arguments = _arguments(command)
    argument_count = len(arguments) + (draw(st.sampled_from([-1, 1])) if odd else 0)
    argv.extend(draw(values) for _ in range(max(argument_count, 0)))
    options = _options(command)
    chosen = [o for o in options if o.required and not (odd and draw(st.booleans()))]
    if options:
        chosen += draw(st.lists(st.sampled_from(options), max_size=4))
    for option in chosen:
        argv.append(draw(st.sampled_from(_names(option))))
        argv.extend(draw(_option_values(option)))
    if odd:
        extra = st.sampled_from(["nope", "--help", "help", "--nope", *ALL_OPTIONS]) | values
        argv.insert(draw(st.integers(0, len(argv))), draw(extra))
    return argv


# --- lines the fuzzer found crashing, fixed since: each must now exit cleanly -----------------------------
FOUND_BY_FUZZING = [
    ["models", "path", "~no_such_user_sqlwright/x.gguf"],  # expanduser: RuntimeError
    ["models", "verify", "x" * 300],  # Path.is_file: OSError "File name too long"
    ["ask", "tiny.sqlite", "How many?", "--model", "x" * 300],
    ["sql", "tiny.sqlite", "SELECT 1", "--max-rows", "99999999999999999999"],  # fetchmany's C int
    ["ask", "tiny.sqlite", "How many?", "--repair-rounds", "6"],  # AskOptions' ValidationError
    ["ask", "tiny.sqlite", "How many?", "--candidates", "65"],
]


@pytest.mark.parametrize("argv", FOUND_BY_FUZZING)
def test_lines_the_fuzzer_found(playground, runner_env, argv):
    _check(argv, playground, runner_env)


# --- the property --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runner_env(playground) -> dict[str, str]:
    return {
        "SQLWRIGHT_MODEL": "/nonexistent/model.gguf",
        "SQLWRIGHT_CACHE_DIR": str(playground / "cache"),
        "SQLWRIGHT_STATE_DIR": str(playground / "state"),
        "SQLWRIGHT_BASE_URL": f"http://127.0.0.1:{CLOSED_PORT}/v1",
        "SQLWRIGHT_API_KEY": "fuzz",
        "SQLWRIGHT_REQUEST_TIMEOUT": "2",
        "SQLWRIGHT_RETRIES": "0",
        "SQLWRIGHT_PG_ADMIN_URL": f"postgresql://u@127.0.0.1:{CLOSED_PORT}/postgres",
        "SQLWRIGHT_MYSQL_ADMIN_URL": f"mysql://u@127.0.0.1:{CLOSED_PORT}/mysql",
        "XDG_CACHE_HOME": str(playground / "xdg"),
        "COLUMNS": "100",
    }


def _check(argv: list[str], playground: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    start = time.perf_counter()
    with contextlib.chdir(playground):  # relative paths (run files, reports) land in the playground
        result = runner.invoke(app, argv, env=env, catch_exceptions=True)
    elapsed = time.perf_counter() - start
    shown = f"sqlwright {argv!r} -> exit {result.exit_code}\n{result.output[-2000:]}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__} escaped: {shown}") from result.exception
    assert result.exit_code in (0, 1, 2), shown
    assert "Traceback" not in result.output, shown
    assert elapsed < SLOWEST_RUN, f"took {elapsed:.1f} s: {shown}"


@FUZZ
@given(argv=command_lines())
def test_random_command_lines(playground, runner_env, argv):
    _check(argv, playground, runner_env)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["nope"],
        ["sql", "tiny.sqlite", "SELECT 1"],
        ["sql", "tiny.sqlite", "SELECT x FROM t", "--format", "csv", "--max-rows", "1"],
        ["schema", "tiny.sqlite", "--format", "json"],
        ["ask", "tiny.sqlite", "How many?"],  # the model does not exist: a clean error
        ["models", "path"],
        ["models", "list", "--format", "json"],
        ["eval", "jsonl", "--data", "set.jsonl"],
        ["eval", "jsonl", "--data", "set.jsonl", "--predictions", "pred.sql", "--workers", "0", "--no-progress"],
        ["eval", "diff", "tiny.sqlite", "notes.txt"],
    ],
)
def test_known_command_lines(playground, runner_env, argv):
    _check(argv, playground, runner_env)
