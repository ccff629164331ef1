"""The chain: stages over a work file, the run until N verified pairs, budgets, concurrency, synthesize()."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from synth_helpers import POOL, FakeModel, Pair, make_db

from sqlwright.db import open_database
from sqlwright.errors import ConfigError
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions
from sqlwright.synth.prompts import LEVELS, STYLE_NAMES
from sqlwright.synth.run import CotOptions, Progress, QuestionOptions, Synthesizer, ordered_map, synthesize
from sqlwright.synth.sql import REJECTIONS
from sqlwright.synth.verify import UNVERIFIED
from sqlwright.synth.workfile import WorkFile


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return make_db(tmp_path / "concerts.sqlite")


@pytest.fixture()
def db(db_path: Path):
    with open_database(str(db_path)) as database:
        yield database


def synthesizer(work: WorkFile, llm, tmp_path: Path, **kwargs) -> Synthesizer:
    kwargs.setdefault("ask_options", AskOptions.greedy())
    return Synthesizer(work, generator=llm, embedder=None, cache_dir=tmp_path / "cache", **kwargs)


def rows(path: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_ordered_map_keeps_order_and_bounds_what_is_in_flight() -> None:
    import threading
    import time

    running, peak, lock = [0], [0], threading.Lock()

    def work(x: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01 * (5 - x % 5))  # later items finish first
        with lock:
            running[0] -= 1
        return x * x

    assert list(ordered_map(work, range(12), 3)) == [(x, x * x) for x in range(12)]
    assert peak[0] <= 3
    assert list(ordered_map(work, range(4), 1)) == [(x, x * x) for x in range(4)]


def test_the_sql_stage_stops_at_the_quota_of_each_level(db, tmp_path: Path) -> None:
    good = ["SELECT name FROM singer WHERE age > 40", "SELECT country FROM singer", "SELECT year FROM concert",
            "SELECT concert_name FROM concert"]
    # levels take turns: simple/0, moderate/0, simple/1, moderate/1, ...
    replies = [good[0], "DELETE FROM singer", "SELECT name FROM singer WHERE age > 50", good[1], good[2], good[3]]
    llm = ScriptedLLM([f"```sql\n{r}\n```" for r in replies])
    events: list[Progress] = []
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, llm, tmp_path, progress=events.append)
        name = synth.add_database(db, "concerts")
        summary = synth.sql(name, per_level=2, levels=["simple", "moderate"])
        assert llm.remaining == 0
        assert summary.outcomes == {"kept": 4, "refused": 1, "duplicate": 1}
        assert work.kept_per_level(name) == {"simple": 2, "moderate": 2}
        assert work.rejections() == {"refused": 1, "duplicate": 1}
        again = synth.sql(name, per_level=2, levels=["simple", "moderate"])  # the quota is met: nothing asked
        assert again.items == 0
    assert [e.outcome for e in events] == ["kept", "refused", "duplicate", "kept", "kept", "kept"]
    assert events[-1].total == 4 and events[-1].done == 6
    assert rows(tmp_path / "w.synth", "SELECT id FROM sql_items WHERE reason = 'duplicate'") == [("concerts/simple/1",)]


def test_run_stops_at_the_pairs_wanted_and_reports_them(db, tmp_path: Path) -> None:
    llm = FakeModel()
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, llm, tmp_path, seed=1)
        name = synth.add_database(db, "concerts")
        report = synth.run(name, pairs=3)
    assert report.verified == 3 == len(report.pairs)
    assert all(p.verified and p.reason is None for p in report.pairs)
    assert set(report.rejections) <= set(REJECTIONS) and set(report.unverified) <= set(UNVERIFIED)
    assert report.attempts == sum(report.rejections.values()) + report.kept
    assert report.questions <= report.kept
    assert {p.complexity for p in report.pairs} <= set(LEVELS) and {p.style for p in report.pairs} <= set(STYLE_NAMES)
    assert report.seconds["sql"] >= 0 and report.seconds["cot"] == 0  # no chain of thought asked for
    assert not [c for c in llm.calls if c[0] == "cot"]
    for pair in report.pairs:  # each verified pair is one of the pool's, with its own question
        match = next(p for p in POOL if p.sql == pair.sql)
        assert pair.question.endswith(match.question)
        assert pair.provenance["model"] == "fake" and pair.provenance["verifier"] == "fake"


def test_run_gives_up_when_its_attempt_budget_is_spent(db, tmp_path: Path) -> None:
    bad = (Pair("DELETE FROM singer", "x y z", "x"), Pair("SELECT 1 FROM singer", "a b c", "x"))
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, FakeModel(bad), tmp_path)
        report = synth.run(synth.add_database(db, "concerts"), pairs=2, max_attempts=7)
    assert report.attempts == 7 and report.verified == 0 and report.pairs == ()
    assert set(report.rejections) <= {"refused", "degenerate"}


def test_concurrent_generation_records_what_one_at_a_time_does(db_path: Path, tmp_path: Path) -> None:
    def go(path: Path, llm: FakeModel, concurrency: int) -> None:
        with open_database(str(db_path)) as db, WorkFile(path) as work:
            synth = synthesizer(work, llm, tmp_path, concurrency=concurrency, seed=2)
            name = synth.add_database(db, "concerts")
            synth.sql(name, per_level=99, attempts_per_level=5)  # every index of every level is tried
            synth.questions()
            synth.verify()
            synth.close()

    go(tmp_path / "one.synth", FakeModel(concurrent=True), 1)
    many = FakeModel(concurrent=True, delay=0.01)
    go(tmp_path / "many.synth", many, 4)
    query = ("SELECT s.id, s.kept, s.reason, s.sql, q.question, v.verified, v.reason FROM sql_items s "
             "LEFT JOIN questions q ON q.id = s.id LEFT JOIN verifications v ON v.id = s.id ORDER BY s.id")
    assert rows(tmp_path / "one.synth", query) == rows(tmp_path / "many.synth", query)
    assert len(rows(tmp_path / "one.synth", query)) == 5 * len(LEVELS)
    assert rows(tmp_path / "one.synth", "SELECT count(*) FROM sql_items WHERE reason = 'duplicate'")[0][0] > 0


def test_concurrency_needs_a_model_behind_a_server(tmp_path: Path) -> None:
    with WorkFile(tmp_path / "w.synth") as work, pytest.raises(ConfigError, match="server"):
        Synthesizer(work, generator=FakeModel(concurrent=False), concurrency=2)


def test_options_that_cannot_work_are_refused(tmp_path: Path) -> None:
    with WorkFile(tmp_path / "w.synth") as work:
        with pytest.raises(ConfigError, match="agreeing"):
            Synthesizer(work, generator=FakeModel(), cot_options=CotOptions(samples=2, min_agree=3))
        synth = Synthesizer(work, generator=FakeModel(), embedder=None)
        with pytest.raises(ConfigError, match="level"):
            synth.sql("x", per_level=1, levels=["trivial"])
        with pytest.raises(ConfigError, match="pairs"):
            synth.run("x", pairs=0)


def test_a_resumed_stage_with_other_settings_is_refused(db, tmp_path: Path) -> None:
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, FakeModel(), tmp_path)
        synth.run(synth.add_database(db, "concerts"), pairs=1)
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, FakeModel(), tmp_path, question_options=QuestionOptions(k=5))
        with pytest.raises(ConfigError, match="differs in: k"):
            synth.run(synth.add_database(db, "concerts"), pairs=2)
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, FakeModel(), tmp_path, seed=9)
        with pytest.raises(ConfigError, match="seed"):
            synth.run(synth.add_database(db, "concerts"), pairs=2)


def test_later_stages_reopen_the_databases_the_work_file_names(db, db_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "copy.sqlite"
    other.write_bytes(db_path.read_bytes())
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, FakeModel(), tmp_path)
        synth.sql(synth.add_database(db, "concerts"), per_level=1, levels=["simple"])
        with open_database(str(other)) as second:
            synth.sql(synth.add_database(second, "copy"), per_level=1, levels=["simple"])
        synth.close()
    # a new process: only the work file, no database given
    with WorkFile(tmp_path / "w.synth") as work:
        assert set(work.databases()) == {"concerts", "copy"}
        synth = synthesizer(work, FakeModel(), tmp_path)
        assert synth.seed == 0
        assert synth.questions().items == 2
        assert synth.verify().items == 2
        synth.close()
    assert {r[0].split("/")[0] for r in rows(tmp_path / "w.synth", "SELECT id FROM verifications")} == {
        "concerts", "copy"}


def test_cot_stage_covers_verified_pairs(db, tmp_path: Path) -> None:
    llm = FakeModel()
    with WorkFile(tmp_path / "w.synth") as work:
        synth = synthesizer(work, llm, tmp_path)
        name = synth.add_database(db, "concerts")
        synth.run(name, pairs=2)
        summary = synth.cot()
        assert summary.items == work.verified_count() and summary.outcomes == {"kept": summary.items}
        assert synth.cot().items == 0
    samples = {c for c in llm.calls if c[0] == "cot"}
    assert len(samples) == summary.items


def test_synthesize_is_the_one_call_api(db, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    import sqlwright.pipeline.embeddings as embeddings

    monkeypatch.setattr(embeddings, "load_default_embedder", lambda cache_dir=None: None)  # not loaded here
    report = synthesize(db, FakeModel(), work=tmp_path / "w.synth", pairs=2, seed=0, name="concerts")
    assert report.verified >= 2 and len(report.pairs) == report.verified
    assert report.work == tmp_path / "w.synth"
    again = synthesize(db, FakeModel(), work=tmp_path / "w.synth", pairs=2, seed=0, name="concerts")
    assert again.pairs == report.pairs and again.attempts == report.attempts  # already done: nothing asked
