"""PipelinePredictor: a question's failure is that question's error; a model the user must fix stops the run."""

from __future__ import annotations

import sqlite3

import pytest

from sqlwright.errors import LLMRequestFailed, ModelServerUnreachable
from sqlwright.eval.predictors import PipelinePredictor
from sqlwright.eval.types import Example


class FailingEngine:
    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def ask(self, db, question, *, evidence=None):
        self.calls += 1
        raise self.error


@pytest.fixture()
def db_url(tmp_path) -> str:
    path = tmp_path / "one.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.close()
    return str(path)


def test_a_failed_request_is_that_questions_error(db_url):
    predictor = PipelinePredictor(FailingEngine(LLMRequestFailed("the server answered HTTP 500: boom")))
    prediction = predictor.predict(Example("q1", "How many?", "one", "SELECT 1"), db_url)
    predictor.close()
    assert prediction.sql is None and "boom" in prediction.error


def test_an_unreachable_model_server_stops_the_run(db_url):
    engine = FailingEngine(ModelServerUnreachable("Could not connect to the model server (x): connection refused"))
    predictor = PipelinePredictor(engine)
    with pytest.raises(ModelServerUnreachable):
        predictor.predict(Example("q1", "How many?", "one", "SELECT 1"), db_url)
    predictor.close()
