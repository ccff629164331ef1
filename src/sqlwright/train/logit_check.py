"""Does llama.cpp serve what PyTorch trained? Logits of both on a few prompts, position by position.

PyTorch's side is the base as training sees it (transformers' float32 copy of the base GGUF,
train/model.py) with the PEFT adapter; llama.cpp's is what will be served: the base GGUF with the GGUF adapter
(`adapter_logit_check`), or the merged model (`merged_logit_check`). Both get the same token ids (the GGUF's
tokenizer) and llama.cpp an F32 KV cache, so that only the weights' precision differs.

The verdict (`LogitCheck.passed`):
- all weights F32 on llama.cpp's side: both compute the same float32 products in another order, so the largest
  difference must be under F32_TOLERANCE = 1e-4. Measured on the tiny test model (logits up to ~18, an adapter
  that moves them by up to 13): 1.4e-5 with the adapter on attention and MLP, 2.4e-5 with the embeddings,
  the output matrix and per-module scales too; the merged F32 model 4e-6 from the adapter.
- a quantized (or F16) file: llama.cpp multiplies by the quantized blocks (and 8-bit-quantized activations)
  while PyTorch uses the dequantized weights, so the two differ before any adapter. The reference is that
  difference for the base alone, as served (the base GGUF; for a merged model, the base converted the same
  way with the adapter scaled to 0), and the adapter may add at most half of it (QUANTIZED_RATIO). Measured on
  the tiny model, base alone → with the adapter: Q8_0 0.28 → 0.31, Q4_0 0.21 → 0.27, Q4_K_M 0.22 → 0.30.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sqlwright.config import Settings, load_settings

F32_TOLERANCE = 1e-4  # max |logit difference| when every weight is F32 (float32 rounding only)
QUANTIZED_RATIO = 1.5  # otherwise: at most this times the base's own difference (+ F32_TOLERANCE)

CHECK_PROMPTS = (
    "<|im_start|>system\nYou write one SQLite query.<|im_end|>\n<|im_start|>user\nHow many singers are "
    "there?<|im_end|>\n<|im_start|>assistant\n```sql\nSELECT COUNT(*) FROM singer;\n```",
    "SELECT name, country FROM singer WHERE age > 30 ORDER BY age DESC LIMIT 5;",
    "The table lists the singers, their country and their age.",
)


@dataclass(frozen=True)
class LogitCheck:
    """The largest |logit difference| between PyTorch and llama.cpp with the adapter (`max_diff`) and for the
    base alone as served (`base_max_diff`), whether every weight llama.cpp used is F32, and the verdict."""

    max_diff: float
    base_max_diff: float
    f32: bool

    @property
    def tolerance(self) -> float:
        return F32_TOLERANCE if self.f32 else QUANTIZED_RATIO * self.base_max_diff + F32_TOLERANCE

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.tolerance

    def as_dict(self) -> dict[str, object]:
        return {"max_diff": self.max_diff, "base_max_diff": self.base_max_diff, "f32": self.f32,
                "tolerance": self.tolerance, "passed": self.passed}


def _quiet():
    from sqlwright.llm.llamacpp import _quiet as quiet

    return quiet(True)


def llama_cpp_logits(model_gguf: Path, token_ids: Sequence[int], lora: Path | None = None) -> np.ndarray:
    """llama.cpp's logits (tokens × vocabulary) for `token_ids` on `model_gguf`, with the GGUF adapter `lora`
    applied, in an F32 KV cache."""
    import llama_cpp

    with _quiet():
        llama = llama_cpp.Llama(model_path=str(model_gguf), lora_path=str(lora) if lora else None,
                                n_ctx=max(64, len(token_ids) + 8), n_batch=512, logits_all=True, verbose=False,
                                type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                                n_threads=load_settings().threads)
    try:
        llama.eval(list(token_ids))
        return np.array(llama.scores[: len(token_ids)], dtype=np.float32)
    finally:
        llama.close()


def llama_cpp_tokens(model_gguf: Path, text: str) -> list[int]:
    """`text` in the GGUF's own tokenizer (chat markup parsed as special tokens; BOS if the model adds one)."""
    import llama_cpp

    with _quiet():
        llama = llama_cpp.Llama(model_path=str(model_gguf), n_ctx=64, vocab_only=True, verbose=False)
    try:
        return llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    finally:
        llama.close()


