"""`sqlwright examples add|list|remove|import|export|check` and `sqlwright notes add|list|remove`: what
sqlwright remembers about a database, in the state directory (SQLWRIGHT_STATE_DIR)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

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
from sqlwright.cli.ask import DB_HELP, _connect
from sqlwright.errors import UserError

examples_app = typer.Typer(
    help="Examples for a database: questions with the SQL that answers them, shown to the model by ask.",
    no_args_is_help=True,
)
notes_app = typer.Typer(
    help="Notes for a database: business definitions and instructions, shown to the model by ask.",
    no_args_is_help=True,
)
app.add_typer(examples_app, name="examples")
app.add_typer(notes_app, name="notes")

TIMEOUT = typer.Option(None, "--timeout", help="Seconds allowed per SQL statement.")
MAX_ROWS = typer.Option(None, "--max-rows", help="Rows read per statement at most.")
FORMAT = typer.Option(OutputFormat.table, "--format", "-f", help="Output format.")

# Fields of an exported example; an imported row's other fields are kept in its provenance.
EXPORT_FIELDS = ("question", "sql", "source", "verified", "provenance", "created")
_NOT_PROVENANCE = frozenset({*EXPORT_FIELDS, "id", "schema_fingerprint"})


def _progress(total: int, label: str):
    """A progress bar on stderr, shown on a terminal only (pipes and logs stay clean)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True, disable=total < 2 or not err_console.is_terminal)


