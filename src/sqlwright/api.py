"""The Python API: `connect(url)` returns a `Connection` that can `ask`, run `sql` and show its `schema`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlwright.config import Settings, load_settings
from sqlwright.db import Database, Result, Schema, database_key, open_database, schema_fingerprint
from sqlwright.errors import ConfigError, ExampleRejected, QueryFailed, QueryRefused, StateStoreError
from sqlwright.llm import LLM, load_llm
from sqlwright.pipeline import Answer, AskOptions, Engine
from sqlwright.pipeline.ask import checked_question, require_tables
from sqlwright.pipeline.conversation import Turn
from sqlwright.pipeline.events import EventCallback
from sqlwright.sample import SAMPLE_NAME, sample_database_path
from sqlwright.store import Note, StateStore, StoredExample, open_state_store

if TYPE_CHECKING:
    from sqlwright.synth.learn import LearnReport

log = logging.getLogger(__name__)


def resolve_url(url: str | Path, settings: Settings) -> str:
    """`sample` names the bundled sample database; anything else is a URL or a path."""
    if str(url) == SAMPLE_NAME:
        return str(sample_database_path(settings.cache_dir))
    return str(url)


class Connection:
    """A database plus (lazily) a model: the object `sqlwright.connect` returns."""

    def __init__(self, database: Database, *, settings: Settings, llm: LLM | None = None,
                 options: AskOptions | None = None) -> None:
        self.database = database
        self.settings = settings
        self._llm = llm
        self._options = options
        self._engine: Engine | None = None
        self._store: StateStore | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            llm = self._llm or load_llm(self.settings.model, self.settings)
            self._engine = Engine(llm, self._options, cache_dir=self.settings.cache_dir,
                                  max_question_chars=self.settings.max_question_chars, store=self._examples_store())
        return self._engine

    def ask(self, question: str, *, evidence: str | None = None, turns: Sequence[Turn] = (),
            on_event: EventCallback | None = None, cancel: Callable[[], bool] | None = None,
            summarize: bool = False, **options: object) -> Answer:
        """Answer `question` with SQL the model writes, executed read-only. Options override AskOptions.
        `turns` (earlier questions and their SQL) make it a follow-up; `on_event`, `cancel` and `summarize`
        as in Engine.ask."""
        # What the user can get wrong is refused before the model loads (seconds) or runs.
        question, evidence = checked_question(question, evidence, self.settings.max_question_chars)
        require_tables(self.database.schema(), self.database.url)
        return self.engine.ask(self.database, question, evidence=evidence, turns=turns, on_event=on_event,
                               cancel=cancel, summarize=summarize, **options)

    def sql(self, sql: str) -> Result:
        """Run SQL you wrote, through the same guard, timeout and row cap as the model's."""
        return self.database.execute(sql, timeout=self.settings.timeout, max_rows=self.settings.max_rows)

    def schema(self) -> Schema:
        return self.database.schema()

    # --- what sqlwright remembers about this database: examples and notes ----------------------------
    @property
    def store(self) -> StateStore:
        """The state store (state_dir/state.db, or the PostgreSQL database of state_url), opened on first use
        and closed with the connection."""
        if self._store is None:
            self._store = open_state_store(self.settings)
        return self._store

    def _examples_store(self) -> StateStore | None:
        """The store for `ask`'s demonstrations: a state directory that cannot be opened costs the examples,
        never the answer (a warning says why)."""
        try:
            return self.store
        except StateStoreError as exc:
            log.warning("answering without stored examples: %s", exc)
            return None

    def identity(self) -> tuple[str, str]:
        """(database key, schema fingerprint): what examples and notes are stored under."""
        return database_key(self.database), schema_fingerprint(self.database.schema())

    def check_example_sql(self, sql: str) -> Result:
        """Run an example's SQL as `sql` does (guard, timeout, row cap); ExampleRejected with the reason
        when the guard refuses it or it fails or times out."""
        if not isinstance(sql, str) or not sql.strip():
            raise ExampleRejected("the SQL is empty")
        try:
            return self.sql(sql.strip())
        except QueryRefused as exc:
            raise ExampleRejected(f"the SQL is refused: {exc}") from exc
        except QueryFailed as exc:  # a database error or a timeout
            raise ExampleRejected(f"the SQL does not run: {exc}") from exc

    def teach(self, question: str, sql: str, *, source: str = "taught", verified: bool = True,
              provenance: dict | None = None, created: float | None = None) -> StoredExample:
        """Store `question` with the `sql` that answers it, as an example for this database (`ask` shows the
        nearest ones to the model). The SQL must pass the guard and run (ExampleRejected otherwise); the
        same pair again returns the stored example (see StateStore.add_example)."""
        question, _ = checked_question(question, None, self.settings.max_question_chars)
        self.check_example_sql(sql)
        key, fingerprint = self.identity()
        return self.store.add_example(key, fingerprint, question, sql, source=source, verified=verified,
                                      provenance=provenance, created=created)

    def examples(self) -> list[StoredExample]:
        """The examples stored for this database, or for a database with the same schema, oldest first."""
        key, fingerprint = self.identity()
        return self.store.examples(key, schema_fingerprint=fingerprint)

    def add_note(self, text: str) -> Note:
        """Store a note (a business definition, an instruction) for this database."""
        key, fingerprint = self.identity()
        return self.store.add_note(key, fingerprint, text)

    def notes(self) -> list[Note]:
        """The notes stored for this database, or for a database with the same schema, oldest first."""
        key, fingerprint = self.identity()
        return self.store.notes(key, schema_fingerprint=fingerprint)

    def learn(self, pairs: int = 20, *, seed: int = 0, work: Path | None = None,
              progress: Callable | None = None) -> LearnReport:
        """Synthesize `pairs` verified question–SQL pairs for this database with the model (OmniSQL-style:
        SQL by complexity, a question in a style, verified by asking it back) and store them as examples.
        Resumable: the work file (default: under cache_dir/learn) keeps every step."""
        from sqlwright.synth.learn import default_work_file, learn

        if pairs < 1:
            raise ConfigError(f"pairs must be at least 1, not {pairs}")
        require_tables(self.database.schema(), self.database.url)
        key, fingerprint = self.identity()
        work = Path(work) if work is not None else default_work_file(self.settings.cache_dir, key)
        return learn(self.database, self.engine.llm, self.store, database_key=key, schema_fingerprint=fingerprint,
                     pairs=pairs, work=work, seed=seed, progress=progress)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self.database.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str | Path, *, model: str | None = None, llm: LLM | None = None,
            options: AskOptions | None = None, **settings: object) -> Connection:
    """Open `url` (a database URL, a path to a SQLite/DuckDB file, or "sample") read-only.

    `model` names the model (registered name, .gguf path or "openai:NAME"); `llm` passes a ready LLM
    instead; other keywords are settings (timeout, max_rows, cache_dir, base_url, ...)."""
    resolved = load_settings(model=model, **settings)
    database = open_database(resolve_url(url, resolved), timeout=resolved.timeout,
                             max_rows=resolved.max_rows)
    return Connection(database, settings=resolved, llm=llm, options=options)
