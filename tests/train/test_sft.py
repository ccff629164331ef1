"""`train sft` on the tiny model: two steps move the LoRA with a finite loss and write the adapter directory
(PEFT files, sqlwright-adapter.json, model card, metrics); a run stopped after step 1 resumes at step 2 with
its optimizer state; the curriculum trains its two stages in order; bad input is one line before any model
work; and the command runs under `accelerate launch`."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fit_helpers import assert_trained, fit_settings, sft_records, step_losses, write_sft
from tiny_model import TinyModel

from sqlwright.cli import main
from sqlwright.errors import DatasetError

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

app_module = importlib.import_module("sqlwright.cli.app")
REPO = Path(__file__).resolve().parents[2]
FAST = dict(batch_size=2, grad_accum=1, lr=1e-2, lora_r=4, lora_alpha=8)  # 2 records a step, visible moves


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return fit_settings(tmp_path_factory.mktemp("fit-sft"))


def test_two_sft_steps_train_the_adapter(tiny_model: TinyModel, settings, tmp_path):
    from sqlwright.train.sft import train_sft

    data = write_sft(tmp_path / "sft.jsonl", 4)
    out = tmp_path / "adapter"
    report = train_sft(data, model=str(tiny_model.gguf_path), out_dir=out, max_steps=2, settings=settings, **FAST)

    assert report.steps == 2 and report.records == 4 and report.base_sha256 == tiny_model.sha256
    assert report.final_loss is not None and math.isfinite(report.final_loss)
    assert_trained(out)
    losses = step_losses(out / "metrics.jsonl")
    assert sorted(losses) == [1, 2] and losses[2] == pytest.approx(report.final_loss)

    meta = json.loads((out / "sqlwright-adapter.json").read_text())
    assert meta["base"] == str(tiny_model.gguf_path.resolve()) and meta["base_sha256"] == tiny_model.sha256
    assert meta["kind"] == "sft" and meta["created"] and meta["lora_r"] == 4
    config = json.loads((out / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"}
    card = (out / "README.md").read_text()
    assert tiny_model.sha256 in card and "sft" in card.lower() and "| lr | 0.01 |" in card
    assert [p.name for p in (out / "checkpoints" / "all").glob("checkpoint-*")]  # a checkpoint to resume from


def test_a_stopped_run_resumes_with_its_optimizer_state(tiny_model: TinyModel, settings, tmp_path):
    from sqlwright.train.sft import train_sft

    data = write_sft(tmp_path / "sft.jsonl", 4)
    out = tmp_path / "adapter"
    first = train_sft(data, model=str(tiny_model.gguf_path), out_dir=out, max_steps=1, settings=settings, **FAST)
    assert first.steps == 1 and first.stages[0].resumed_from == 0
    step1 = torch.load(out / "checkpoints/all/checkpoint-1/optimizer.pt", weights_only=False)

    second = train_sft(data, model=str(tiny_model.gguf_path), out_dir=out, max_steps=2, settings=settings, **FAST)
    assert second.steps == 2 and second.stages[0].resumed_from == 1
    step2 = torch.load(out / "checkpoints/all/checkpoint-2/optimizer.pt", weights_only=False)
    # Adam went on counting from the checkpoint (a fresh optimizer would be at step 1 again), and its moments
    # moved on from the saved ones.
    assert {float(s["step"]) for s in step1["state"].values()} == {1.0}
    assert {float(s["step"]) for s in step2["state"].values()} == {2.0}
    key = next(iter(step1["state"]))
    assert not torch.equal(step1["state"][key]["exp_avg"], step2["state"][key]["exp_avg"])
    losses = step_losses(out / "metrics.jsonl")  # each step logged once, across both runs
    assert sorted(losses) == [1, 2] and losses[1] == pytest.approx(first.final_loss)

    # Finished: the same run again trains nothing more; other data on the same --out is refused.
    again = train_sft(data, model=str(tiny_model.gguf_path), out_dir=out, max_steps=2, settings=settings, **FAST)
    assert again.steps == 2 and again.stages[0].resumed_from == 2
    other = write_sft(tmp_path / "other.jsonl", 3)
    with pytest.raises(Exception, match="holds a run with other data") as info:
        train_sft(other, model=str(tiny_model.gguf_path), out_dir=out, max_steps=2, settings=settings, **FAST)
    assert info.value.exit_code == 2
    # ...unless asked to start over: checkpoints and metrics of the old run go.
    over = train_sft(other, model=str(tiny_model.gguf_path), out_dir=out, max_steps=1, resume=False,
                     settings=settings, **FAST)
    assert over.steps == 1 and over.stages[0].resumed_from == 0 and over.records == 3
    assert sorted(step_losses(out / "metrics.jsonl")) == [1]
    assert not (out / "checkpoints/all/checkpoint-2").exists()


def test_the_curriculum_trains_easy_then_hard(tiny_model: TinyModel, settings, tmp_path):
    from sqlwright.train.sft import train_sft

    data = write_sft(tmp_path / "sft.jsonl", 4)  # easy, medium, hard, extra
    out = tmp_path / "adapter"
    report = train_sft(data, model=str(tiny_model.gguf_path), out_dir=out, max_steps=1, curriculum=True,
                       settings=settings, **FAST)
    assert [(s.name, s.records, s.steps) for s in report.stages] == [("easy-medium", 2, 1), ("hard-extra", 2, 1)]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows if "loss" in r] == ["easy-medium", "hard-extra"]
    stage1 = (out / "checkpoints/easy-medium/adapter/adapter_model.safetensors").read_bytes()
    assert stage1 != (out / "adapter_model.safetensors").read_bytes()  # the second stage went on from the first
    assert_trained(out)
    assert "hard-extra" in (out / "README.md").read_text()


# --- bad input ---------------------------------------------------------------------------------------------------
def invoke(capsys, monkeypatch, args: list[str]) -> tuple[int, str, str]:
    """Run `sqlwright ARGS` in this process as the executable does: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["sqlwright", *args])
    monkeypatch.setattr(app_module.err_console, "width", 80)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize("case", ["no gold", "empty", "not json"])
