"""What a server does, without HTTP: one per process, shared by every request.

    service = Service(DatabaseSet.open(["sample"], settings), load_llm(settings.model, settings),
                      open_state_store(settings), settings, queue_size=8, deadline=120)

It holds the databases (by name), ONE Engine with its model behind ONE worker thread (worker.py: a bounded
queue, a deadline per request, cancellation), and the state store (examples, notes, history, feedback).
Model work goes through the worker; everything else (SQL a person sends, schema, history, examples) runs in
the caller's thread: the databases and the store are safe to share between threads.

Every ask and every SQL run is recorded in the history (the store's add_history); the HTTP layer (app.py)
records an answer when it hands it to its client, so that the history holds exactly the answers given.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlwright import __version__
from sqlwright.config import Settings
from sqlwright.db import Database, check_sql, database_key, render_schema, schema_fingerprint
from sqlwright.errors import ExampleRejected, QueryFailed, QueryRefused, UserError
from sqlwright.llm.base import LLM
from sqlwright.pipeline import Answer, AskOptions, Engine
from sqlwright.pipeline.ask import checked_question, require_tables
from sqlwright.pipeline.chart import chart_spec
from sqlwright.pipeline.conversation import MAX_TURNS, Turn
from sqlwright.serve.databases import DatabaseSet, UnknownDatabase
from sqlwright.serve.worker import Job, ModelWorker
from sqlwright.store import StateStore
from sqlwright.store.jsonsafe import json_safe
from sqlwright.store.types import HistoryEntry, StoredExample

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict], None]
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would run as a formula


class NotFound(UserError):
    """A history entry, example or note the client named does not exist (HTTP 404)."""


@dataclass(frozen=True)
class AskPlan:
    """A question checked and ready for the model: which database, the words, the conversation so far."""

    name: str  # the database's name on this server
    db: Database
    key: str  # its database key (what history and examples are stored under)
    question: str
    evidence: str | None
    conversation_id: str
    turns: tuple[Turn, ...]
    summarize: bool


class Service:
    """The databases, one model (behind one worker thread) and the state store of one server.

    The service owns what it is given: `close()` stops the worker and closes the databases and the store."""

    def __init__(self, databases: DatabaseSet, llm: LLM, store: StateStore, settings: Settings, *,
                 options: AskOptions | None = None, queue_size: int = 8, deadline: float = 120.0,
                 summarize: bool = False, model_name: str | None = None, history_rows: int = 1000) -> None:
        if deadline <= 0:
            raise UserError(f"the deadline must be a positive number of seconds, not {deadline}")
        if queue_size < 0:
            raise UserError(f"the queue size must be 0 or more, not {queue_size}")
        self.databases = databases
        self.settings = settings
        self.store = store
        self.engine = Engine(llm, options, cache_dir=settings.cache_dir,
                             max_question_chars=settings.max_question_chars, store=store)
        self.deadline = float(deadline)
        self.summarize = summarize
        self.model_name = model_name or getattr(llm, "name", None) or settings.model
        self.history_rows = history_rows
        self._keys = {name: database_key(db) for name, db in databases.items()}
        self._names_by_key = {key: name for name, key in self._keys.items()}
        self.worker = ModelWorker(queue_size)

    # --- databases --------------------------------------------------------------------------------
    def database(self, name: str | None) -> tuple[str, Database]:
        """(name, database) for the name a client sent; the only database when none is named."""
        db = self.databases.get(name)
        if not name:
            name = self.databases.names[0]
        return name, db

    def identity(self, name: str, db: Database) -> tuple[str, str]:
        """(database key, schema fingerprint): what examples and notes are stored under."""
        return self._keys[name], schema_fingerprint(db.schema())

    def info(self, *, token_required: bool) -> dict[str, Any]:
        return {"name": "sqlwright", "version": __version__, "model": self.model_name,
                "databases": self.databases.names, "read_only": True, "token_required": token_required,
                "queue": {"size": self.worker.queue_size, "waiting": self.worker.waiting,
                          "busy": self.worker.busy},
                "deadline_seconds": self.deadline, "summarize": self.summarize,
                "max_question_chars": self.settings.max_question_chars, "max_rows": self.settings.max_rows,
                "timeout_seconds": self.settings.timeout}

    def database_list(self) -> dict[str, Any]:
        return {"databases": [{"name": name, "dialect": db.dialect, "tables": len(db.schema().tables)}
                              for name, db in self.databases.items()]}

    def schema(self, name: str | None) -> dict[str, Any]:
        name, db = self.database(name)
        schema = require_tables(db.schema(), db.url)
        return json_safe({"db": name, "dialect": db.dialect, "tables": asdict(schema)["tables"],
                          "text": render_schema(schema)})

    # --- ask ----------------------------------------------------------------------------------------
    def prepare_ask(self, db: str | None, question: object, *, evidence: object = None,
                    conversation_id: str | None = None, summarize: bool | None = None) -> AskPlan:
        """Check what the client sent (UserError otherwise) and gather the conversation's earlier turns."""
        name, database = self.database(db)
        question, evidence = checked_question(question, evidence, self.settings.max_question_chars)
        require_tables(database.schema(), database.url)
        key = self._keys[name]
        turns: tuple[Turn, ...] = ()
        if conversation_id:
            earlier = self.store.conversation(conversation_id, limit=MAX_TURNS)
            turns = tuple(Turn(e.question, e.sql) for e in earlier
                          if e.database == key and e.source == "ask" and e.sql)
        return AskPlan(name, database, key, question, evidence, conversation_id or uuid.uuid4().hex, turns,
                       self.summarize if summarize is None else bool(summarize))

    def submit_ask(self, plan: AskPlan, *, on_event: EventCallback | None = None) -> Job:
        """Queue the question for the model (QueueFull when the queue is full); the job's result is an Answer."""

        def work(should_stop: Callable[[], bool]) -> Answer:
            return self.engine.ask(plan.db, plan.question, evidence=plan.evidence, turns=plan.turns,
                                   on_event=on_event, cancel=should_stop, summarize=plan.summarize)

        return self.worker.submit(work, deadline=time.monotonic() + self.deadline)

    def record_ask(self, plan: AskPlan, answer: Answer) -> dict[str, Any]:
        """Store the answer in the history and return the API's answer: {id, db, question, sql, …}."""
        chart = answer.chart
        entry = self._add_history(
            database=plan.key, label=plan.name, question=answer.question, sql=answer.sql,
            columns=answer.columns, rows=answer.rows, truncated=answer.truncated, confidence=answer.confidence,
            abstained=answer.abstained, reason=answer.reason, conversation_id=plan.conversation_id,
            summary=answer.summary, chart=chart, timings=answer.timings, source="ask")
        data = answer.to_dict()
        return json_safe({
            "id": entry.id if entry else None, "db": plan.name, "question": answer.question, "sql": answer.sql,
            "columns": list(answer.columns), "rows": [list(r) for r in answer.rows], "truncated": answer.truncated,
            "confidence": answer.confidence, "abstained": answer.abstained, "reason": answer.reason,
            "candidates": data["candidates"], "chart": chart, "summary": answer.summary,
            "timings": answer.timings, "conversation_id": plan.conversation_id, "examples": data["examples"],
            "notes": data["notes"]})

    def _add_history(self, **fields: Any) -> HistoryEntry | None:
        """The stored entry; None (with a warning) when the store fails: the answer still goes out."""
        try:
            return self.store.add_history(max_rows=self.history_rows, **fields)
        except UserError as exc:
            log.warning("the answer was not recorded in the history: %s", exc)
            return None

    # --- SQL a person wrote ----------------------------------------------------------------------------
    def run_sql(self, db: str | None, sql: object) -> dict[str, Any]:
        """Run one statement through the guard, timeout and row cap, and record it in the history."""
        name, database = self.database(db)
        text = _statement(sql)
        result = database.execute(text, timeout=self.settings.timeout, max_rows=self.settings.max_rows)
        spec = chart_spec(result.columns, result.rows, truncated=result.truncated)
        chart = spec.to_dict() if spec is not None else None
        entry = self._add_history(database=self._keys[name], label=name, question="", sql=text,
                                  columns=result.columns, rows=result.rows, truncated=result.truncated,
                                  confidence=1.0, chart=chart, timings={"execute": result.seconds}, source="sql")
        return json_safe({"id": entry.id if entry else None, "db": name, "sql": text,
                          "columns": list(result.columns), "rows": [list(r) for r in result.rows],
                          "truncated": result.truncated, "seconds": result.seconds, "chart": chart})

    def validate_sql(self, db: str | None, sql: object) -> dict[str, Any]:
        """Whether the guard accepts the statement (it is not run)."""
        name, database = self.database(db)
        try:
            check_sql(sql if isinstance(sql, str) else "", database.dialect)
        except QueryRefused as exc:
            return {"db": name, "valid": False, "detail": _line(exc)}
        return {"db": name, "valid": True, "detail": None}

    # --- history ------------------------------------------------------------------------------------
    def history(self, *, db: str | None = None, conversation_id: str | None = None, limit: int = 50,
                before: str | None = None) -> dict[str, Any]:
        key = self._keys[self.database(db)[0]] if db else None
        entries = self.store.history(database=key, conversation_id=conversation_id, limit=limit, before=before)
        # A listing names the entries; their rows (up to history_rows each) come with GET /history/{id}.
        return {"entries": [_listed(e) for e in entries]}

    def history_entry(self, entry_id: str) -> HistoryEntry:
        """One entry, rows included; NotFound for an unknown id."""
        entry = self.store.history_entry(entry_id)
        if entry is None:
            raise NotFound(f"no history entry has the id {entry_id!r}")
        return entry

    def history_csv(self, entry_id: str) -> str:
        """The entry's result as CSV (a header row, then its rows); text cells that a spreadsheet would take
        for a formula are prefixed with an apostrophe."""
        entry = self.history_entry(entry_id)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([_csv_cell(c) for c in entry.columns])
        for row in entry.rows:
            writer.writerow([_csv_cell(v) for v in row])
        return buffer.getvalue()

    # --- feedback -----------------------------------------------------------------------------------
    def feedback(self, entry_id: str, rating: str, *, sql: str | None = None,
                 comment: str | None = None) -> dict[str, Any]:
        """Record a thumbs up or down on a history entry. Up: its question and SQL are stored as an example
        (source "feedback"). Down with `sql`: that SQL is checked like `examples add` (guard, then run) and
        stored as the question's example."""
        entry = self.history_entry(entry_id)
        corrected = sql.strip() if isinstance(sql, str) and sql.strip() else None
        if rating not in ("up", "down"):
            raise UserError(f"the rating is 'up' or 'down', not {rating!r}")
        if rating == "up" and corrected is not None:
            raise UserError("SQL goes with a thumbs down (the SQL that should have been written)")
        example: StoredExample | None = None
        pair_sql = entry.sql if rating == "up" else corrected
        if pair_sql is not None and (rating == "down" or (entry.source == "ask" and not entry.abstained)):
            if not entry.question:
                raise UserError("this entry is SQL someone ran, with no question to store it under")
            name = self._names_by_key.get(entry.database)
            if name is None:
                raise UnknownDatabase(f"the database {entry.label!r} of this entry is not served here")
            example = self._teach(name, entry.question, pair_sql, source="feedback",
                                  provenance={"history_id": entry.id, "rating": rating})[0]
        record = self.store.add_feedback(entry.id, rating, corrected_sql=corrected,
                                         comment=comment.strip() if comment and comment.strip() else None,
                                         example_id=example.id if example else None)
        return {"feedback": record.to_dict(), "example": example.to_dict() if example else None}

    # --- examples and notes ---------------------------------------------------------------------------
    def examples(self, db: str | None) -> dict[str, Any]:
        name, database = self.database(db)
        key, fingerprint = self.identity(name, database)
        return {"examples": [e.to_dict() for e in self.store.examples(key, schema_fingerprint=fingerprint)]}

    def add_example(self, db: str | None, question: object, sql: object) -> dict[str, Any]:
        """Store a taught example; its SQL must pass the guard and run (ExampleRejected otherwise)."""
        name, _ = self.database(db)
        example, new = self._teach(name, question, sql, source="taught")
        return {"example": example.to_dict(), "new": new}

    def remove_example(self, db: str | None, example_id: int) -> dict[str, Any]:
        name, database = self.database(db)
        key, fingerprint = self.identity(name, database)
        if not self.store.remove_example(key, example_id, schema_fingerprint=fingerprint):
            raise NotFound(f"no example {example_id} is stored for the database {name!r}")
        return {"removed": example_id}

    def notes(self, db: str | None) -> dict[str, Any]:
        name, database = self.database(db)
        key, fingerprint = self.identity(name, database)
        return {"notes": [n.to_dict() for n in self.store.notes(key, schema_fingerprint=fingerprint)]}

    def add_note(self, db: str | None, text: object) -> dict[str, Any]:
        name, database = self.database(db)
        key, fingerprint = self.identity(name, database)
        known = {n.id for n in self.store.notes(key, schema_fingerprint=fingerprint)}
        note = self.store.add_note(key, fingerprint, text)  # type: ignore[arg-type]
        return {"note": note.to_dict(), "new": note.id not in known}

    def remove_note(self, db: str | None, note_id: int) -> dict[str, Any]:
        name, database = self.database(db)
        key, fingerprint = self.identity(name, database)
        if not self.store.remove_note(key, note_id, schema_fingerprint=fingerprint):
            raise NotFound(f"no note {note_id} is stored for the database {name!r}")
        return {"removed": note_id}

    def _teach(self, name: str, question: object, sql: object, *, source: str,
               provenance: dict | None = None) -> tuple[StoredExample, bool]:
        """Check and store an example for database `name`: (the example, whether it is new)."""
        database = self.databases.get(name)
        question, _ = checked_question(question, None, self.settings.max_question_chars)
        text = _example_sql(database, sql, self.settings)
        key, fingerprint = self.identity(name, database)
        known = {e.id for e in self.store.examples(key, schema_fingerprint=fingerprint)}
        example = self.store.add_example(key, fingerprint, question, text, source=source, verified=True,
                                         provenance=provenance)
        return example, example.id not in known

    def close(self) -> None:
        """Stop the model worker (cancelling what waits), then close the databases and the store."""
        self.worker.close()
        self.databases.close()
        self.store.close()


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _statement(sql: object) -> str:
    if not isinstance(sql, str) or not sql.strip():
        raise UserError("the SQL is empty")
    return sql.strip()


def _example_sql(db: Database, sql: object, settings: Settings) -> str:
    """The example's SQL, stripped, once it passed the guard and ran (ExampleRejected otherwise), as
    `sqlwright examples add` checks it."""
    if not isinstance(sql, str) or not sql.strip():
        raise ExampleRejected("the SQL is empty")
    try:
        db.execute(sql.strip(), timeout=settings.timeout, max_rows=settings.max_rows)
    except QueryRefused as exc:
        raise ExampleRejected(f"the SQL is refused: {exc}") from exc
    except QueryFailed as exc:  # a database error or a timeout
        raise ExampleRejected(f"the SQL does not run: {exc}") from exc
    return sql.strip()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


def _listed(entry: HistoryEntry) -> dict[str, Any]:
    """An entry as a history listing shows it: everything but its rows, and how many there are."""
    data = entry.to_dict()
    data["row_count"] = len(data.pop("rows", None) or ())
    return data
