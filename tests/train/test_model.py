"""The base model for training (train/model.py): the GGUF read by transformers is the model llama.cpp serves
(same logits as the tiny model's HF weights), dequantized once and cached by sha256; its tokenizer and chat
template come from the same file, so training sees the very prompt tokens `ask` sends; adapters are checked
against the base they were trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fit_helpers import SCHEMA, fit_settings
from tiny_model import TinyModel

from sqlwright.errors import AdapterMismatch, ModelMissing, UserError
from sqlwright.pipeline.prompt import build_messages

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return fit_settings(tmp_path_factory.mktemp("fit-model"))


@pytest.fixture(scope="module")
def loaded(tiny_model: TinyModel, settings):
    from sqlwright.train.model import load_base, resolve_base

    base = resolve_base(str(tiny_model.gguf_path), settings)
    model, tokenizer = load_base(base, settings)
    return base, model, tokenizer


def test_the_gguf_loads_as_the_same_model_and_is_cached_by_sha256(tiny_model: TinyModel, settings, loaded):
    from transformers import AutoModelForCausalLM

    from sqlwright.train.model import BASE_META, convert_base, resolve_base

    base, model, _tokenizer = loaded
    assert base.sha256 == tiny_model.sha256
    assert base.hf_dir == Path(settings.cache_dir) / "train" / f"base-{tiny_model.sha256[:16]}"
    assert base.converted and (base.hf_dir / "model.safetensors").is_file()
    meta = json.loads((base.hf_dir / BASE_META).read_text())
    assert meta["sha256"] == tiny_model.sha256 and meta["dtype"] == "float32"
    assert model.dtype == torch.float32 and torch.get_num_threads() == 1

    reference = AutoModelForCausalLM.from_pretrained(tiny_model.hf_dir, dtype=torch.float32)
    ids = torch.tensor([[5, 17, 42, 99, 256, 300]])
    with torch.no_grad():
        assert (model(ids).logits - reference(ids).logits).abs().max().item() < 1e-5

    # Converted once: a second resolution finds the directory and leaves it as it is.
    again = resolve_base(str(tiny_model.gguf_path), settings)
    assert again == base and convert_base(again) == base.hf_dir
    assert json.loads((base.hf_dir / BASE_META).read_text())["created"] == meta["created"]


def test_training_sees_the_prompt_tokens_ask_sends(tiny_model: TinyModel, loaded):
    """The chat template and tokenizer transformers reads from the GGUF render and tokenize `ask`'s messages
    exactly as the embedded backend does (llama.cpp's own template and tokenizer for the same file)."""
    llamacpp = pytest.importorskip("sqlwright.llm.llamacpp")
    _base, _model, tokenizer = loaded
    messages = build_messages(SCHEMA, "Which singers are from France?", dialect="sqlite", value_hints="France",
                              examples="Q: How many singers?\nSQL: SELECT count(*) FROM singer")
    llm = llamacpp.EmbeddedLLM(tiny_model.gguf_path, n_ctx=512, n_threads=1)
    try:
        served = llm.format_prompt(messages)
        served_ids = llm._prompt_tokens(served)
    finally:
        llm.close()
    trained = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert trained == served
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    assert list(ids["input_ids"]) == list(served_ids)


def test_what_cannot_be_trained_is_one_clear_line(tmp_path, settings):
    from sqlwright.train.model import resolve_base

    with pytest.raises(UserError, match="training needs the weights"):
        resolve_base("openai:gpt-4o", settings)
    with pytest.raises(ModelMissing, match="not found"):
        resolve_base(str(tmp_path / "missing.gguf"), settings)


def test_an_adapter_is_checked_against_its_base(tmp_path, loaded):
    from sqlwright.train.model import ADAPTER_META, read_adapter_meta, write_adapter_meta

    base = loaded[0]
    folder = tmp_path / "adapter"
    folder.mkdir()
    with pytest.raises(AdapterMismatch, match="not a LoRA adapter written by sqlwright"):
        read_adapter_meta(folder, base)
    (folder / "adapter_config.json").write_text("{}")
    write_adapter_meta(folder, base, "sft")
    meta = read_adapter_meta(folder, base)
    assert meta["base_sha256"] == base.sha256 and meta["kind"] == "sft" and meta["created"]

    other = json.loads((folder / ADAPTER_META).read_text()) | {"base": "qwen2.5-coder-1.5b", "base_sha256": "ab" * 32}
    (folder / ADAPTER_META).write_text(json.dumps(other))
    with pytest.raises(AdapterMismatch) as info:
        read_adapter_meta(folder, base)
    message = str(info.value)
    assert "another base model" in message and "qwen2.5-coder-1.5b" in message and "\n" not in message
    (folder / ADAPTER_META).write_text("not json")
    with pytest.raises(AdapterMismatch, match="malformed"):
        read_adapter_meta(folder, base)
