"""Each synthesis stage with the real embedded model (0.5B by default) on a small SQLite database, a handful
of items (each costs seconds on two cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_helpers import make_db

from sqlwright.db import open_database
from sqlwright.pipeline import AskOptions
from sqlwright.synth.dataset import export_dataset
from sqlwright.synth.prompts import STYLE_NAMES
from sqlwright.synth.run import CotOptions, QuestionOptions, SqlOptions, Synthesizer
from sqlwright.synth.sql import REJECTIONS
from sqlwright.synth.verify import UNVERIFIED
from sqlwright.synth.workfile import WorkFile

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_every_stage_with_the_real_model(real_llm, tmp_path: Path) -> None:
    with open_database(str(make_db(tmp_path / "c.sqlite"))) as db, WorkFile(tmp_path / "w.synth") as work:
        synth = Synthesizer(work, generator=real_llm, embedder=None, cache_dir=tmp_path / "cache",
                            ask_options=AskOptions.greedy(), sql_options=SqlOptions(max_tokens=200),
                            question_options=QuestionOptions(k=2),
                            cot_options=CotOptions(samples=3, max_tokens=350, include_unverified=True))
        name = synth.add_database(db, "concerts")

        sql = synth.sql(name, per_level=1, levels=["simple", "moderate"], attempts_per_level=2)
        assert 2 <= sql.items <= 4
        assert set(work.rejections()) <= set(REJECTIONS)
        kept = work.items(name)
        assert kept, f"no query kept of {sql.items}: {work.rejections()}"
        for item in kept:
            assert db.execute(item.sql).rows  # what is kept runs and returns rows

        questions = synth.questions()
        assert questions.items == len(kept)
        written = [i for i in work.items(name) if i.question is not None]
        assert written, "the model wrote no usable question"
        assert all(i.style in STYLE_NAMES and len(i.question.split()) >= 3 for i in written)

        verify = synth.verify()
        assert verify.items == len(written)
        assert set(verify.outcomes) <= {"verified", *UNVERIFIED}

        first = work.items(name)[0]
        if first.question is not None:
            cot = synth.cot()
            assert cot.items >= 1 and set(cot.outcomes) <= {"kept", "disagree", "error"}

        export = export_dataset(work, tmp_path / "pairs.jsonl")
        assert export.pairs == len(written)
        costs = work.stage_costs()
        assert costs["sql"]["seconds"] > 0 and costs["sql"]["cpu_seconds"] > 0