def torch_logits(base_hf_dir: Path, adapter_dir: Path,
                 prompts_ids: Sequence[Sequence[int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """PyTorch's logits for each token sequence, (with the adapter, without it): the base Hugging Face
    directory in float32 with the PEFT adapter `adapter_dir` on top, then disabled."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from sqlwright.train.model import quiet_libraries

    quiet_libraries()  # a few small tensors: a progress bar or deprecation notes would only be noise
    base = AutoModelForCausalLM.from_pretrained(base_hf_dir, dtype=torch.float32, local_files_only=True)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    with torch.no_grad():
        adapted = [model(torch.tensor([list(ids)])).logits[0].float().numpy() for ids in prompts_ids]
        with model.disable_adapter():
            alone = [model(torch.tensor([list(ids)])).logits[0].float().numpy() for ids in prompts_ids]
    return adapted, alone


def _all_f32(path: Path) -> bool:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in reader.tensors)


def logit_check(adapter_dir: str | Path, served_gguf: str | Path, *, base_gguf: str | Path,
                reference_gguf: str | Path, lora_gguf: str | Path | None = None,
                prompts: Sequence[str] = CHECK_PROMPTS, base_hf_dir: str | Path | None = None,
                settings: Settings | None = None) -> LogitCheck:
    """PyTorch (the base of `base_gguf` as training loads it — `base_hf_dir`, else training's cached float32
    copy — with the PEFT adapter at `adapter_dir`) against llama.cpp (`served_gguf`, with `lora_gguf` when
    given) on every position of `prompts`; the reference is PyTorch's base alone against llama.cpp on
    `reference_gguf` (the base as served, without the adapter)."""
    base_gguf = Path(base_gguf)
    if base_hf_dir is None:
        from sqlwright.train.model import convert_base, resolve_base

        base_hf_dir = convert_base(resolve_base(str(base_gguf), settings))
    prompts_ids = [llama_cpp_tokens(base_gguf, prompt) for prompt in prompts]
    with_adapter, alone = torch_logits(Path(base_hf_dir), Path(adapter_dir), prompts_ids)
    lora = Path(lora_gguf) if lora_gguf is not None else None
    worst = base_worst = 0.0
    for ids, expected, expected_base in zip(prompts_ids, with_adapter, alone, strict=True):
        worst = max(worst, float(np.abs(llama_cpp_logits(Path(served_gguf), ids, lora) - expected).max()))
        base_worst = max(base_worst, float(np.abs(llama_cpp_logits(Path(reference_gguf), ids) - expected_base).max()))
    return LogitCheck(worst, base_worst, _all_f32(Path(served_gguf)) and _all_f32(Path(reference_gguf)))


def adapter_logit_check(adapter_dir: str | Path, gguf_adapter: str | Path, base_gguf: str | Path,
                        prompts: Sequence[str] = CHECK_PROMPTS, *, base_hf_dir: str | Path | None = None,
                        settings: Settings | None = None) -> LogitCheck:
    """The GGUF adapter on the base GGUF in llama.cpp against PyTorch's base + PEFT adapter."""
    return logit_check(adapter_dir, base_gguf, base_gguf=base_gguf, reference_gguf=base_gguf, lora_gguf=gguf_adapter,
                       prompts=prompts, base_hf_dir=base_hf_dir, settings=settings)


def merged_logit_check(adapter_dir: str | Path, merged_gguf: str | Path, base_gguf: str | Path, *,
                       outtype: str = "f16", quantize: str | None = None, prompts: Sequence[str] = CHECK_PROMPTS,
                       base_hf_dir: str | Path | None = None, settings: Settings | None = None) -> LogitCheck:
    """The merged model in llama.cpp against PyTorch's base + PEFT adapter; the reference is the base merged
    with the adapter scaled to 0 (`outtype`, `quantize` as the merged model was made), written to a
    temporary file."""
    from sqlwright.train.export import merge_adapter

    settings = settings or load_settings()
    with tempfile.TemporaryDirectory(prefix="sqlwright-check-") as folder:
        reference = merge_adapter(adapter_dir, Path(folder) / "reference.gguf", base=str(base_gguf),
                                  outtype=outtype, quantize=quantize, lora_scale=0.0, settings=settings)
        return logit_check(adapter_dir, merged_gguf, base_gguf=base_gguf, reference_gguf=reference,
                           prompts=prompts, base_hf_dir=base_hf_dir, settings=settings)
