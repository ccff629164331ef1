"""Helpers of the fitting tests (test_model, test_sft, test_dpo, test_grpo): a few SFT and DPO records in the
records' own format (train/records.py), with the prompt `ask` builds, and settings that keep every file of a
test (the converted base included) under its temporary directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

from sqlwright.config import Settings, load_settings
from sqlwright.pipeline.prompt import build_messages
from sqlwright.train.records import dpo_record, prompt_version, sft_record, sql_reply, write_records

SCHEMA = ("CREATE TABLE singer (\n  singer_id INTEGER PRIMARY KEY,\n  name TEXT,\n  country TEXT,\n  age INTEGER\n)")
DATABASE = "concert"
ROWS = [(1, "Joe Sharp", "Netherlands", 52), (2, "Timbaland", "United States", 32), (3, "Justin Brown", "France", 29),
        (4, "Rose White", "France", 41)]

# (question, gold SQL, difficulty, a wrong SQL)
QUESTIONS = [
    ("How many singers are there?", "SELECT count(*) FROM singer", "easy", "SELECT count(*) FROM singer WHERE age > 40"),
    ("Names of the singers from France?", "SELECT name FROM singer WHERE country = 'France'", "medium",
     "SELECT name FROM singer"),
    ("Average age of the singers of each country?", "SELECT country, avg(age) FROM singer GROUP BY country", "hard",
     "SELECT country, max(age) FROM singer GROUP BY country"),
    ("Name of the oldest singer?", "SELECT name FROM singer ORDER BY age DESC LIMIT 1", "extra",
     "SELECT name FROM singer ORDER BY age LIMIT 1"),
]


def fit_settings(tmp: Path) -> Settings:
    """Settings for a test: the cache (where the base is converted) under `tmp`, one torch thread."""
    return load_settings(cache_dir=str(tmp / "cache"), threads=1)


def sft_records(count: int = 4) -> list[dict]:
    version = prompt_version("sqlite")
    return [sft_record(build_messages(SCHEMA, q, dialect="sqlite"), sql_reply(gold), database=DATABASE,
                       dialect="sqlite", question=q, sql=gold, difficulty=level, source="gold", model=None,
                       prompt_version=version)
            for q, gold, level, _wrong in QUESTIONS[:count]]


def dpo_records(count: int = 3) -> list[dict]:
    version = prompt_version("sqlite")
    return [dpo_record(build_messages(SCHEMA, q, dialect="sqlite"), sql_reply(gold), sql_reply(wrong),
                       database=DATABASE, dialect="sqlite", question=q, pairing="nearest", chosen_sql=gold,
                       rejected_sql=wrong, rejected_reason="wrong result", model="tiny", prompt_version=version)
            for q, gold, _level, wrong in QUESTIONS[:count]]


def write_sft(path: Path, count: int = 4) -> Path:
    write_records(path, sft_records(count))
    return path


def write_dpo(path: Path, count: int = 3) -> Path:
    write_records(path, dpo_records(count))
    return path


def lora_tensors(adapter_dir: Path) -> dict:
    """The adapter's tensors by name."""
    from safetensors.torch import load_file

    return load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))


def assert_trained(adapter_dir: Path) -> None:
    """The adapter learned something: its LoRA B matrices (zero when a LoRA is created) are no longer zero,
    and every tensor is finite."""
    tensors = lora_tensors(adapter_dir)
    b = [t for name, t in tensors.items() if "lora_B" in name]
    assert b, sorted(tensors)
    assert all(bool(t.isfinite().all()) for t in tensors.values())
    assert any(float(t.abs().sum()) > 0 for t in b)


def step_losses(metrics_path: Path, stage: str | None = None) -> dict[int, float]:
    """{step: loss} of the optimizer steps in a metrics.jsonl (each step once)."""
    out: dict[int, float] = {}
    for line in Path(metrics_path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "loss" in row and (stage is None or row["stage"] == stage):
            assert row["step"] not in out, f"step {row['step']} logged twice"
            out[row["step"]] = float(row["loss"])
    assert all(math.isfinite(v) for v in out.values()), out
    return out


def make_sqlite(path: Path) -> Path:
    """The `concert` database the records ask about (a `<name>/<name>.sqlite` under a --db-dir)."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)")
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", ROWS)
    conn.commit()
    conn.close()
    return path
