"""Predictors: where the evaluator gets a predicted SQL for an example.

A predictor answers one example at a time; the runner calls it in the main process and sends the
result to the comparison workers. `FilePredictor` replays a predictions file; `PipelinePredictor`
asks the text-to-SQL pipeline (an `Engine`) against the example's database.

A predictor whose `concurrent` attribute is true may be called from several threads at once (the
runner's ``concurrency``): `PipelinePredictor` is, when its model is served (an OpenAI-compatible
server does the work; the embedded model answers one question at a time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlwright.errors import ModelError, SqlwrightError, UserError
from sqlwright.eval.types import Example, Prediction

if TYPE_CHECKING:
    from sqlwright.db.base import Database

log = logging.getLogger(__name__)


@runtime_checkable
class Predictor(Protocol):
    """Anything that turns an example (and its database URL) into a prediction."""

    def predict(self, example: Example, database_url: str) -> Prediction: ...


class FilePredictor:
    """Predictions read beforehand (e.g. by `sqlwright.eval.datasets.read_predictions`), keyed by id.

    An example without a prediction gets one with no SQL and the error "no prediction", so it counts
    as wrong rather than as an abstention.
    """

    concurrent = True  # a lookup

    def __init__(self, predictions: Mapping[str, Prediction]) -> None:
        self.predictions = dict(predictions)

    def predict(self, example: Example, database_url: str) -> Prediction:
        found = self.predictions.get(example.id)
        if found is None:
            return Prediction(id=example.id, sql=None, error="no prediction")
        return found


def answer_trace(answer: Any) -> dict:
    """What a run file keeps of an `Answer` besides its SQL: everything but the result rows."""
    trace = answer.to_dict()
    for key in ("question", "sql", "columns", "rows"):
        trace.pop(key, None)
    return trace


class _ThreadState:
    """What one thread of a PipelinePredictor uses alone: its engine (an Engine keeps per-database caches and
    is used from one thread at a time) and its database connections (a connection is not shared by threads
    working at once: psycopg's are not safe for it, and a shared one would run their SQL one at a time)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.owner = threading.current_thread()
        self.databases: dict[str, Database] = {}
        self.busy = False  # the thread is answering (under the predictor's lock)
        self.close_when_done = False  # close() came while it was: it closes its databases itself

    def database(self, url: str) -> Database:
        db = self.databases.get(url)
        if db is None:
            from sqlwright.db import open_database

            db = self.databases[url] = open_database(url)
        return db

    def close(self) -> None:
        databases, self.databases = list(self.databases.values()), {}
        for db in databases:
            db.close()


class PipelinePredictor:
    """Asks an `Engine` (sqlwright.pipeline.ask.Engine: ``ask(db, question, *, evidence=None)``).

    Databases are opened once per URL and kept open until `close()`. A failure of the model or the
    pipeline becomes a prediction with an error (counted wrong), so one bad question does not stop a
    run; an abstention becomes a prediction with no SQL. A model error the user has to fix (a server
    that cannot be reached, a refused key, a model that is not installed) stops the run instead: every
    later question would fail the same way and be counted wrong.

    Threads: each thread that calls `predict` gets its own databases and, past the first, its own
    Engine over the same model (same options and caches directory), so answers do not depend on which
    thread asked. `concurrent` says whether the model serves several threads at once.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._local = threading.local()
        self._states: list[_ThreadState] = []
        self._states_lock = threading.Lock()

    @property
    def concurrent(self) -> bool:
        """Whether several threads may predict at once: the model says it serves them (a remote server)."""
        return bool(getattr(getattr(self.engine, "llm", None), "supports_concurrency", False))

    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            with self._states_lock:
                # A thread that has ended leaves its engine and connections to the next one (a later run's
                # threads), so they number at most the threads that ever worked at once.
                state = next((s for s in self._states if not s.owner.is_alive()), None)
                if state is None:
                    state = _ThreadState(self.engine if not self._states else _sibling_engine(self.engine))
                    self._states.append(state)
                state.owner = threading.current_thread()
                self._local.state = state
        return state

    def predict(self, example: Example, database_url: str) -> Prediction:
        state = self._state()
        with self._states_lock:
            state.busy, state.close_when_done = True, False
        try:
            return self._predict(state, example, database_url)
        finally:
            with self._states_lock:
                state.busy = False
                if state.close_when_done:  # closed while this thread answered: its connections are its to close
                    state.close()

    def _predict(self, state: _ThreadState, example: Example, database_url: str) -> Prediction:
        db = state.database(database_url)
        start = time.perf_counter()
        try:
            answer = state.engine.ask(db, example.question, evidence=example.evidence)
        except SqlwrightError as exc:
            if isinstance(exc, ModelError) and isinstance(exc, UserError):
                raise
            log.warning("prediction failed for %s: %s", example.id, exc)
            return Prediction(
                id=example.id, sql=None, seconds=time.perf_counter() - start, error=str(exc) or type(exc).__name__
            )
        elapsed = answer.timings.get("total", time.perf_counter() - start)
        # An answer that neither abstained nor produced SQL is a failure, not an abstention.
        error = None if answer.abstained or answer.sql else (answer.reason or "no SQL produced")
        return Prediction(
            id=example.id,
            sql=None if answer.abstained else answer.sql,
            seconds=elapsed,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            error=error,
            trace=answer_trace(answer),
        )

    def close(self) -> None:
        """Close every thread's databases. A thread still answering (an interrupted run does not wait for
        the model's reply) closes its own when its answer is in: a connection is never closed under a
        statement."""
        with self._states_lock:
            for state in self._states:
                if state.busy:
                    state.close_when_done = True
                else:
                    state.close()


def _sibling_engine(engine: Any) -> Any:
    """An Engine like `engine` for another thread: same model, options, cache directory and question limit.
    Anything else that answers questions is shared as it is (its own business to be thread-safe)."""
    from sqlwright.pipeline.ask import Engine

    if not isinstance(engine, Engine):
        return engine
    return Engine(engine.llm, engine.options, cache_dir=engine.cache_dir, store=engine.store,
                  max_question_chars=engine.max_question_chars)
