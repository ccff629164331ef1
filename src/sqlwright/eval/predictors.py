"""Predictors: where the evaluator gets a predicted SQL for an example.

A predictor answers one example at a time; the runner calls it in the main process and sends the
result to the comparison workers. `FilePredictor` replays a predictions file; `PipelinePredictor`
asks the text-to-SQL pipeline (an `Engine`) against the example's database.
"""

from __future__ import annotations

import logging
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


class PipelinePredictor:
    """Asks an `Engine` (sqlwright.pipeline.ask.Engine: ``ask(db, question, *, evidence=None)``).

    Databases are opened once per URL and kept open until `close()`. A failure of the model or the
    pipeline becomes a prediction with an error (counted wrong), so one bad question does not stop a
    run; an abstention becomes a prediction with no SQL. A model error the user has to fix (a server
    that cannot be reached, a refused key, a model that is not installed) stops the run instead: every
    later question would fail the same way and be counted wrong.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._databases: dict[str, Database] = {}

    def _database(self, url: str) -> Database:
        db = self._databases.get(url)
        if db is None:
            from sqlwright.db import open_database

            db = self._databases[url] = open_database(url)
        return db

    def predict(self, example: Example, database_url: str) -> Prediction:
        db = self._database(database_url)
        start = time.perf_counter()
        try:
            answer = self.engine.ask(db, example.question, evidence=example.evidence)
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
        for db in self._databases.values():
            db.close()
        self._databases.clear()
