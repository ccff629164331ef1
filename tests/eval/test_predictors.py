"""PipelinePredictor: a question's failure is that question's error; a model the user must fix stops the run."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from sqlwright.errors import LLMRequestFailed, ModelServerUnreachable, QueryFailed
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


# --- several threads -----------------------------------------------------------------------------------------
class RecordingEngine:
    """Answers every question with one SQL; records (thread name, database object); may hold a question."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.seen: list[tuple[str, object]] = []
        self.hold = hold
        self.holding = threading.Event()

    def ask(self, db, question, *, evidence=None):
        from sqlwright.pipeline.types import Answer

        self.seen.append((threading.current_thread().name, db))
        if self.hold is not None and question == "hold":
            self.holding.set()
            self.hold.wait(10)
        return Answer(question=question, sql="SELECT count(*) FROM t", timings={"total": 0.0})


def _is_closed(db) -> bool:
    try:
        db.execute("SELECT 1")
    except QueryFailed:
        return True
    return False


def _in_thread(target, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def test_each_thread_gets_its_own_engine_and_connections(db_url, tmp_path):
    from sqlwright.llm import ScriptedLLM
    from sqlwright.pipeline.ask import AskOptions, Engine

    llm = ScriptedLLM(["```sql\nSELECT count(*) FROM t\n```"] * 3)
    engine = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path / "cache", max_question_chars=500)
    predictor = PipelinePredictor(engine)
    assert predictor.concurrent is False  # the scripted model declares no concurrency
    example = Example("q1", "How many?", "one", "SELECT count(*) FROM t")
    states = {}

    def predict(name: str) -> None:
        assert predictor.predict(example, db_url).sql == "SELECT count(*) FROM t"
        states[name] = predictor._local.state

    predict("main")
    _in_thread(lambda: predict("a"), "a").join()
    _in_thread(lambda: predict("b"), "b").join()
    assert states["main"].engine is engine and states["a"].engine is not engine
    assert states["a"].engine.llm is llm and states["a"].engine.options == engine.options
    assert states["a"].engine.cache_dir == engine.cache_dir and states["a"].engine.max_question_chars == 500
    assert states["main"].databases[db_url] is not states["a"].databases[db_url]
    assert states["b"] is states["a"]  # a thread that ended leaves its engine and connections to the next
    assert len(predictor._states) == 2
    databases = [s.databases[db_url] for s in predictor._states]
    assert not any(_is_closed(db) for db in databases)
    predictor.close()
    assert all(_is_closed(db) for db in databases)


def test_close_leaves_a_busy_threads_connection_to_it(db_url):
    release = threading.Event()
    engine = RecordingEngine(hold=release)
    predictor = PipelinePredictor(engine)
    predictor.predict(Example("q0", "idle", "one", "SELECT 1"), db_url)  # the main thread's connection
    busy = _in_thread(lambda: predictor.predict(Example("q1", "hold", "one", "SELECT 1"), db_url), "busy")
    assert engine.holding.wait(10)
    (_, main_db), (_, busy_db) = engine.seen
    predictor.close()
    assert _is_closed(main_db)
    assert not _is_closed(busy_db)  # never closed under a question being answered
    release.set()
    busy.join(10)
    assert _is_closed(busy_db)  # closed by its thread once its answer was in