def test_bad_records_are_one_line_before_any_model_work(case, tmp_path, capsys, monkeypatch):
    data = tmp_path / "sft.jsonl"
    if case == "no gold":
        records = sft_records(2)
        del records[1]["sql"]
        data.write_text("".join(json.dumps(r) + "\n" for r in records))
        expected = "no gold SQL"
    elif case == "empty":
        data.write_text("\n")
        expected = "no SFT records"
    else:
        data.write_text("{not json\n")
        expected = "malformed JSON"
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = invoke(capsys, monkeypatch, ["train", "sft", str(data), "--model", "/nonexistent/model.gguf",
                                                  "--out", str(tmp_path / "out")])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()

    from sqlwright.train.sft import train_sft

    with pytest.raises(DatasetError, match=expected):
        train_sft(data, model="/nonexistent/model.gguf", out_dir=tmp_path / "out")


def test_the_command_line_trains_and_reports(tiny_model: TinyModel, tmp_path, capsys, monkeypatch):
    data = write_sft(tmp_path / "sft.jsonl", 3)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = invoke(capsys, monkeypatch, [
        "train", "sft", str(data), "--model", str(tiny_model.gguf_path), "--out", str(tmp_path / "adapter"),
        "--max-steps", "1", "--batch-size", "3", "--grad-accum", "1", "--threads", "1", "--format", "json"])
    assert code in (0, None), err
    report = json.loads(out)
    assert report["kind"] == "sft" and report["steps"] == 1 and math.isfinite(report["final_loss"])
    assert Path(report["out_dir"], "adapter_model.safetensors").is_file()

    # As a table: the progress bar (steps, loss, ETA) on stderr, one summary line on stdout.
    code, out, err = invoke(capsys, monkeypatch, [
        "train", "sft", str(data), "--model", str(tiny_model.gguf_path), "--out", str(tmp_path / "adapter2"),
        "--max-steps", "1", "--batch-size", "3", "--grad-accum", "1", "--threads", "1"])
    assert code in (0, None), err
    assert "sft" in err and "1/1" in err and "loss " in err and "eta" in err
    assert out.startswith("sft: 1 steps on 3 records") and "final loss" in out and out.count("\n") == 1


def test_it_runs_under_accelerate_launch(tiny_model: TinyModel, tmp_path):
    """One process on the CPU, as `accelerate launch` starts it (docs/training.md)."""
    pytest.importorskip("accelerate")
    data = write_sft(tmp_path / "sft.jsonl", 2)
    out = tmp_path / "adapter"
    env = {**os.environ, "SQLWRIGHT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1",
               "-m", "sqlwright", "train", "sft", str(data), "--model", str(tiny_model.gguf_path), "--out", str(out),
               "--max-steps", "1", "--batch-size", "2", "--grad-accum", "1", "--threads", "1", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["steps"] == 1 and math.isfinite(report["final_loss"])
    assert json.loads((out / "sqlwright-adapter.json").read_text())["base_sha256"] == tiny_model.sha256


@pytest.mark.parametrize("command", ["sft", "dpo", "grpo"])
def test_a_missing_train_extra_is_one_line(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # as if not installed
    data = write_sft(tmp_path / "sft.jsonl", 2)
    code, out, err = invoke(capsys, monkeypatch, ["train", command, str(data), "--model", "/nonexistent/model.gguf",
                                                  "--out", str(tmp_path / "out")])
    assert code == 2 and out == ""
    assert err == "error: install the train extra: pip install 'sqlwright[train]' (missing: peft)\n"
    assert not (tmp_path / "out").exists()
