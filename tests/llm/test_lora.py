"""A LoRA adapter served by the embedded backend on the tiny Qwen2 (tests/train/tiny_model.py): the adapted
model generates what PyTorch's base+LoRA generates, `--lora` / SQLWRIGHT_LORA and named adapter models
(`models add|list|path|remove`) load it, an adapter for another model file is refused with one line, and
the prompt cache keeps the adapted model's states apart from the base's."""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
for _module in ("torch", "transformers", "peft", "gguf", "llama_cpp"):
    pytest.importorskip(_module)

from tiny_model import TinyModel, build_tiny_qwen2, make_random_lora  # noqa: E402

from sqlwright.cli import app  # noqa: E402
from sqlwright.config import load_settings  # noqa: E402
from sqlwright.errors import AdapterMismatch, ConfigError, ModelMissing, UnknownModel  # noqa: E402
from sqlwright.llm import PromptCache, clear_loaded_models, load_llm  # noqa: E402
from sqlwright.llm.adapters import read_adapter  # noqa: E402
from sqlwright.llm.llamacpp import EmbeddedLLM  # noqa: E402

runner = CliRunner()
MESSAGES = [{"role": "system", "content": "You write SQLite."}, {"role": "user", "content": "How many singers?"}]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """A cache directory of the module's own (named models, prompt states, training's base copies)."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SQLWRIGHT_CACHE_DIR", str(path))
        patch.delenv("SQLWRIGHT_LORA", raising=False)
        yield path
    clear_loaded_models()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def adapter(tiny: TinyModel, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(PEFT directory, exported GGUF adapter) for the tiny model."""
    from sqlwright.train.export import export_gguf_adapter
    from sqlwright.train.model import BaseModelFile, write_adapter_meta

    folder = tmp_path_factory.mktemp("lora")
    peft_dir = make_random_lora(tiny.hf_dir, folder / "adapter")
    write_adapter_meta(peft_dir, BaseModelFile(str(tiny.gguf_path), tiny.gguf_path, tiny.sha256, tiny.hf_dir), "sft")
    return peft_dir, export_gguf_adapter(peft_dir, folder / "adapter.gguf")


def _pytorch_greedy(tiny: TinyModel, peft_dir: Path | None, max_tokens: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny.hf_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny.hf_dir, dtype=torch.float32)
    if peft_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(peft_dir))
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=False)
    out = model.eval().generate(torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False)
    # llama.cpp's text drops bytes that are not UTF-8 on their own; transformers' replaces them.
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).replace("\ufffd", "")


def test_the_adapted_model_generates_what_pytorch_generates(tiny: TinyModel, adapter, cache_dir: Path) -> None:
    peft_dir, gguf_adapter = adapter
    with closing(EmbeddedLLM(tiny.gguf_path, n_ctx=512, lora_path=gguf_adapter)) as adapted:
        [reply] = adapted.complete(MESSAGES, max_tokens=12)
    with closing(EmbeddedLLM(tiny.gguf_path, n_ctx=512)) as base:
        [base_reply] = base.complete(MESSAGES, max_tokens=12)
    assert reply.text == _pytorch_greedy(tiny, peft_dir, 12)
    assert base_reply.text == _pytorch_greedy(tiny, None, 12)
    assert reply.text != base_reply.text


def test_lora_setting_loads_the_adapter(tiny: TinyModel, adapter, cache_dir: Path) -> None:
    _, gguf_adapter = adapter
    adapted = load_llm(str(tiny.gguf_path), load_settings(lora=str(gguf_adapter), n_ctx=512))
    base = load_llm(str(tiny.gguf_path), load_settings(n_ctx=512))
    assert adapted is not base and adapted.lora_path == gguf_adapter.resolve() and base.lora_path is None
    assert adapted.name.endswith("+adapter")
    assert load_llm(str(tiny.gguf_path), load_settings(lora=str(gguf_adapter), n_ctx=512)) is adapted
    with pytest.raises(ConfigError, match="embedded models"):
        load_llm("openai:qwen", load_settings(lora=str(gguf_adapter), base_url="http://127.0.0.1:9/v1"))


def test_an_adapter_for_another_model_file_is_refused(tiny: TinyModel, adapter, tmp_path: Path) -> None:
    from sqlwright.train.export import quantize_gguf

    _, gguf_adapter = adapter
    other = quantize_gguf(tiny.gguf_path, tmp_path / "tiny-q8_0.gguf", "q8_0")  # same shapes, another file
    with pytest.raises(AdapterMismatch, match="made for another model") as info:
        EmbeddedLLM(other, n_ctx=256, lora_path=gguf_adapter)
    assert "\n" not in str(info.value)
    with pytest.raises(AdapterMismatch, match="not a LoRA adapter"):
        EmbeddedLLM(tiny.gguf_path, n_ctx=256, lora_path=tiny.gguf_path)
    with pytest.raises(ModelMissing, match="LoRA adapter not found"):
        EmbeddedLLM(tiny.gguf_path, n_ctx=256, lora_path=tmp_path / "nope.gguf")


