"""The full ask pipeline with the real embedded model (0.5B by default) on Spider's concert_singer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlwright.db import open_database
from sqlwright.pipeline import AskOptions, Candidate, Engine
from sqlwright.pipeline.select import result_key

pytestmark = [pytest.mark.model, pytest.mark.slow]

# Spider dev questions on concert_singer with their gold SQL.
QUESTIONS = [
    ("How many singers do we have?", "SELECT count(*) FROM singer"),
    ("What are all distinct countries where singers above age 20 are from?",
     "SELECT DISTINCT country FROM singer WHERE age > 20"),
    ("What is the average, minimum, and maximum age of all singers from France?",
     "SELECT avg(age), min(age), max(age) FROM singer WHERE country = 'France'"),
]


def test_ask_concert_singer_with_the_real_model(real_llm, spider_db, tmp_path: Path) -> None:
    engine = Engine(real_llm, AskOptions(candidates=3, repair_rounds=1), cache_dir=tmp_path)
    with open_database(f"sqlite:///{spider_db('concert_singer')}") as db:
        for question, gold_sql in QUESTIONS:
            answer = engine.ask(db, question)
            assert not answer.abstained, (question, answer.reason)
            drawn = [c for c in answer.candidates if not c.origin.startswith("repair")]
            assert len(drawn) + answer.undrawn == 3 and len(drawn) >= 2
            if answer.undrawn:  # greedy and the first sample agreed; the third counts against the winner
                assert answer.confidence == pytest.approx(2 / 3)
            gold = db.execute(gold_sql)
            got = Candidate(answer.sql, "answer", answer.columns, answer.rows)
            expected = Candidate(gold_sql, "gold", gold.columns, gold.rows)
            assert result_key(got, "sqlite") == result_key(expected, "sqlite"), (question, answer.sql)
            assert 0 < answer.confidence <= 1
            assert answer.prompt_tokens > 0 and answer.completion_tokens > 0
