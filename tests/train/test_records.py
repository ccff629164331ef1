"""The training records: built in ask's reply format, checked on write and read, loadable by `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlwright.errors import DatasetError
from sqlwright.pipeline.extract import parse_reply
from sqlwright.train.records import (
    check_record,
    clean_reply,
    dpo_record,
    prompt_version,
    read_records,
    sft_record,
    sql_reply,
    write_records,
)

PROMPT = [{"role": "system", "content": "You are an expert."}, {"role": "user", "content": "Question:\nq?"}]
COMMON = {"database": "shop", "dialect": "sqlite", "question": "q?", "model": "m", "prompt_version": "ask-1"}


def sft(**overrides) -> dict:
    record = sft_record(PROMPT, sql_reply("SELECT 1"), sql="SELECT 1", difficulty="easy", source="gold", **COMMON)
    record.update(overrides)
    return record


def dpo(**overrides) -> dict:
    record = dpo_record(PROMPT, sql_reply("SELECT 1"), sql_reply("SELECT 2"), pairing="nearest", chosen_sql="SELECT 1",
                        rejected_sql="SELECT 2", rejected_reason="wrong result", **COMMON)
    record.update(overrides)
    return record


@pytest.mark.parametrize("reasoning", [None, "The table t holds it; count its rows."])
def test_a_reply_parses_back_to_its_sql_as_ask_parses_it(reasoning: str | None) -> None:
    sql = "SELECT count(*)\nFROM t WHERE a = ';'"
    reply = sql_reply(sql, reasoning)
    assert parse_reply(reply).sql == sql
    assert reply.endswith("```") and reply.count("```sql") == 1
    assert (reasoning is None) == reply.startswith("```sql")


def test_clean_reply_drops_chat_template_tokens() -> None:
    assert clean_reply("  ```sql\nSELECT 1\n```<|im_end|>\n") == "```sql\nSELECT 1\n```"


def test_prompt_version_names_the_wording_per_dialect_and_mode() -> None:
    assert prompt_version("sqlite") == prompt_version("sqlite")
    assert prompt_version("sqlite").startswith("ask-")
    assert len({prompt_version("sqlite"), prompt_version("postgres"), prompt_version("sqlite", cot=True)}) == 3


def test_records_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    assert write_records(path, [sft(), sft(source="sampled", sql="SELECT 1 AS x")]) == 2
    assert read_records(path, "sft") == [sft(), sft(source="sampled", sql="SELECT 1 AS x")]
    write_records(tmp_path / "dpo.jsonl", [dpo()])
    assert read_records(tmp_path / "dpo.jsonl", "dpo") == [dpo()]
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, replaced whole


@pytest.mark.parametrize(("record", "message"), [
    (sft(sql=""), "no gold SQL"),
    ({k: v for k, v in sft().items() if k != "sql"}, "no gold SQL"),
    (sft(prompt=[]), "'prompt' must be a non-empty list"),
    (sft(prompt=[{"role": "user"}]), "not a chat message"),
    (sft(prompt=[{"role": "robot", "content": "x"}]), "role 'robot'"),
    (sft(prompt=PROMPT[:1]), "must end with the user's question"),
    (sft(completion=[{"role": "user", "content": "x"}]), "expected assistant"),
    (sft(completion=[{"role": "assistant", "content": "  "}]), "one non-empty assistant reply"),
    (sft(source="guess"), "'source' must be one of gold, sampled"),
    (sft(database=3), "'database' must be non-empty text"),
    (dpo(pairing="closest"), "'pairing' must be one of"),
    (dpo(rejected_reason=""), "'rejected_reason' must be non-empty text"),
    ({k: v for k, v in dpo().items() if k != "rejected"}, "not a DPO record: missing field(s) rejected"),
    (["not", "an", "object"], "expected a JSON object"),
])
def test_a_malformed_record_is_one_line_naming_where_and_what(record, message: str) -> None:
    kind = "dpo" if isinstance(record, dict) and "chosen" in record else "sft"
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        check_record(record, kind, "f.jsonl:7")
    assert str(info.value).startswith("f.jsonl:7: ") and "\n" not in str(info.value)


def test_read_records_refuses_missing_empty_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_records(tmp_path / "none.jsonl", "sft")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="no SFT records"):
        read_records(empty, "sft")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(sft()) + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"broken.jsonl:2: malformed JSON"):
        read_records(broken, "sft")
    dpo_file = tmp_path / "pairs.jsonl"
    write_records(dpo_file, [dpo()])
    with pytest.raises(DatasetError, match=r"pairs.jsonl:1: a DPO pair, where SFT records belong"):
        read_records(dpo_file, "sft")  # pairs given where SFT records belong
    with pytest.raises(DatasetError, match="no gold SQL"):
        write_records(tmp_path / "x.jsonl", [sft(sql=" ")])
    assert not (tmp_path / "x.jsonl").exists()


def test_records_load_with_hugging_face_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    write_records(tmp_path / "sft.jsonl", [sft(), sft(difficulty=None, model=None, source="sampled")])
    write_records(tmp_path / "dpo.jsonl", [dpo(), dpo(rejected_sql=None, rejected_reason="error: no SQL")])
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "sft.jsonl"), split="train",
                                   cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == 2 and loaded[0]["completion"] == [{"role": "assistant", "content": "```sql\nSELECT 1\n```"}]
    assert loaded[1]["difficulty"] is None
    pairs = datasets.load_dataset("json", data_files=str(tmp_path / "dpo.jsonl"), split="train",
                                  cache_dir=str(tmp_path / "hf"))
    assert pairs.column_names[:3] == ["prompt", "chosen", "rejected"]
    assert pairs[1]["rejected_sql"] is None
