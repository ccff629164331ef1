"""`sqlwright chat DB`: a terminal conversation with a database.

Each question may follow up on the earlier ones ("and in 2023?"): the session's questions and their SQL go
to the model as turns. Lines starting with a backslash are commands (`\\help` lists them). A question that
fails prints one error line and the conversation goes on; Ctrl-C cancels the question in progress (the model
stops at its next token, or after the request in flight for a model server), Ctrl-D quits. With a terminal,
line editing and a history kept in the state directory (readline, where Python has it).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.syntax import Syntax

from sqlwright.cli.app import OutputFormat, app, console, err_console, handle_errors, print_error, print_rows
from sqlwright.cli.ask import (
    ABSTAIN_BELOW,
    BASE_URL,
    CANDIDATES,
    CONNECT_TIMEOUT,
    DB_HELP,
    EXAMPLES,
    GREEDY,
    REQUEST_TIMEOUT,
    _connect,
    _print_explain,
    pipeline_overrides,
)
from sqlwright.errors import Cancelled, SqlwrightError

if TYPE_CHECKING:
    from sqlwright.api import Connection
    from sqlwright.pipeline import Answer, Turn

log = logging.getLogger(__name__)

PROMPT = "ask> "
HISTORY_FILE = "chat_history"  # in the state directory
HISTORY_LENGTH = 1000  # lines kept
SHOWN_ROWS = 50  # rows printed per answer; the rest are counted
_POLL = 0.1  # seconds between checks of a question in progress (Ctrl-C is seen in between)

HELP = """\
Ask a question about the data in plain words; a follow-up may refer to the earlier ones ("and in 2023?").
Commands:
  \\sql SELECT …   run SQL you wrote (the same read-only guard, timeout and row cap as the model's)
  \\schema [NAME]  the schema as the model sees it (only tables whose name contains NAME)
  \\explain        the last answer's candidates, votes, examples and timings
  \\examples       the examples and notes stored for this database
  \\new            start a new conversation (forget the earlier questions)
  \\help           this help
  \\quit           leave (or Ctrl-D); Ctrl-C cancels the question in progress"""


@dataclass
class ChatSession:
    """One conversation over a Connection: what the REPL's lines do."""

    conn: Connection
    summarize: bool = False
    turns: list[Turn] = field(default_factory=list)
    last: Answer | None = None

    # --- lines -----------------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Do what `line` says; False when the session should end. Errors print one line and return True."""
        text = line.strip()
        if not text:
            return True
        try:
            if text.startswith("\\"):
                try:
                    return self.command(text)
                except KeyboardInterrupt:  # a long \sql: back to the prompt (the statement has its timeout)
                    err_console.print("[yellow]interrupted[/]", highlight=False)
                    return True
            self.ask(text)
        except Cancelled:
            err_console.print("[yellow]cancelled[/]", highlight=False)
        except SqlwrightError as exc:
            print_error(exc)
        return True

    def command(self, text: str) -> bool:
        name, _, argument = text.partition(" ")
        name, argument = name.lower(), argument.strip()
        commands: dict[str, Callable[[str], None]] = {
            "\\sql": self.run_sql, "\\schema": self.show_schema, "\\explain": self.explain,
            "\\examples": self.show_examples, "\\new": self.new, "\\help": self.help,
        }
        if name in ("\\quit", "\\q", "\\exit"):
            return False
        action = commands.get(name)
        if action is None:
            print_error(f"unknown command {name}; \\help lists the commands")
        else:
            action(argument)
        return True

    # --- questions -------------------------------------------------------------------------------
    def ask(self, question: str) -> None:
        """Answer `question` as a follow-up of the session's turns, in a worker thread so that Ctrl-C can
        cancel it cleanly (the pipeline stops at its next poll of the cancel flag)."""
        from sqlwright.pipeline import Turn

        stop = threading.Event()
        done = threading.Event()
        outcome: dict[str, object] = {}
        status = err_console.status("thinking…")

        def on_event(kind: str, data: dict) -> None:
            if kind == "candidate":
                status.update(f"candidate {data.get('origin')}: {'ran' if data.get('ok') else 'failed'}…")
            elif kind in ("repair", "vote", "summary"):
                status.update(f"{kind}…")

        def work() -> None:
            try:
                outcome["answer"] = self.conn.ask(question, turns=tuple(self.turns), on_event=on_event,
                                                  cancel=stop.is_set, summarize=self.summarize)
            except BaseException as exc:  # handed to the main thread, which reports it
                outcome["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=work, name="sqlwright-chat-ask", daemon=True)
        with status:
            worker.start()
            _wait(done, stop)
        error = outcome.get("error")
        if isinstance(error, BaseException):
            raise error
        answer: Answer = outcome["answer"]  # type: ignore[assignment]
        self.last = answer
        if answer.abstained:
            print_error(answer.reason, label="no answer", style="yellow")
            return
        self.turns.append(Turn(question, answer.sql))
        if answer.summary:
            console.print(answer.summary, markup=False, highlight=False)
        console.print(Syntax(answer.sql or "", "sql", word_wrap=True))
        self._print_result(answer.columns, answer.rows, answer.truncated)

    def _print_result(self, columns: tuple[str, ...], rows: tuple[tuple, ...], truncated: bool) -> None:
        print_rows(columns, rows[:SHOWN_ROWS], OutputFormat.table)
        if len(rows) > SHOWN_ROWS:
            err_console.print(f"[dim]({SHOWN_ROWS} of {len(rows)} rows shown)[/]")
        if truncated:
            err_console.print(f"[dim](the result was cut at {len(rows)} rows; raise --max-rows for more)[/]")

    # --- commands --------------------------------------------------------------------------------
    def run_sql(self, sql: str) -> None:
        if not sql:
            print_error("\\sql needs a statement: \\sql SELECT …")
            return
        result = self.conn.sql(sql)
        self._print_result(result.columns, result.rows, result.truncated)

    def show_schema(self, name: str) -> None:
        from sqlwright.db import render_schema
        from sqlwright.pipeline.ask import require_tables

        schema = require_tables(self.conn.schema(), self.conn.database.url)
        if name:
            tables = tuple(t for t in schema.tables if name.lower() in t.name.lower())
            if not tables:
                print_error(f"no table's name contains {name!r}")
                return
            schema = replace(schema, tables=tables)
        console.print(render_schema(schema), markup=False, highlight=False)

    def explain(self, _: str) -> None:
        if self.last is None:
            print_error("nothing to explain yet: ask a question first")
            return
        _print_explain(self.last)

    def show_examples(self, _: str) -> None:
        from rich.table import Table

        examples, notes = self.conn.examples(), self.conn.notes()
        if not examples and not notes:
            err_console.print("no examples or notes stored for this database "
                              "(sqlwright examples add, sqlwright learn)", highlight=False)
            return
        table = Table(title="examples and notes", show_lines=True)
        for column in ("id", "kind", "question or note", "SQL"):
            table.add_column(column, overflow="fold")
        for example in examples:
            table.add_row(str(example.id), example.source, example.question, example.sql)
        for note in notes:
            table.add_row(str(note.id), "note", note.text, "")
        console.print(table)

    def new(self, _: str) -> None:
        self.turns.clear()
        err_console.print("[dim]new conversation[/]")

    def help(self, _: str) -> None:
        console.print(HELP, markup=False, highlight=False)


def _wait(done: threading.Event, stop: threading.Event) -> None:
    """Wait until the question's worker is `done`. The first Ctrl-C asks it to stop and goes on waiting (it
    stops at its next poll); a second one leaves the chat, since the engine may not be used while it runs."""
    # Sleep-and-check rather than Thread.join or Event.wait: a KeyboardInterrupt that lands inside join()
    # can leave the thread looking finished while it still runs (CPython before 3.13).
    while not done.is_set():
        try:
            time.sleep(_POLL)
        except KeyboardInterrupt:
            if stop.is_set():
                raise
            stop.set()
            err_console.print("[yellow]cancelling… (Ctrl-C again to quit)[/]", highlight=False)


# --- the REPL ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def line_history(state_dir: Path) -> Iterator[None]:
    """Readline history in `state_dir` while the REPL runs (nothing without readline or a terminal)."""
    try:
        import readline
    except ImportError:  # Windows, or a Python built without it: plain input()
        yield
        return
    path = state_dir / HISTORY_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if path.exists():
            readline.read_history_file(path)
    except OSError as exc:
        log.warning("no chat history: %s", exc)
    readline.set_history_length(HISTORY_LENGTH)
    try:
        yield
    finally:
        try:
            readline.write_history_file(path)
        except OSError as exc:
            log.warning("chat history not saved: %s", exc)


def read_lines(interactive: bool) -> Iterator[str]:
    """The user's lines until Ctrl-D (end of input); Ctrl-C at the prompt drops the line being typed."""
    while True:
        try:
            yield input(PROMPT if interactive else "")
        except EOFError:
            if interactive:
                err_console.print()
            return
        except KeyboardInterrupt:
            err_console.print()


def run_repl(session: ChatSession, *, interactive: bool) -> None:
    """Feed the user's lines to `session` until \\quit or the end of input."""
    for line in read_lines(interactive):
        if not session.handle(line):
            return


@app.command()
@handle_errors
def chat(
    db: str = typer.Argument(..., help=DB_HELP),
    model: str = typer.Option(None, "--model", "-m", help="Model name, .gguf path or openai:NAME."),
    summarize: bool = typer.Option(False, "--summarize", help="Also answer each question in one sentence."),
    candidates: int = CANDIDATES,
    greedy: bool = GREEDY,
    examples: int = EXAMPLES,
    abstain_below: float = ABSTAIN_BELOW,
    timeout: float = typer.Option(None, "--timeout", help="Seconds allowed per SQL statement."),
    max_rows: int = typer.Option(None, "--max-rows", help="Rows returned at most."),
    base_url: str = BASE_URL,
    request_timeout: float = REQUEST_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Talk to a database: questions with follow-ups, \\sql, \\schema, \\explain, \\examples (\\help lists them)."""
    from sqlwright.db import database_key
    from sqlwright.pipeline import AskOptions
    from sqlwright.pipeline.ask import require_tables

    options = AskOptions(**pipeline_overrides(candidates, None, False, abstain_below, False, greedy,
                                              examples=examples))
    with _connect(db, model=model, options=options, timeout=timeout, max_rows=max_rows, base_url=base_url,
                  request_timeout=request_timeout, connect_timeout=connect_timeout) as conn:
        schema = require_tables(conn.schema(), conn.database.url)
        interactive = sys.stdin.isatty()
        # The database's key, not its URL: a URL may hold a password.
        err_console.print(f"[dim]{database_key(conn.database)}: {len(schema.tables)} tables. "
                          "Ask a question, or \\help.[/]", highlight=False)
        session = ChatSession(conn, summarize=summarize)
        with line_history(conn.settings.state_dir) if interactive else contextlib.nullcontext():
            run_repl(session, interactive=interactive)
