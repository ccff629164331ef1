"""The exported dataset: JSON Lines with the documented fields (loadable by Hugging Face `datasets`) and the
datasheet next to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synth_helpers import FakeModel, make_db

from sqlwright.db import open_database
from sqlwright.pipeline import AskOptions
from sqlwright.synth.dataset import PENDING, datasheet_paths, export_dataset, render_datasheet
from sqlwright.synth.prompts import PROMPT_VERSION
from sqlwright.synth.run import Synthesizer
from sqlwright.synth.workfile import WorkFile

FIELDS = ["id", "database", "dialect", "question", "evidence", "style", "sql", "complexity", "result_hash",
          "verified", "reason", "cot", "provenance"]


@pytest.fixture(scope="module")
def work_path(tmp_path_factory) -> Path:
    """A work file with verified, unverified and not yet verified pairs, some with a chain of thought."""
    tmp = tmp_path_factory.mktemp("synth")
    with open_database(str(make_db(tmp / "c.sqlite"))) as db, WorkFile(tmp / "w.synth") as work:
        synth = Synthesizer(work, generator=FakeModel(), embedder=None, cache_dir=tmp / "cache",
                            ask_options=AskOptions.greedy(), seed=1)
        name = synth.add_database(db, "concerts")
        synth.run(name, pairs=3, cot=True)
        synth.sql(name, per_level=3, levels=["simple"])
        synth.questions()  # the last ones are left unverified: "pending"
    return tmp / "w.synth"


def test_jsonl_has_the_documented_fields(work_path: Path, tmp_path: Path) -> None:
    with WorkFile(work_path) as work:
        export = export_dataset(work, tmp_path / "pairs.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(lines) == export.pairs > export.verified >= 3
    for line in lines:
        assert list(line) == FIELDS
        assert line["database"] == "concerts" and line["dialect"] == "sqlite"
        assert line["verified"] == (line["reason"] is None)
        assert len(line["result_hash"]) == 64
        assert set(line["provenance"]) == {"model", "question_model", "verifier", "prompt_version", "seed", "time"}
        assert line["provenance"]["prompt_version"] == PROMPT_VERSION
        assert line["cot"] is None or ("```sql" in line["cot"] and line["verified"])
    assert any(line["cot"] for line in lines)
    assert PENDING in {line["reason"] for line in lines}
    assert {line["reason"] for line in lines} - {None, PENDING} <= {"abstained", "different_result", "error"}


def test_verified_only_export(work_path: Path, tmp_path: Path) -> None:
    with WorkFile(work_path) as work:
        export = export_dataset(work, tmp_path / "v.jsonl", verified_only=True)
    lines = (tmp_path / "v.jsonl").read_text().splitlines()
    assert len(lines) == export.pairs == export.verified and all(json.loads(x)["verified"] for x in lines)


def test_the_datasheet_counts_and_costs(work_path: Path, tmp_path: Path) -> None:
    with WorkFile(work_path) as work:
        export_dataset(work, tmp_path / "pairs.jsonl")
        attempts = work.attempts("concerts")
    md, js = datasheet_paths(tmp_path / "pairs.jsonl")
    assert (md.name, js.name) == ("pairs.datasheet.md", "pairs.datasheet.json")
    sheet = json.loads(js.read_text())
    assert sheet["by_database"]["concerts"]["pairs"] == sheet["pairs"]
    assert sum(c["pairs"] for c in sheet["by_complexity"].values()) == sheet["pairs"]
    assert sum(c["pairs"] for c in sheet["by_style"].values()) == sheet["pairs"]
    assert sum(c["verified"] for c in sheet["by_style"].values()) == sheet["verified"]
    assert sheet["verified_share"] == pytest.approx(sheet["verified"] / sheet["pairs"])
    assert sheet["sql"]["attempts"] == attempts
    assert sum(sheet["sql"]["rejections"].values()) + sheet["sql"]["kept"] == attempts
    assert sheet["cot"]["kept"] >= 1
    assert set(sheet["stages"]) == {"sql", "questions", "verify", "cot"}
    assert all(s["seconds"] >= 0 and s["cpu_seconds"] >= 0 for s in sheet["stages"].values())
    assert sheet["verified_pairs_per_cpu_hour"] > 0
    text = md.read_text()
    assert text == render_datasheet(sheet)
    for heading in ("By database", "By complexity", "By style", "rejected, by reason", "Cost per stage"):
        assert heading in text


def test_an_empty_work_file_exports_an_empty_dataset(tmp_path: Path) -> None:
    with WorkFile(tmp_path / "w.synth") as work:
        export = export_dataset(work, tmp_path / "out" / "pairs.jsonl")
    assert export.pairs == 0 and (tmp_path / "out" / "pairs.jsonl").read_text() == ""
    assert "pairs: 0" in (tmp_path / "out" / "pairs.datasheet.md").read_text()


def test_huggingface_datasets_loads_the_jsonl(work_path: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    with WorkFile(work_path) as work:
        export = export_dataset(work, tmp_path / "pairs.jsonl")
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "pairs.jsonl"), split="train",
                                   cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == export.pairs
    assert loaded.column_names == FIELDS
    assert sum(loaded["verified"]) == export.verified
    assert loaded[0]["provenance"]["prompt_version"] == PROMPT_VERSION
