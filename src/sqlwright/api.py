"""The Python API: `connect(url)` returns a `Connection` that can `ask`, run `sql` and show its `schema`."""

from __future__ import annotations

from pathlib import Path

from sqlwright.config import Settings, load_settings
from sqlwright.db import Database, Result, Schema, open_database
from sqlwright.llm import LLM, load_llm
from sqlwright.pipeline import Answer, AskOptions, Engine
from sqlwright.pipeline.ask import checked_question, require_tables
from sqlwright.sample import SAMPLE_NAME, sample_database_path


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

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            llm = self._llm or load_llm(self.settings.model, self.settings)
            self._engine = Engine(llm, self._options, cache_dir=self.settings.cache_dir,
                                  max_question_chars=self.settings.max_question_chars)
        return self._engine

    def ask(self, question: str, *, evidence: str | None = None, **options: object) -> Answer:
        """Answer `question` with SQL the model writes, executed read-only. Options override AskOptions."""
        # What the user can get wrong is refused before the model loads (seconds) or runs.
        question, evidence = checked_question(question, evidence, self.settings.max_question_chars)
        require_tables(self.database.schema(), self.database.url)
        return self.engine.ask(self.database, question, evidence=evidence, **options)

    def sql(self, sql: str) -> Result:
        """Run SQL you wrote, through the same guard, timeout and row cap as the model's."""
        return self.database.execute(sql, timeout=self.settings.timeout, max_rows=self.settings.max_rows)

    def schema(self) -> Schema:
        return self.database.schema()

    def close(self) -> None:
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
