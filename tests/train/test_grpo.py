"""`train grpo` (experimental) at tiny scale: the execution reward is Arctic-Text2SQL-R1's (1 right, 0.1 runs but
wrong, 0 no SQL / refused / fails), every query going through the guard on a real SQLite file; questions whose
gold returns nothing are no label; one GRPO step on the tiny model scores its samples and writes an adapter."""

from __future__ import annotations

import json
import math

import pytest
from fit_helpers import DATABASE, fit_settings, make_sqlite, sft_records, write_sft
from tiny_model import TinyModel

from sqlwright.errors import DatasetError
from sqlwright.train.records import write_records


@pytest.fixture()
def db_dir(tmp_path):
    make_sqlite(tmp_path / "dbs" / DATABASE / f"{DATABASE}.sqlite")
    return tmp_path / "dbs"


def test_the_reward_is_one_a_tenth_or_nothing(db_dir):
    from sqlwright.train.grpo import DatabaseCache, ExecutionReward

    cache = DatabaseCache(db_dir=db_dir)
    reward = ExecutionReward(cache)
    gold = "SELECT name FROM singer WHERE country = 'France'"
    replies = [
        "```sql\nSELECT name FROM singer WHERE country = 'France'\n```",  # the gold itself
        [{"role": "assistant", "content": "Reasoning first.\n```sql\nSELECT s.name FROM singer AS s "
                                          "WHERE s.country LIKE 'Fr%' ORDER BY s.age\n```"}],  # same rows
        "```sql\nSELECT name FROM singer\n```",  # runs, another answer
        "I cannot write SQL for this.",  # no SQL
        "```sql\nDELETE FROM singer\n```",  # refused by the guard
        "```sql\nSELECT nme FROM singer\n```",  # fails
    ]
    scores = reward([None] * len(replies), replies, database=[DATABASE] * len(replies), sql=[gold] * len(replies),
                    question=["Names of the singers from France?"] * len(replies), dialect=["sqlite"] * len(replies))
    assert scores == [1.0, 1.0, 0.1, 0.0, 0.0, 0.0]
    rows = cache.get(DATABASE).execute("SELECT count(*) FROM singer").rows
    assert rows[0][0] == 4  # the refused DELETE never ran
    cache.close()


def test_questions_without_a_gold_result_are_left_out(db_dir, tmp_path):
    from sqlwright.train.grpo import DatabaseCache, ExecutionReward, labelled_records

    records = sft_records(3)
    records[1]["sql"] = "SELECT name FROM singer WHERE age > 100"  # empty: no label
    reward = ExecutionReward(DatabaseCache(db_dir=db_dir))
    kept = labelled_records(records + [records[0]], reward)  # a repeated question counts once
    assert [r["question"] for r in kept] == [records[0]["question"], records[2]["question"]]
    with pytest.raises(DatasetError, match="no question with a gold result"):
        labelled_records([records[1]], reward)


def test_an_unknown_database_is_one_line(tmp_path):
    from sqlwright.train.grpo import train_grpo

    data = write_sft(tmp_path / "sft.jsonl", 2)
    with pytest.raises(DatasetError, match="unknown database 'concert'.*--db-dir"):
        train_grpo(data, model="/nonexistent/model.gguf", out_dir=tmp_path / "out", db_dir=tmp_path)


def test_one_grpo_step_on_the_tiny_model(tiny_model: TinyModel, db_dir, tmp_path):
    pytest.importorskip("trl")
    from sqlwright.train.grpo import train_grpo

    data = tmp_path / "sft.jsonl"
    write_records(data, sft_records(2))
    out = tmp_path / "adapter"
    report = train_grpo(data, model=str(tiny_model.gguf_path), out_dir=out, db_dir=db_dir, num_generations=2,
                        max_completion_length=8, max_steps=1, lr=1e-3, lora_r=4, lora_alpha=8,
                        settings=fit_settings(tmp_path))
    assert report.steps == 1 and report.records == 2 and math.isfinite(report.final_loss)
    assert report.extra == {"last_mean_reward": 0.0}
    step = next(json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line)
    # Its replies were executed and scored (a random model's: no SQL, so nothing).
    assert step["rewards/execution_reward/mean"] == 0.0 and step["completions/mean_length"] > 0
    meta = json.loads((out / "sqlwright-adapter.json").read_text())
    assert meta["kind"] == "grpo" and meta["base_sha256"] == tiny_model.sha256
    assert "0.1 runs but wrong" in (out / "README.md").read_text()
