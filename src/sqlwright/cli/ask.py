"""`sqlwright ask`, `sqlwright sql`, `sqlwright schema`, `sqlwright sample`: one database, one question."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.panel import Panel
from rich.syntax import Syntax

from sqlwright.cli.app import (
    OutputFormat,
    app,
    console,
    err_console,
    handle_errors,
    print_error,
    print_json,
    print_rows,
)
from sqlwright.errors import ConfigError, UserError

DB_HELP = "Database: sqlite:///path, a .sqlite/.db/.duckdb path, postgresql://…, mysql://…, duckdb:///path, or 'sample'."


def _connect(db: str, **kwargs):
    from sqlwright.api import connect

    return connect(db, **kwargs)


# The ask pipeline's options, declared once for `ask` and `eval`.
CANDIDATES = typer.Option(None, "--candidates", "-n", min=1, help="SQL candidates per question.")
REPAIR_ROUNDS = typer.Option(None, "--repair-rounds", min=0, help="Repair attempts per failing SQL.")
REPAIR_ALL = typer.Option(False, "--repair-all",
                          help="Repair every failing or suspicious candidate, not only when none ran.")
ALL_CANDIDATES = typer.Option(False, "--all-candidates",
                              help="Draw every candidate even when the vote is already decided (for ablations).")
NO_LINKING = typer.Option(False, "--no-linking", help="Never prune the schema.")
NO_VALUES = typer.Option(False, "--no-values", help="No hints of database values the question names.")
ABSTAIN_BELOW = typer.Option(None, "--abstain-below", min=0, max=1,
                             help="Abstain when the vote's confidence is below this.")
COT = typer.Option(False, "--cot", help="Ask the model to reason before the SQL.")
GREEDY = typer.Option(False, "--greedy", help="One greedy candidate, no repair (the baseline).")
EXAMPLES = typer.Option(None, "--examples", min=0, max=32,
                        help="Stored examples shown to the model, nearest the question first (0: none; "
                        "default 3 for ask, 0 for eval). Add them with `sqlwright examples add` or `learn`.")
EXAMPLES_MIN_SIMILARITY = typer.Option(None, "--examples-min-similarity", min=0, max=1,
                                       help="Show a stored example only when its question is at least this "
                                       "similar to the new one (cosine, 0-1; default 0).")
# The model server's limits (openai:NAME models), for `ask` and `eval`; see request_timeout in config.py.
REQUEST_TIMEOUT = typer.Option(None, "--request-timeout",
                               help="Seconds the model server has to finish one completion (default 120).")
CONNECT_TIMEOUT = typer.Option(None, "--connect-timeout",
                               help="Seconds the model server has to accept a connection (default 5).")
BASE_URL = typer.Option(None, "--base-url",
                        help="OpenAI-compatible server (with --model openai:NAME); default SQLWRIGHT_BASE_URL.")
LORA = typer.Option(None, "--lora", help="A LoRA adapter (a GGUF from `sqlwright train export`) applied to the "
                    "embedded model; default SQLWRIGHT_LORA.")


def pipeline_overrides(candidates: int | None, repair_rounds: int | None, no_linking: bool,
                       abstain_below: float | None, cot: bool, greedy: bool, no_values: bool = False,
                       repair_all: bool = False, all_candidates: bool = False,
                       examples: int | None = None, examples_min_similarity: float | None = None) -> dict:
    """The ask pipeline's options given on the command line (shared by `ask` and `eval`)."""
    from sqlwright.pipeline import AskOptions

    base = AskOptions.greedy() if greedy else AskOptions()
    values = base.model_dump()
    for key, value in {"candidates": candidates, "repair_rounds": repair_rounds,
                       "abstain_below": abstain_below, "examples": examples,
                       "examples_min_similarity": examples_min_similarity}.items():
        if value is not None:
            values[key] = value
    if no_linking:
        values["linking"] = False
    if no_values:
        values["values"] = False
    if repair_all:
        values["repair_when"] = "any-failure"
    if all_candidates:
        values["early_stop"] = False
    if cot:
        values["cot"] = True
    from pydantic import ValidationError

    try:
        AskOptions(**values)
    except ValidationError as exc:  # a flag's value outside the option's range (e.g. --candidates 65)
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        raise ConfigError(f"invalid {flag}: {err['msg']}") from exc
    return values


