"""Export of a PEFT LoRA to llama.cpp, checked against PyTorch on the tiny Qwen2: the GGUF adapter on the base
GGUF gives PyTorch's base+LoRA logits, merged or not, on an F32 or a quantized base; a LoRA for another base
and what llama.cpp cannot hold are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_model import ATTENTION_AND_MLP, TinyModel, make_random_lora

pytest.importorskip("peft")
llama_cpp = pytest.importorskip("llama_cpp")

from sqlwright.errors import AdapterMismatch, UserError  # noqa: E402
from sqlwright.train.export import (  # noqa: E402
    KEY_BASE_SHA256,
    check_adapter_logits,
    export_gguf_adapter,
    merge_adapter,
    quantize_gguf,
)
from sqlwright.train.logit_check import (  # noqa: E402
    CHECK_PROMPTS,
    F32_TOLERANCE,
    adapter_logit_check,
    llama_cpp_logits,
    llama_cpp_tokens,
    merged_logit_check,
)
from sqlwright.train.model import BaseModelFile, resolve_base, write_adapter_meta  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Training's float32 copies of the bases go to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SQLWRIGHT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def _base(tiny: TinyModel) -> BaseModelFile:
    return BaseModelFile(str(tiny.gguf_path), tiny.gguf_path, tiny.sha256, tiny.hf_dir)


@pytest.fixture(scope="module")
def lora(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained-looking adapter on the tiny model: random non-zero A and B on every attention/MLP matrix."""
    adapter = make_random_lora(tiny_model.hf_dir, tmp_path_factory.mktemp("lora") / "adapter")
    write_adapter_meta(adapter, _base(tiny_model), "sft")
    return adapter


