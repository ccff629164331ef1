"""The Typer application and what every command shares: error handling, output formats, the console."""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sqlwright.errors import SqlwrightError

app = typer.Typer(
    name="sqlwright",
    help="Self-hosted text-to-SQL: ask your own database in English with open models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

console = Console()
err_console = Console(stderr=True)

_state: dict[str, Any] = {"debug": False}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show progress logs."),
) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def one_line(text: object) -> str:
    """`text` on one line: line breaks and runs of blanks become one space (a message may quote SQL or a
    server's multi-line reply)."""
    return " ".join(str(text).split())


def print_error(message: object, *, label: str = "error", style: str = "bold red") -> None:
    """One line on stderr, whatever the terminal's width: never wrapped (logs and pipes keep it whole),
    and the message's own brackets are text, not Rich markup."""
    err_console.print(f"[{style}]{label}:[/] {escape(one_line(message))}", markup=True, highlight=False,
                      soft_wrap=True)


def handle_errors(func: Callable) -> Callable:
    """Turn sqlwright errors (and Ctrl-C) into one readable line and the right exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SqlwrightError as exc:
            if _state["debug"]:
                raise
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted", soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def jsonable(value: object) -> object:
    """JSON-safe form of a cell value (decimals, dates, bytes)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    try:
        import decimal

        if isinstance(value, decimal.Decimal):
            return float(value)
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[object]], fmt: OutputFormat,
               title: str | None = None) -> None:
    """Rows as a Rich table or CSV (JSON is the caller's, since it carries more than rows)."""
    if fmt is OutputFormat.csv:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else _cell(v) for v in row])
        sys.stdout.write(buf.getvalue())
        return
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(str(col), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
