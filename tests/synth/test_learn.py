"""`learn`: synthesized, verified pairs become the database's examples (API and CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from synth_helpers import FakeModel, make_db

import sqlwright
from sqlwright.errors import ConfigError


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return make_db(tmp_path / "concerts.sqlite")


def test_learn_stores_the_verified_pairs_once_and_ask_shows_them(db_path: Path, tmp_path: Path) -> None:
    llm = FakeModel()
    with sqlwright.connect(db_path, llm=llm, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache") as conn:
        report = conn.learn(pairs=3, work=tmp_path / "learn.sqlite")
        assert report.synth.verified == 3 and report.added == 3
        stored = conn.examples()
        assert len(stored) == 3
        assert all(e.source == "synthesized" and e.verified for e in stored)
        assert {e.sql for e in stored} == {p.sql for p in report.synth.pairs}
        assert all(e.provenance["complexity"] and e.provenance["style"] and e.provenance["model"] == "fake"
                   for e in stored)
        calls = len(llm.calls)
        again = conn.learn(pairs=3, work=tmp_path / "learn.sqlite")  # resumed: nothing new to ask or store
        assert again.added == 0 and len(conn.examples()) == 3 and len(llm.calls) == calls
        answer = conn.ask("Which singers are older than 40?", candidates=1, repair_rounds=0)
        shown = {d.sql for d in answer.examples}
        assert shown and shown <= {e.sql for e in stored}
        with pytest.raises(ConfigError):
            conn.learn(pairs=0)


def test_learn_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = {"SQLWRIGHT_STATE_DIR": str(tmp_path / "state"), "SQLWRIGHT_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin"}
    missing = subprocess.run([str(Path(sys.executable).with_name("sqlwright")), "learn", str(tmp_path / "nope.sqlite")],
                             capture_output=True, text=True, env=env, check=False)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    zero = subprocess.run([str(Path(sys.executable).with_name("sqlwright")), "learn", "sample", "--pairs", "0"],
                          capture_output=True, text=True, env=env, check=False)
    assert zero.returncode == 2 and "pairs" in zero.stderr