@pytest.fixture(scope="module")
def exported(lora: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_gguf_adapter(lora, tmp_path_factory.mktemp("gguf") / "adapter.gguf")


def _metadata(path: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}


def test_gguf_adapter_logits_match_pytorch(tiny_model: TinyModel, lora: Path, exported: Path) -> None:
    # PyTorch's side is the base as training loads it: transformers' float32 copy of the GGUF.
    check = adapter_logit_check(lora, exported, tiny_model.gguf_path)
    assert check.f32 and check.passed
    assert check.max_diff < F32_TOLERANCE and check.base_max_diff < F32_TOLERANCE
    # ...and the adapter matters: llama.cpp's logits move by nats with it.
    ids = llama_cpp_tokens(tiny_model.gguf_path, CHECK_PROMPTS[0])
    moved = np.abs(llama_cpp_logits(tiny_model.gguf_path, ids, exported) - llama_cpp_logits(tiny_model.gguf_path, ids))
    assert moved.max() > 1.0
    meta = _metadata(exported)
    assert (meta["general.type"], meta["adapter.type"], meta["adapter.lora.alpha"]) == ("adapter", "lora", 8.0)
    assert meta[KEY_BASE_SHA256] == tiny_model.sha256


def test_every_target_and_per_module_scales(tiny_model: TinyModel, tmp_path: Path) -> None:
    """Embeddings (a flipped pair in llama.cpp), the output matrix, rsLoRA and rank/alpha patterns: scales
    llama.cpp's one alpha cannot express are folded into B."""
    adapter = make_random_lora(tiny_model.hf_dir, tmp_path / "adapter", seed=1,
                               targets=(*ATTENTION_AND_MLP, "embed_tokens", "lm_head"), use_rslora=True,
                               rank_pattern={"q_proj": 2}, alpha_pattern={"down_proj": 3.0})
    write_adapter_meta(adapter, _base(tiny_model), "dpo")
    out = export_gguf_adapter(adapter, tmp_path / "adapter.gguf")
    assert _metadata(out)["adapter.lora.alpha"] == 0.0
    assert check_adapter_logits(adapter, out, tiny_model.gguf_path, base_hf_dir=tiny_model.hf_dir) < F32_TOLERANCE


def test_merged_model_matches_the_adapter(tiny_model: TinyModel, lora: Path, exported: Path, tmp_path: Path) -> None:
    ids = llama_cpp_tokens(tiny_model.gguf_path, CHECK_PROMPTS[0])
    with_adapter = llama_cpp_logits(tiny_model.gguf_path, ids, exported)
    merged = merge_adapter(lora, tmp_path / "merged.gguf", outtype="f32")
    assert np.abs(llama_cpp_logits(merged, ids) - with_adapter).max() < F32_TOLERANCE
    assert _metadata(merged)["tokenizer.chat_template"] == _metadata(tiny_model.gguf_path)["tokenizer.chat_template"]
    quantized = merge_adapter(lora, tmp_path / "merged-q8.gguf", quantize="q8_0")
    assert quantized.stat().st_size < merged.stat().st_size / 2
    assert np.abs(llama_cpp_logits(quantized, ids) - with_adapter).max() < 1.0
    # Against PyTorch, with the base converted the same way (adapter scaled to 0) as the reference.
    assert merged_logit_check(lora, merged, tiny_model.gguf_path, outtype="f32",
                              base_hf_dir=tiny_model.hf_dir).max_diff < F32_TOLERANCE
    check = merged_logit_check(lora, quantized, tiny_model.gguf_path, quantize="q8_0", base_hf_dir=tiny_model.hf_dir)
    assert not check.f32 and check.passed and check.base_max_diff > F32_TOLERANCE, check
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*part"))


def test_adapter_on_a_quantized_base(tiny_model: TinyModel, tmp_path: Path) -> None:
    """The real flow: the base is a quantized GGUF, training sees its dequantized copy, llama.cpp serves the
    adapter on the quantized file. The difference is the base's own, the adapter adds little to it."""
    quantized = quantize_gguf(tiny_model.gguf_path, tmp_path / "tiny-q8_0.gguf", "q8_0")
    base = resolve_base(str(quantized))
    from sqlwright.train.model import convert_base

    adapter = make_random_lora(convert_base(base), tmp_path / "adapter")
    write_adapter_meta(adapter, base, "sft")
    out = export_gguf_adapter(adapter, tmp_path / "adapter.gguf")
    check = adapter_logit_check(adapter, out, quantized)
    assert not check.f32 and check.passed, check
    assert check.base_max_diff > F32_TOLERANCE  # quantization shows: the tolerance is the base's own


def test_adapter_trained_on_another_base_is_refused(tiny_model: TinyModel, lora: Path, tmp_path: Path) -> None:
    meta = json.loads((lora / "sqlwright-adapter.json").read_text())
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for path in lora.iterdir():
        (foreign / path.name).write_bytes(path.read_bytes())
    (foreign / "sqlwright-adapter.json").write_text(json.dumps(meta | {"base_sha256": "0" * 64}))
    with pytest.raises(AdapterMismatch, match="trained on another base model") as info:
        export_gguf_adapter(foreign, tmp_path / "out.gguf", base=str(tiny_model.gguf_path))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.gguf").exists()


def test_lora_for_a_model_of_another_shape_is_refused(tiny_model: TinyModel, tmp_path: Path) -> None:
    """A PEFT adapter sqlwright did not write (no metadata) for a Qwen2 of another size."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config.from_pretrained(tiny_model.hf_dir)
    config.intermediate_size = 96
    other = tmp_path / "other"
    Qwen2ForCausalLM(config).to(torch.float32).save_pretrained(other)
    adapter = make_random_lora(other, tmp_path / "adapter")
    with pytest.raises(AdapterMismatch, match="made for another model"):
        export_gguf_adapter(adapter, tmp_path / "out.gguf", base=str(tiny_model.gguf_path))
    with pytest.raises(UserError, match="give the base model with --base"):
        export_gguf_adapter(adapter, tmp_path / "out.gguf")


def test_what_llama_cpp_cannot_hold_is_refused(tiny_model: TinyModel, tmp_path: Path) -> None:
    adapter = make_random_lora(tiny_model.hf_dir, tmp_path / "dora", use_dora=True)
    with pytest.raises(UserError, match=r"DoRA \(use_dora\)"):
        export_gguf_adapter(adapter, tmp_path / "out.gguf", base=str(tiny_model.gguf_path))
    with pytest.raises(AdapterMismatch, match="not a LoRA adapter directory"):
        export_gguf_adapter(tmp_path, tmp_path / "out.gguf", base=str(tiny_model.gguf_path))


# --- sqlwright train export ------------------------------------------------------------------------------------
def _cli(*args: str):
    from typer.testing import CliRunner

    from sqlwright.cli import app

    return CliRunner().invoke(app, ["train", "export", *args])


def test_cli_exports_and_checks(lora: Path, tmp_path: Path) -> None:
    result = _cli(str(lora), "--out", str(tmp_path / "a.gguf"), "--check", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # (transformers' progress bars go to stderr)
    assert summary["check"]["passed"] and summary["check"]["max_diff"] < F32_TOLERANCE
    assert (tmp_path / "a.gguf").stat().st_size == summary["bytes"]
    merged = _cli(str(lora), "--out", str(tmp_path / "m.gguf"), "--merge", "--outtype", "f32", "--check")
    assert merged.exit_code == 0, merged.output
    assert "wrote merged model" in merged.output and ": ok" in merged.output


def test_cli_refusals_are_one_line_exit_2(tiny_model: TinyModel, lora: Path, tmp_path: Path, monkeypatch) -> None:
    meta = json.loads((lora / "sqlwright-adapter.json").read_text())
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for path in lora.iterdir():
        (foreign / path.name).write_bytes(path.read_bytes())
    (foreign / "sqlwright-adapter.json").write_text(json.dumps(meta | {"base_sha256": "f" * 64}))
    result = _cli(str(foreign), "--out", str(tmp_path / "x.gguf"))
    assert result.exit_code == 2 and "trained on another base model" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.gguf").exists()

    result = _cli(str(lora), "--out", str(tmp_path / "x.gguf"), "--quantize", "q4_0")
    assert result.exit_code == 2 and "are for --merge" in result.output

    monkeypatch.setitem(__import__("sys").modules, "gguf", None)  # the [train] extra is not installed
    result = _cli(str(lora), "--out", str(tmp_path / "x.gguf"))
    assert result.exit_code == 2 and "install the train extra: pip install 'sqlwright[train]'" in result.output
