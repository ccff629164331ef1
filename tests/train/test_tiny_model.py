"""The tiny Qwen2 every training test uses is one model: llama.cpp reads the GGUF as transformers reads the HF
directory (same token ids, same logits), and it generates."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_model import TinyModel, build_tiny_qwen2

llama_cpp = pytest.importorskip("llama_cpp")

# F32 weights and an F32 KV cache on both sides: what is left is the order of float32 sums.
LOGIT_TOLERANCE = 1e-4

STRINGS = [
    "SELECT name FROM singer WHERE age > 30;",
    "Hello wörld 123  \n\n x",
    "<|im_start|>user\nHow many singers?<|im_end|>\n",
    "café 😀 it's 'quoted' ```sql\n```",
    "  leading spaces\ttab",
]
MESSAGES = [{"role": "system", "content": "You write SQLite."}, {"role": "user", "content": "How many singers?"}]


@pytest.fixture(scope="module")
def llama(tiny_model: TinyModel):
    llm = llama_cpp.Llama(model_path=str(tiny_model.gguf_path), n_ctx=256, logits_all=True, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, n_threads=2)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def hf(tiny_model: TinyModel):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model.hf_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model.hf_dir, dtype=torch.float32).eval()
    return tokenizer, model


def test_same_token_ids_in_both_tokenizers(llama, hf) -> None:
    tokenizer, _ = hf
    for text in STRINGS:
        assert llama.tokenize(text.encode(), add_bos=False, special=True) == \
            tokenizer.encode(text, add_special_tokens=False), text


def test_llama_cpp_logits_match_transformers(llama, hf) -> None:
    import torch

    tokenizer, model = hf
    prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nYou write SQLite.<|im_end|>\n")  # the Qwen2.5 template
    ids = llama.tokenize(prompt.encode(), add_bos=False, special=True)
    llama.reset()
    llama.eval(ids)
    ours = np.array(llama.scores[: len(ids)])
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    assert theirs.std() > 1.0  # spread-out logits: a mis-mapped tensor could not hide in the tolerance
    assert np.abs(ours - theirs).max() < LOGIT_TOLERANCE


def test_llama_cpp_generates_what_transformers_generates(llama, hf) -> None:
    import torch

    tokenizer, model = hf
    prompt_ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=False)
    expected = model.generate(torch.tensor([prompt_ids]), max_new_tokens=10, do_sample=False)[0, len(prompt_ids):]
    llama.reset()
    generated = []
    for token in llama.generate(prompt_ids, temp=0.0, reset=True):
        if token == llama.token_eos() or len(generated) == 10:
            break
        generated.append(token)
    assert generated == expected.tolist()[: len(generated)] and len(generated) > 0


def test_the_gguf_is_the_same_on_every_build(tiny_model: TinyModel, tmp_path) -> None:
    assert build_tiny_qwen2(tmp_path).sha256 == tiny_model.sha256