def test_an_adapter_llama_cpp_cannot_fit_is_refused(tiny: TinyModel, tmp_path: Path) -> None:
    """A GGUF adapter sqlwright did not write (no base sha256) whose matrices have another model's shape."""
    import gguf

    path = tmp_path / "foreign.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 8.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.ones((4, 96), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.ones((64, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert read_adapter(path).base_sha256 is None
    with pytest.raises(AdapterMismatch, match="cannot apply the LoRA adapter foreign.gguf"):
        EmbeddedLLM(tiny.gguf_path, n_ctx=256, lora_path=path)


def test_prompt_cache_keeps_adapted_states_apart(tiny: TinyModel, adapter, tmp_path: Path) -> None:
    _, gguf_adapter = adapter
    cache = PromptCache(tmp_path / "prompt-cache", 64 * 2**20)
    prefix = MESSAGES[0]["content"]
    with closing(EmbeddedLLM(tiny.gguf_path, n_ctx=512, prompt_cache=cache)) as base:
        base.complete(MESSAGES, max_tokens=2, shared_prefix=prefix)
        base_id = base.model_id()
    assert len(list(cache.directory.glob("*.kv"))) == 1
    sha = hashlib.sha256(gguf_adapter.read_bytes()).hexdigest()
    with closing(EmbeddedLLM(tiny.gguf_path, n_ctx=512, prompt_cache=cache, lora_path=gguf_adapter)) as adapted:
        assert f"lora={sha}" in adapted.model_id() and adapted.model_id() != base_id
        [first] = adapted.complete(MESSAGES, max_tokens=8, shared_prefix=prefix)
        assert adapted.last_prefix_restored == 0  # the base's state is not the adapted model's
    assert len(list(cache.directory.glob("*.kv"))) == 2
    with closing(EmbeddedLLM(tiny.gguf_path, n_ctx=512, prompt_cache=cache, lora_path=gguf_adapter)) as again:
        [second] = again.complete(MESSAGES, max_tokens=8, shared_prefix=prefix)
        assert again.last_prefix_restored > 0
    assert second.text == first.text


def test_named_adapter_models(tiny: TinyModel, adapter, cache_dir: Path) -> None:
    _, gguf_adapter = adapter
    added = runner.invoke(app, ["models", "add", "tiny-sql", "--base", str(tiny.gguf_path), "--lora",
                                str(gguf_adapter)])
    assert added.exit_code == 0, added.output
    listed = {m["name"]: m for m in json.loads(runner.invoke(app, ["models", "list", "-f", "json"]).output)}
    entry = listed["tiny-sql"]
    assert entry["base"] == str(tiny.gguf_path.resolve()) and Path(entry["lora"]).parent == cache_dir / "adapters"
    assert Path(entry["lora"]).read_bytes() == gguf_adapter.read_bytes()  # a copy the model keeps
    paths = runner.invoke(app, ["models", "path", "tiny-sql"]).output.split()
    assert paths == [str(tiny.gguf_path.resolve()), entry["lora"]]

    llm = load_llm("tiny-sql", load_settings(n_ctx=512))
    assert llm.lora_path == Path(entry["lora"]).resolve()
    with pytest.raises(ConfigError, match="already has a LoRA adapter"):
        load_llm("tiny-sql", load_settings(lora=str(gguf_adapter)))
    again = runner.invoke(app, ["models", "add", "tiny-sql", "--base", str(tiny.gguf_path), "--lora",
                                str(gguf_adapter)])
    assert again.exit_code == 2 and "exists already" in again.output

    removed = runner.invoke(app, ["models", "remove", "tiny-sql"])
    assert removed.exit_code == 0, removed.output
    assert not Path(entry["lora"]).exists()
    with pytest.raises(UnknownModel):
        load_llm("tiny-sql", load_settings())
    gone = runner.invoke(app, ["models", "remove", "tiny-sql"])
    assert gone.exit_code == 2 and "no adapter model named 'tiny-sql'" in gone.output


def test_adding_an_adapter_to_another_base_is_refused(adapter, cache_dir: Path) -> None:
    _, gguf_adapter = adapter
    # The registered model's sha256 is known without assembling it: the refusal costs nothing.
    result = runner.invoke(app, ["models", "add", "wrong", "--base", "qwen2.5-coder-0.5b", "--lora", str(gguf_adapter)])
    assert result.exit_code == 2
    assert "made for another model" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (cache_dir / "adapters" / "models.json").exists() or "wrong" not in \
        (cache_dir / "adapters" / "models.json").read_text()


def test_lora_flags_refused_where_they_cannot_apply(adapter, tmp_path: Path) -> None:
    _, gguf_adapter = adapter
    result = runner.invoke(app, ["ask", "sample", "how many?", "--model", "openai:x", "--base-url",
                                 "http://127.0.0.1:9/v1", "--lora", str(gguf_adapter)])
    assert result.exit_code == 2 and "embedded models" in result.output
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("")
    result = runner.invoke(app, ["eval", "jsonl", "--data", str(predictions), "--predictions", str(predictions),
                                 "--lora", str(gguf_adapter)])
    assert result.exit_code == 2 and "--lora applies to a model" in result.output
