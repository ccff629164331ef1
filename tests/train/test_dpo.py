"""`train dpo` on the tiny model: two steps move the LoRA with a finite loss; the reference is the base with
the adapter disabled (no second model), or a frozen adapter when asked; an adapter trained on another base,
or a folder that is no adapter, is one line before the base is loaded."""

from __future__ import annotations

import importlib
import json
import math
import sys

import pytest
from fit_helpers import assert_trained, fit_settings, lora_tensors, write_dpo, write_sft
from tiny_model import TinyModel

from sqlwright.cli import main
from sqlwright.errors import AdapterMismatch, DatasetError

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

app_module = importlib.import_module("sqlwright.cli.app")
FAST = dict(batch_size=2, grad_accum=1, lr=1e-2, lora_r=4, lora_alpha=8)
LN2 = math.log(2)  # DPO's loss when the policy and the reference agree: -log sigmoid(0)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return fit_settings(tmp_path_factory.mktemp("fit-dpo"))


@pytest.fixture(scope="module")
def sft_adapter(tiny_model: TinyModel, settings, tmp_path_factory):
    """An SFT adapter of the tiny model, far from zero (two steps at a high learning rate)."""
    from sqlwright.train.sft import train_sft

    folder = tmp_path_factory.mktemp("sft-for-dpo")
    data = write_sft(folder / "sft.jsonl", 4)
    train_sft(data, model=str(tiny_model.gguf_path), out_dir=folder / "adapter", max_steps=2, settings=settings,
              **(FAST | {"lr": 5e-2}))
    return folder / "adapter"


def first_step(metrics_path) -> dict:
    return next(json.loads(line) for line in metrics_path.read_text().splitlines() if '"loss"' in line)


def test_two_dpo_steps_against_the_base_with_the_adapter_disabled(tiny_model: TinyModel, settings, tmp_path):
    from sqlwright.train.dpo import train_dpo

    data = write_dpo(tmp_path / "dpo.jsonl", 3)
    out = tmp_path / "adapter"
    report = train_dpo(data, model=str(tiny_model.gguf_path), out_dir=out, max_steps=2, beta=0.1,
                       settings=settings, **FAST)
    assert report.steps == 2 and report.records == 3 and math.isfinite(report.final_loss)
    assert_trained(out)
    # A new LoRA starts at zero: at step 1 the policy is the reference, so the reference is the base itself.
    step1 = first_step(out / "metrics.jsonl")
    assert step1["loss"] == pytest.approx(LN2, abs=1e-5)
    assert step1["rewards/chosen"] == pytest.approx(0, abs=1e-6)
    meta = json.loads((out / "sqlwright-adapter.json").read_text())
    assert meta["kind"] == "dpo" and meta["base_sha256"] == tiny_model.sha256
    assert not (out / "ref").exists() and not [k for k in lora_tensors(out) if ".ref." in k]  # only the trained one
    assert "beta" in (out / "README.md").read_text()


@pytest.mark.parametrize("setup", ["init sft, ref base", "init sft, ref sft", "new lora, ref sft"])
def test_the_reference_is_what_was_asked(setup, tiny_model: TinyModel, settings, sft_adapter, tmp_path):
    """Policy and reference agree at step 1 (loss ln 2, zero rewards) exactly when they start equal."""
    from sqlwright.train.dpo import train_dpo

    init = sft_adapter if setup.startswith("init sft") else None
    ref = sft_adapter if setup.endswith("ref sft") else "base"
    data = write_dpo(tmp_path / "dpo.jsonl", 2)
    out = tmp_path / "adapter"
    report = train_dpo(data, model=str(tiny_model.gguf_path), out_dir=out, max_steps=1, ref=ref, init_adapter=init,
                       settings=settings, **FAST)
    step1 = first_step(out / "metrics.jsonl")
    same_start = setup == "init sft, ref sft"
    assert (abs(step1["loss"] - LN2) < 1e-5) is same_start, step1
    assert (abs(step1["rewards/chosen"]) < 1e-6) is same_start, step1
    assert math.isfinite(report.final_loss)
    if init is not None:  # the policy started from the SFT adapter and moved on from it
        start, end = lora_tensors(sft_adapter), lora_tensors(out)
        assert start.keys() == end.keys()
        assert any(not torch.equal(start[k], end[k]) for k in start)


def test_an_adapter_for_another_base_is_one_line(tiny_model: TinyModel, sft_adapter, tmp_path, capsys, monkeypatch):
    import shutil

    from sqlwright.train.dpo import train_dpo

    data = write_dpo(tmp_path / "dpo.jsonl", 2)
    foreign = tmp_path / "foreign"
    shutil.copytree(sft_adapter, foreign, ignore=shutil.ignore_patterns("checkpoints"))
    meta = json.loads((foreign / "sqlwright-adapter.json").read_text())
    meta.update(base="qwen2.5-coder-1.5b", base_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")
    (foreign / "sqlwright-adapter.json").write_text(json.dumps(meta))
    settings = fit_settings(tmp_path)
    for kwargs in ({"init_adapter": foreign}, {"ref": foreign}):
        with pytest.raises(AdapterMismatch, match="trained on another base model"):
            train_dpo(data, model=str(tiny_model.gguf_path), out_dir=tmp_path / "out", settings=settings, **kwargs)
    with pytest.raises(AdapterMismatch, match="not a LoRA adapter"):
        train_dpo(data, model=str(tiny_model.gguf_path), out_dir=tmp_path / "out", settings=settings,
                  init_adapter=tmp_path)
    assert not (settings.cache_dir / "train").exists() or not list((settings.cache_dir / "train").glob("base-*"))

    monkeypatch.setattr(sys, "argv", ["sqlwright", "train", "dpo", str(data), "--model", str(tiny_model.gguf_path),
                                      "--out", str(tmp_path / "out"), "--init-adapter", str(foreign)])
    monkeypatch.setattr(app_module.err_console, "width", 60)
    monkeypatch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path / "cli-cache"))
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.count("\n") == 1 and "another base model" in err and "qwen2.5-coder-1.5b" in err


def test_bad_pairs_are_one_line(tmp_path):
    from sqlwright.train.dpo import train_dpo

    sft = write_sft(tmp_path / "sft.jsonl", 2)  # SFT records are not pairs
    with pytest.raises(DatasetError, match="SFT record"):
        train_dpo(sft, model="/nonexistent/model.gguf", out_dir=tmp_path / "out")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DatasetError, match="no DPO records"):
        train_dpo(empty, model="/nonexistent/model.gguf", out_dir=tmp_path / "out")