@app.command()
@handle_errors
def ask(
    db: str = typer.Argument(..., help=DB_HELP),
    question: str = typer.Argument(..., help="The question, in plain English."),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME."),
    lora: str = LORA,
    evidence: str = typer.Option(None, "--evidence", "--hint", help="Extra knowledge or instructions."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
    show_sql: bool = typer.Option(False, "--show-sql", help="Print the SQL above the table."),
    explain: bool = typer.Option(False, "--explain", help="Show candidates, results, votes, repairs, timings."),
    candidates: int = CANDIDATES,
    repair_rounds: int = REPAIR_ROUNDS,
    repair_all: bool = REPAIR_ALL,
    all_candidates: bool = ALL_CANDIDATES,
    no_linking: bool = NO_LINKING,
    no_values: bool = NO_VALUES,
    abstain_below: float = ABSTAIN_BELOW,
    cot: bool = COT,
    greedy: bool = GREEDY,
    examples: int = EXAMPLES,
    examples_min_similarity: float = EXAMPLES_MIN_SIMILARITY,
    timeout: float = typer.Option(None, "--timeout", help="Seconds allowed per SQL statement."),
    max_rows: int = typer.Option(None, "--max-rows", help="Rows returned at most."),
    base_url: str = BASE_URL,
    request_timeout: float = REQUEST_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Answer a question about a database: the model writes SQL, sqlwright runs it read-only."""
    from sqlwright.pipeline import AskOptions

    options = AskOptions(**pipeline_overrides(candidates, repair_rounds, no_linking, abstain_below, cot, greedy,
                                                    no_values, repair_all, all_candidates, examples,
                                                    examples_min_similarity))
    with _connect(db, model=model, options=options, timeout=timeout, max_rows=max_rows, base_url=base_url,
                  request_timeout=request_timeout, connect_timeout=connect_timeout, lora=lora) as conn:
        if fmt is not OutputFormat.json:
            with err_console.status("thinking…"):
                answer = conn.ask(question, evidence=evidence)
        else:
            answer = conn.ask(question, evidence=evidence)
    if fmt is OutputFormat.json:
        print_json(answer.to_dict())
        return
    if explain:
        _print_explain(answer)
    if answer.abstained:
        print_error(answer.reason, label="no answer", style="yellow")
        raise typer.Exit(1)
    if show_sql or explain:
        console.print(Syntax(answer.sql or "", "sql", word_wrap=True))
    print_rows(answer.columns, answer.rows, fmt)
    if answer.truncated:
        err_console.print(f"[dim](first {len(answer.rows)} rows; raise --max-rows for more)[/]")


def _print_explain(answer) -> None:
    from rich.table import Table

    table = Table(title="candidates", show_lines=True)
    for col in ("#", "origin", "group", "result", "SQL"):
        table.add_column(col, overflow="fold")
    for i, c in enumerate(answer.candidates):
        result = c.error if c.error else f"{len(c.rows or ())} rows"
        table.add_row(str(i), c.origin, "" if c.group is None else str(c.group), result, c.sql)
    err_console.print(table)
    if answer.examples or answer.notes:
        shown = Table(title="examples and notes shown to the model", show_lines=True)
        for col in ("id", "kind", "similarity", "text"):
            shown.add_column(col, overflow="fold")
        for d in answer.examples:
            shown.add_row(str(d.id), d.source, f"{d.similarity:.2f}", f"{d.question}\n{d.sql}")
        for n in answer.notes:
            shown.add_row(str(n.id), "note", f"{n.similarity:.2f}", n.text)
        err_console.print(shown)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in answer.timings.items())
    undrawn = f" ({answer.undrawn} not drawn: the vote was decided)" if answer.undrawn else ""
    err_console.print(Panel(f"confidence {answer.confidence:.2f}{undrawn} · tokens {answer.prompt_tokens} in / "
                            f"{answer.completion_tokens} out · {timings}", title="vote"))


SQL_HELP = ("One read-only SQL statement; '-' reads it from standard input. SQL that starts with '-' (a "
            "comment) would be taken for an option: give it with --query, --file, or after a lone --.")


def read_statement(statement: str | None, query: str | None, file: Path | None) -> str:
    """The statement given as the argument, --query or --file ('-' in either place: standard input)."""
    given = [name for name, value in (("the SQL argument", statement), ("--query", query), ("--file", file))
             if value is not None]
    if len(given) > 1:
        raise UserError(f"give the SQL once: {' and '.join(given)} were both given")
    if not given:
        raise UserError("no SQL given: sqlwright sql DB \"SELECT …\", --query \"…\", --file F, or - for stdin")
    if file is not None and str(file) != "-":
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UserError(f"SQL file not found: {file}") from None
        except IsADirectoryError:
            raise UserError(f"{file} is a folder, not a SQL file") from None
        except UnicodeDecodeError:
            raise UserError(f"{file} is not UTF-8 text") from None
        except OSError as exc:
            raise UserError(f"cannot read {file}: {exc.strerror or exc}") from exc
    elif file is not None or statement == "-" or query == "-":
        if sys.stdin.isatty():
            raise UserError("'-' reads the SQL from standard input, but it is a terminal: pipe the SQL in")
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise UserError("standard input is not UTF-8 text") from None
    else:
        text = statement if statement is not None else query
    if not text or not text.strip():
        raise UserError("the SQL is empty")
    return text


@app.command()
@handle_errors
def sql(
    db: str = typer.Argument(..., help=DB_HELP),
    statement: str = typer.Argument(None, help=SQL_HELP, show_default=False),
    query: str = typer.Option(None, "--query", "-q", help="The statement, as an option's value "
                              "(for SQL that starts with a comment: --query='-- note …')."),
    file: Path = typer.Option(None, "--file", help="Read the statement from this file ('-': standard input)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds allowed for the statement."),
    max_rows: int = typer.Option(None, "--max-rows", help="Rows returned at most."),
) -> None:
    """Run SQL you wrote, through the same guard, timeout and row cap as the model's SQL."""
    text = read_statement(statement, query, file)
    with _connect(db, timeout=timeout, max_rows=max_rows) as conn:
        result = conn.sql(text)
    if fmt is OutputFormat.json:
        print_json({"sql": text, "columns": list(result.columns), "rows": [list(r) for r in result.rows],
                    "truncated": result.truncated, "seconds": result.seconds})
        return
    print_rows(result.columns, result.rows, fmt)
    if result.truncated:
        err_console.print(f"[dim](first {len(result.rows)} rows; raise --max-rows for more)[/]")


class SchemaFormat(StrEnum):
    text = "text"
    ddl = "ddl"
    json = "json"


@app.command()
@handle_errors
def schema(
    db: str = typer.Argument(..., help=DB_HELP),
    fmt: SchemaFormat = typer.Option(SchemaFormat.text, "--format", "-f", help="text (as the model sees it), ddl or json."),
    samples: int = typer.Option(3, "--samples", min=0, help="Sample values per column."),
) -> None:
    """Show a database's schema: tables, columns, keys, comments, sample values."""
    from dataclasses import asdict

    from sqlwright.db import render_ddl, render_schema
    from sqlwright.pipeline.ask import require_tables

    with _connect(db) as conn:
        sch = require_tables(conn.database.schema(samples=samples), conn.database.url)
    if fmt is SchemaFormat.json:
        print_json(asdict(sch))
    elif fmt is SchemaFormat.ddl:
        console.print(render_ddl(sch), markup=False, highlight=False)
    else:
        console.print(render_schema(sch), markup=False, highlight=False)


@app.command()
@handle_errors
def sample() -> None:
    """Build (if needed) the bundled sample database and print its path."""
    from sqlwright.config import load_settings
    from sqlwright.sample import sample_database_path

    typer.echo(str(sample_database_path(load_settings().cache_dir)))


