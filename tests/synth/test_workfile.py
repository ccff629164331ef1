"""The work file: configuration binding, refusing what is not a work file, and resuming after SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from synth_helpers import FakeModel, make_db

from sqlwright.db import open_database
from sqlwright.errors import ConfigError, DatasetError
from sqlwright.eval.runfile import RunFile
from sqlwright.pipeline import AskOptions
from sqlwright.synth.run import Synthesizer
from sqlwright.synth.workfile import WorkFile, open_work_file, url_without_password

HERE = Path(__file__).resolve().parent


def test_a_stage_resumes_only_with_its_configuration(tmp_path: Path) -> None:
    path = tmp_path / "w.synth"
    with WorkFile(path) as work:
        assert work.bind("sql", {"model": "a", "temperature": 0.8}) is False
        assert work.bind("sql", {"model": "a", "temperature": 0.8}) is True
        assert work.bind("questions", {"k": 3}) is False  # each stage has its own
    with WorkFile(path) as work:
        with pytest.raises(ConfigError, match=r"differs in: temperature"):
            work.bind("sql", {"model": "a", "temperature": 0.2})
        work.bind_seed(4)
        work.bind_seed(4)
        with pytest.raises(ConfigError, match="seed 4, not 5"):
            work.bind_seed(5)


def test_what_is_not_a_work_file_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not SQLite at all " * 40)
    with pytest.raises(DatasetError, match="cannot use"):
        WorkFile(text)
    db = make_db(tmp_path / "c.sqlite")
    with pytest.raises(DatasetError, match="not a sqlwright synthesis work file"):
        WorkFile(db)
    assert {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")} >= {"singer"}
    RunFile(tmp_path / "run.sqlite").close()  # an evaluation's run file
    with pytest.raises(DatasetError):
        WorkFile(tmp_path / "run.sqlite")
    with pytest.raises(DatasetError, match="directory"):
        WorkFile(tmp_path)
    with pytest.raises(DatasetError, match="no work file"):
        open_work_file(tmp_path / "missing.synth", must_exist=True)


def test_a_database_is_bound_by_name_dialect_and_content(tmp_path: Path) -> None:
    with WorkFile(tmp_path / "w.synth") as work:
        work.add_database("shop", "postgresql://ann:secret@db.local:5432/shop", "postgres", "f1")
        assert work.databases()["shop"].url == "postgresql://ann@db.local:5432/shop"  # no password kept
        work.add_database("shop", "postgresql://ann@db.local/shop", "postgres", "f1")
        with pytest.raises(ConfigError, match="changed"):
            work.add_database("shop", "postgresql://ann@db.local/shop", "postgres", "f2")
        with pytest.raises(ConfigError, match="postgres database"):
            work.add_database("shop", "/tmp/shop.sqlite", "sqlite", "f1")


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:p@h:5432/d", "postgresql://u@h:5432/d"),
    ("mysql://root:pw@127.0.0.1/db?charset=utf8", "mysql://root@127.0.0.1/db?charset=utf8"),
    ("postgresql://u@h/d", "postgresql://u@h/d"),
    ("/data/x.sqlite", "/data/x.sqlite"),
    ("sqlite:///x.sqlite", "sqlite:///x.sqlite"),
])
def test_url_without_password(url: str, expected: str) -> None:
    assert url_without_password(url) == expected


# --- SIGKILL -------------------------------------------------------------------------------------------
RUN = """
import sys
sys.path.insert(0, {helpers!r})
from pathlib import Path
from synth_helpers import FakeModel
from sqlwright.db import open_database
from sqlwright.pipeline import AskOptions
from sqlwright.synth.run import Synthesizer
from sqlwright.synth.workfile import WorkFile

llm = FakeModel(hang_at={hang_at}, marker=Path({marker!r}))
with open_database({db!r}) as db, WorkFile(Path({work!r})) as work:
    synth = Synthesizer(work, generator=llm, seed=3, embedder=None, cache_dir=Path({cache!r}),
                        ask_options=AskOptions.greedy())
    synth.run(synth.add_database(db, "concerts"), pairs=3, cot=True)
"""


def snapshot(path: Path) -> dict:
    """What a work file recorded, without times and costs."""
    con = sqlite3.connect(path)
    out = {
        "sql": con.execute("SELECT id, seed, kept, reason, sql, template, result_hash FROM sql_items ORDER BY id").fetchall(),
        "questions": con.execute("SELECT id, style, question, evidence, reason FROM questions ORDER BY id").fetchall(),
        "verify": con.execute("SELECT id, verified, reason, answer_sql FROM verifications ORDER BY id").fetchall(),
        "cot": con.execute("SELECT id, kept, agree, texts FROM cots ORDER BY id").fetchall(),
    }
    con.close()
    return out


def run_in_process(db_path: Path, work_path: Path, cache: Path, llm: FakeModel) -> None:
    with open_database(str(db_path)) as db, WorkFile(work_path) as work:
        synth = Synthesizer(work, generator=llm, seed=3, embedder=None, cache_dir=cache,
                            ask_options=AskOptions.greedy())
        synth.run(synth.add_database(db, "concerts"), pairs=3, cot=True)


@pytest.mark.slow
@pytest.mark.parametrize("hang_at", [3, 4, 6, 9, 15])  # in a question, an answer, an explanation, a CoT, an answer
def test_sigkill_loses_only_the_item_in_flight_and_resuming_asks_nothing_twice(tmp_path: Path, hang_at: int) -> None:
    db_path = make_db(tmp_path / "c.sqlite")
    work_path, marker, cache = tmp_path / "killed.synth", tmp_path / "hanging", tmp_path / "cache"
    script = RUN.format(helpers=str(HERE), hang_at=hang_at, marker=str(marker), db=str(db_path),
                        work=str(work_path), cache=str(cache))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its model call {hang_at}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "the run never reached the hanging call"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of a model call: no cleanup runs
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    recorded = snapshot(work_path)
    con = sqlite3.connect(work_path)
    finished = {("sql", r[0]) for r in con.execute("SELECT seed FROM sql_items")}
    finished |= {(kind, r[0]) for r in con.execute("SELECT seed FROM questions") for kind in ("explain", "question")}
    finished |= {("ask", r[0]) for r in con.execute(
        "SELECT q.question FROM verifications v JOIN questions q ON q.id = v.id")}
    finished |= {("cot", r[0]) for r in con.execute("SELECT seed FROM cots")}
    con.close()

    resumed = FakeModel()
    run_in_process(db_path, work_path, cache, resumed)
    assert not finished & set(resumed.calls)  # nothing recorded is asked for again

    # killed and resumed = never killed
    whole = FakeModel()
    run_in_process(db_path, tmp_path / "whole.synth", cache, whole)
    assert snapshot(work_path) == snapshot(tmp_path / "whole.synth")
    assert len(whole.calls) == len(resumed.calls) + len(finished)
    # the calls done before the kill are recorded, but those of the item in flight (its explanation when
    # it hung writing the question: one item, several calls)
    in_flight = whole.calls[hang_at - 1]
    lost = 1 if in_flight[0] == "question" else 0
    assert len(finished) == hang_at - 1 - lost
    assert sum(len(v) for v in recorded.values()) == len(finished) - len(recorded["questions"])  # 2 calls each