def _short(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- examples --------------------------------------------------------------------------------------
@examples_app.command("add")
@handle_errors
def add(
    db: str = typer.Argument(..., help=DB_HELP),
    question: str = typer.Argument(..., help="The question, in plain English."),
    sql: str = typer.Argument(..., help="The SQL that answers it (it must pass the guard and run)."),
    fmt: OutputFormat = FORMAT,
    timeout: float = TIMEOUT,
    max_rows: int = MAX_ROWS,
) -> None:
    """Teach an example: the SQL is checked (guard, then run read-only) and stored for this database."""
    with _connect(db, timeout=timeout, max_rows=max_rows) as conn:
        known = {e.id for e in conn.examples()}
        example = conn.teach(question, sql)
    _report_stored("example", example, known, fmt)


def _report_stored(kind: str, item, known: set[int], fmt: OutputFormat) -> None:
    """What `add` stored: the item as JSON (with "new"), or one line saying whether it was already there."""
    if fmt is OutputFormat.json:
        print_json({**item.to_dict(), "new": item.id not in known})
    elif item.id in known:
        console.print(f"already stored as {kind} {item.id}", markup=False, highlight=False)
    else:
        console.print(f"stored {kind} {item.id}", markup=False, highlight=False)


@examples_app.command("list")
@handle_errors
def list_(db: str = typer.Argument(..., help=DB_HELP), fmt: OutputFormat = FORMAT) -> None:
    """The examples stored for a database (and for copies of it with the same schema)."""
    with _connect(db) as conn:
        key, _ = conn.identity()
        examples = conn.examples()
    if fmt is OutputFormat.json:
        print_json([e.to_dict() for e in examples])
        return
    if fmt is OutputFormat.csv:
        print_rows(["id", "source", "verified", "question", "sql", "database"],
                   [[e.id, e.source, e.verified, e.question, e.sql, e.database] for e in examples], fmt)
        return
    print_rows(["id", "source", "verified", "question", "SQL"],
               [[e.id, e.source, "yes" if e.verified else "no", e.question, e.sql] for e in examples], fmt)
    elsewhere = sum(e.database != key for e in examples)
    if elsewhere:
        err_console.print(f"[dim]({elsewhere} stored for another database with the same schema)[/]")


@examples_app.command("remove")
@handle_errors
def remove(db: str = typer.Argument(..., help=DB_HELP),
           example_id: int = typer.Argument(..., metavar="ID", help="The example's id (examples list).")) -> None:
    """Delete a stored example."""
    with _connect(db) as conn:
        key, fingerprint = conn.identity()
        if not conn.store.remove_example(key, example_id, schema_fingerprint=fingerprint):
            raise UserError(f"no example {example_id} is stored for {conn.database.url} (see: sqlwright examples list)")
    console.print(f"removed example {example_id}", markup=False, highlight=False)


@dataclass(frozen=True)
class _Row:
    line: int
    data: object


def read_jsonl(file: Path) -> list[_Row]:
    """The JSON values of a JSON Lines file ('-': standard input), with their line numbers; blank lines
    are skipped. A file that cannot be read, or a line that is not JSON, is one UserError."""
    if str(file) == "-":
        name = "standard input"
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise UserError("standard input is not UTF-8 text (JSON Lines expected)") from None
    else:
        name = str(file)
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UserError(f"examples file not found: {file}") from None
        except IsADirectoryError:
            raise UserError(f"{file} is a folder, not an examples file") from None
        except UnicodeDecodeError:
            raise UserError(f"{file} is not UTF-8 text (JSON Lines expected)") from None
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
            raise UserError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(_Row(number, json.loads(line)))
        except ValueError as exc:
            raise UserError(f"{name} is not JSON Lines: line {number} is not JSON ({exc}); nothing was "
                            "imported") from None
    if not rows:
        raise UserError(f"{name} holds no examples (JSON Lines with question and sql expected)")
    return rows


def _example_fields(data: object) -> dict:
    """teach()'s keywords from one imported row: question, sql, source, verified, created, provenance (the
    row's `provenance` object plus any fields sqlwright does not know: style, complexity, …)."""
    if not isinstance(data, dict):
        raise UserError(f"a JSON object with question and sql expected, not {type(data).__name__}")
    missing = [k for k in ("question", "sql") if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise UserError(f"no {' and no '.join(missing)}")
    verified = data.get("verified", True)
    if not isinstance(verified, bool):
        raise UserError(f"verified must be true or false, not {verified!r}")
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise UserError("provenance must be a JSON object")
    extra = {k: v for k, v in data.items() if k not in _NOT_PROVENANCE}
    created = data.get("created")
    if created is not None and (isinstance(created, bool) or not isinstance(created, int | float)):
        raise UserError(f"created must be seconds since the epoch, not {created!r}")
    return {"question": data["question"], "sql": data["sql"], "source": data.get("source", "taught"),
            "verified": verified, "provenance": {**extra, **provenance}, "created": created}


@examples_app.command("import")
@handle_errors
def import_(
    db: str = typer.Argument(..., help=DB_HELP),
    file: Path = typer.Argument(..., help="JSON Lines: question and sql per line; optional source, verified, "
                                "provenance (other fields are kept in provenance); '-': standard input."),
    timeout: float = TIMEOUT,
    max_rows: int = MAX_ROWS,
) -> None:
    """Import examples; each is checked like `examples add`, and one that fails is reported and skipped."""
    rows = read_jsonl(file)
    added = again = skipped = 0
    with _connect(db, timeout=timeout, max_rows=max_rows) as conn:
        known = {e.id for e in conn.examples()}
        with _progress(len(rows), "import") as progress:
            task = progress.add_task("import", total=len(rows))
            for row in rows:
                try:
                    example = conn.teach(**_example_fields(row.data))
                except UserError as exc:
                    skipped += 1
                    print_error(f"line {row.line}: {exc}", label="skipped", style="yellow")
                else:
                    if example.id in known:
                        again += 1
                    else:
                        added += 1
                        known.add(example.id)
                progress.advance(task)
    console.print(f"imported {added} new, {again} already stored, {skipped} skipped", markup=False,
                  highlight=False)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator:
    """Standard output, or `path` written whole or not at all (a temporary file renamed into place)."""
    if path is None:
        yield sys.stdout
        return
    path = Path(path)
    if not path.name:
        raise UserError(f"--output names no file: {str(path)!r}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        handle = tmp.open("w", encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise UserError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        with handle:
            yield handle
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


@examples_app.command("export")
@handle_errors
def export(
    db: str = typer.Argument(..., help=DB_HELP),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file (default: standard output)."),
) -> None:
    """Export the examples as JSON Lines, the form `examples import` reads.

    One object per line: question, sql, source, verified, provenance, created."""
    with _connect(db) as conn:
        examples = conn.examples()
    with _output(output) as out:
        for example in examples:
            record = example.to_dict()
            out.write(json.dumps({k: record[k] for k in EXPORT_FIELDS}, ensure_ascii=False) + "\n")
    if output is not None:
        err_console.print(f"{len(examples)} examples written to {output}", markup=False, highlight=False)


@examples_app.command("check")
@handle_errors
def check(
    db: str = typer.Argument(..., help=DB_HELP),
    fmt: OutputFormat = FORMAT,
    timeout: float = TIMEOUT,
    max_rows: int = MAX_ROWS,
) -> None:
    """Run every stored example's SQL: report those that no longer run and those stored under another schema.

    Exit code 1 when any no longer runs (a column or table they use was dropped or renamed)."""
    from sqlwright.errors import ExampleRejected

    report = []
    with _connect(db, timeout=timeout, max_rows=max_rows) as conn:
        _, fingerprint = conn.identity()
        examples = conn.examples()
        with _progress(len(examples), "check") as progress:
            task = progress.add_task("check", total=len(examples))
            for example in examples:
                try:
                    conn.check_example_sql(example.sql)
                    error = None
                except ExampleRejected as exc:
                    error = str(exc)
                report.append({"id": example.id, "ok": error is None, "error": error,
                               "schema_changed": example.schema_fingerprint != fingerprint,
                               "question": example.question, "sql": example.sql})
                progress.advance(task)
    failed = [r for r in report if not r["ok"]]
    if fmt is OutputFormat.json:
        print_json({"examples": len(report), "failed": len(failed), "results": report})
    else:
        print_rows(["id", "status", "schema", "question", "reason"],
                   [[r["id"], "ok" if r["ok"] else "FAILS", "changed since stored" if r["schema_changed"] else "same",
                     _short(r["question"], 60), r["error"] or ""] for r in report], fmt)
        if fmt is OutputFormat.table:
            changed = sum(r["schema_changed"] for r in report)
            err_console.print(f"{len(report)} examples: {len(failed)} no longer run; {changed} stored under "
                              "another schema", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


# --- notes -----------------------------------------------------------------------------------------
@notes_app.command("add")
@handle_errors
def add_note(
    db: str = typer.Argument(..., help=DB_HELP),
    text: str = typer.Argument(..., help='The note, e.g. "an active customer ordered in the last 90 days".'),
    fmt: OutputFormat = FORMAT,
) -> None:
    """Store a note for a database."""
    with _connect(db) as conn:
        known = {n.id for n in conn.notes()}
        note = conn.add_note(text)
    _report_stored("note", note, known, fmt)


@notes_app.command("list")
@handle_errors
def list_notes(db: str = typer.Argument(..., help=DB_HELP), fmt: OutputFormat = FORMAT) -> None:
    """The notes stored for a database (and for copies of it with the same schema)."""
    with _connect(db) as conn:
        notes = conn.notes()
    if fmt is OutputFormat.json:
        print_json([n.to_dict() for n in notes])
        return
    print_rows(["id", "note"], [[n.id, n.text] for n in notes], fmt)


@notes_app.command("remove")
@handle_errors
def remove_note(db: str = typer.Argument(..., help=DB_HELP),
                note_id: int = typer.Argument(..., metavar="ID", help="The note's id (notes list).")) -> None:
    """Delete a stored note."""
    with _connect(db) as conn:
        key, fingerprint = conn.identity()
        if not conn.store.remove_note(key, note_id, schema_fingerprint=fingerprint):
            raise UserError(f"no note {note_id} is stored for {conn.database.url} (see: sqlwright notes list)")
    console.print(f"removed note {note_id}", markup=False, highlight=False)
