"""The base model for training: the GGUF sqlwright serves, loaded by transformers.

A registered model name or a path to a .gguf file resolves to its GGUF (llm/models.py) and that file's sha256.
The first load reads the GGUF with transformers (``gguf_file=``), dequantizes every tensor to float32 and
saves the result, tokenizer and chat template included, as a Hugging Face directory under
``<cache_dir>/train/base-<sha256[:16]>/``; every later load reads that directory (seconds, not minutes). Nothing
is downloaded: the weights, the tokenizer and the chat template all come from the one file, so the prompt a
trained adapter sees is rendered by the same template `ask` uses.

The adapter directory a training run writes is PEFT's ``save_pretrained`` output plus ``sqlwright-adapter.json``
(`ADAPTER_META`): the base it was trained on (name and sha256) and its kind; `read_adapter_meta` checks an
adapter against a base before anything uses it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlwright.config import Settings, load_settings
from sqlwright.errors import AdapterMismatch, ModelLoadFailed, UserError
from sqlwright.llm.models import MODELS, known_sha256, model_path

log = logging.getLogger(__name__)

BASE_META = "sqlwright-base.json"  # written last into a converted base directory: the conversion finished
ADAPTER_META = "sqlwright-adapter.json"
# The linear layers of a Qwen2 block a LoRA adapts: every projection of attention and MLP (not the embeddings
# or the output matrix, so that the adapter stays small and maps one-to-one onto llama.cpp's LoRA tensors).
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class BaseModelFile:
    """A base model as training sees it: the name it was given by, its GGUF, the GGUF's sha256, and the
    directory its dequantized Hugging Face copy is (or will be) cached in."""

    name: str
    gguf_path: Path
    sha256: str
    hf_dir: Path

    @property
    def converted(self) -> bool:
        return (self.hf_dir / BASE_META).is_file()


def resolve_base(model: str, settings: Settings | None = None) -> BaseModelFile:
    """The GGUF of `model` (a registered name, assembled if needed, or a path to a .gguf file) and its sha256;
    UnknownModel / ModelMissing (one line) otherwise. An 'openai:' model has no weights to train."""
    settings = settings or load_settings()
    if model.startswith("openai:"):
        raise UserError(f"cannot train {model!r}: training needs the weights, a registered model or a .gguf file")
    path = model_path(model, settings.cache_dir)
    sha256 = MODELS[model].sha256 if model in MODELS else known_sha256(path, settings.cache_dir / "train")
    name = model if model in MODELS else str(path.resolve())
    hf_dir = Path(settings.cache_dir) / "train" / f"base-{sha256[:16]}"
    return BaseModelFile(name=name, gguf_path=path, sha256=sha256, hf_dir=hf_dir)


def set_threads(settings: Settings | None = None) -> int:
    """Give torch an explicit thread count and return it: settings.threads, else OMP_NUM_THREADS (what
    `accelerate launch` gives each of its processes), else every CPU this process may run on (torch's own
    default may ignore the process's CPU affinity)."""
    import torch

    settings = settings or load_settings()
    omp = os.environ.get("OMP_NUM_THREADS", "")
    from_omp = int(omp) if omp.isdigit() else 0
    threads = settings.threads or from_omp or len(os.sched_getaffinity(0)) or 1
    torch.set_num_threads(threads)
    return threads


def offline() -> None:
    """No Hugging Face Hub access for the rest of the process (unless the user asked for it): everything a
    training run needs is in the GGUF. Set before transformers is first imported, which reads it then."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def quiet_libraries() -> None:
    """No tqdm bars from transformers and datasets: the run draws its own (progress.py). And no Hub."""
    offline()
    import datasets
    import huggingface_hub
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    huggingface_hub.utils.logging.set_verbosity_error()
    # transformers 5 renamed gradient checkpointing; TRL still asks for it by the old name on every step.
    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6.*", category=FutureWarning)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (several processes under `accelerate launch` load the same base)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_base(base: BaseModelFile) -> Path:
    """Dequantize `base`'s GGUF into its Hugging Face directory, once: a directory already converted is kept;
    otherwise the conversion is written to a temporary directory and renamed into place when complete."""
    with _lock(base.hf_dir.with_name(base.hf_dir.name + ".lock")):
        if base.converted:
            return base.hf_dir
        offline()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        log.info("converting %s to float32 under %s (once per model file)", base.gguf_path.name, base.hf_dir)
        tmp = base.hf_dir.with_name(f".{base.hf_dir.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        folder, filename = str(base.gguf_path.parent), base.gguf_path.name
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32,
                                                         local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadFailed(f"transformers cannot load {base.gguf_path} for training: "
                                  f"{' '.join(str(exc).split())[:300]}") from exc
        _drop_quantization(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {"gguf": str(base.gguf_path), "name": base.name, "sha256": base.sha256, "dtype": "float32",
                "created": _now(), "seconds": round(time.perf_counter() - started, 1)}
        (tmp / BASE_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(base.hf_dir, ignore_errors=True)  # a conversion that died before its marker
        os.replace(tmp, base.hf_dir)
        log.info("converted %s in %.0f s", base.gguf_path.name, time.perf_counter() - started)
        return base.hf_dir


def _drop_quantization(model: Any) -> None:
    """The dequantized model saved as a plain float32 checkpoint, not as a GGUF-quantized one."""
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if getattr(model, "is_quantized", False):
        with contextlib.suppress(AttributeError):
            model.is_quantized = False


def load_base(model: str | BaseModelFile, settings: Settings | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a base model for training, float32 on the CPU (or the device accelerate gives
    the trainer later), converted from its GGUF on first use (see `convert_base`)."""
    offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = settings or load_settings()
    base = model if isinstance(model, BaseModelFile) else resolve_base(model, settings)
    set_threads(settings)
    hf_dir = convert_base(base)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, local_files_only=True)
    if tokenizer.pad_token is None:  # padding a batch needs one; Qwen2's GGUFs name <|endoftext|>
        tokenizer.pad_token = tokenizer.eos_token
    return loaded, tokenizer


# --- adapters ----------------------------------------------------------------------------------------------
def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def write_adapter_meta(adapter_dir: Path, base: BaseModelFile, kind: str, **extra: object) -> Path:
    """Write ``sqlwright-adapter.json`` into `adapter_dir`: base name and sha256, kind, creation time."""
    meta = {"base": base.name, "base_sha256": base.sha256, "kind": kind, "created": _now(), **extra}
    path = Path(adapter_dir) / ADAPTER_META
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_adapter_meta(adapter_dir: Path, base: BaseModelFile | None = None) -> dict:
    """The ``sqlwright-adapter.json`` of `adapter_dir`; AdapterMismatch (one line) when the directory is not a
    sqlwright LoRA adapter or, given `base`, was trained on another model file."""
    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / ADAPTER_META
    if not (adapter_dir / "adapter_config.json").is_file() or not meta_path.is_file():
        raise AdapterMismatch(f"{adapter_dir} is not a LoRA adapter written by sqlwright train "
                              f"(no adapter_config.json and {ADAPTER_META})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["base_sha256"]  # noqa: B018  (a KeyError is a malformed file)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AdapterMismatch(f"{meta_path} is unreadable or malformed") from exc
    if base is not None and meta["base_sha256"] != base.sha256:
        raise AdapterMismatch(
            f"the LoRA adapter {adapter_dir} was trained on another base model ({meta.get('base')}, sha256 "
            f"{str(meta['base_sha256'])[:16]}…), not on {base.name} (sha256 {base.sha256[:16]}…)")
    return meta
