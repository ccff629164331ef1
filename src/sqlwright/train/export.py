"""A trained LoRA adapter, made servable by llama.cpp: as a GGUF LoRA adapter, or merged into the base.

`export_gguf_adapter` writes PEFT's adapter (``adapter_config.json`` + ``adapter_model.safetensors``) as the
GGUF LoRA adapter llama.cpp loads next to the unchanged (quantized) base, as llama.cpp's
convert_lora_to_gguf.py does: ``general.type=adapter``, ``adapter.type=lora``, ``adapter.lora.alpha``, and for
each adapted matrix W (a base GGUF tensor, named by gguf's TensorNameMap) two F32 tensors ``W.lora_a`` (PEFT's
A, numpy shape (r, in)) and ``W.lora_b`` (PEFT's B, (out, r)); llama.cpp computes ``W x + scale · B (A x)``
with ``scale = alpha / r``. For the token embeddings llama.cpp wants the pair flipped (``lora_a`` = Aᵀ, (vocab,
r); ``lora_b`` = B, (hidden, r)). A per-module scale llama.cpp cannot express (rsLoRA, rank or alpha patterns)
is folded into B, with ``alpha = 0`` (llama.cpp's "scale 1"). The base the adapter was trained on (name and
sha256, from ``sqlwright-adapter.json``) is recorded in the GGUF (``sqlwright.base_sha256``): the embedded
backend refuses the adapter on any other model file.

`merge_adapter` writes base + adapter as one GGUF (every tensor dequantized, the adapted ones with the LoRA
product added; F16 or F32), optionally quantized afterwards with llama.cpp's own quantizer.

`check_adapter_logits` measures the export against PyTorch (train/logit_check.py: how, and the tolerances).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sqlwright.config import Settings, load_settings
from sqlwright.errors import AdapterMismatch, UserError
from sqlwright.files import atomic_path

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
ADAPTER_META = "sqlwright-adapter.json"  # written by training (train/model.py)

# Metadata sqlwright adds to a GGUF adapter (read back by the embedded backend, llm/adapters.py).
KEY_BASE = "sqlwright.base"
KEY_BASE_SHA256 = "sqlwright.base_sha256"
KEY_KIND = "sqlwright.adapter_kind"
KEY_MERGED_ADAPTER = "sqlwright.merged_adapter"

# PEFT options that change what the saved tensors mean in ways a llama.cpp LoRA cannot express.
_UNSUPPORTED_OPTIONS = {
    "use_dora": "DoRA (use_dora)",
    "lora_bias": "LoRA biases (lora_bias)",
    "fan_in_fan_out": "fan_in_fan_out layers",
    "modules_to_save": "fully trained modules (modules_to_save)",
    "trainable_token_indices": "trainable tokens",
    "layer_replication": "layer replication",
    "target_parameters": "target_parameters",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
}

QUANTIZE_TYPES = ("q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_0")


@dataclass(frozen=True)
class LoraPair:
    """One adapted matrix: its Hugging Face module, the base GGUF tensor it adapts, PEFT's A (r, in) / B
    (out, r) as float32 (for an embedding: A (r, vocab), B (hidden, r)), and PEFT's scale for it."""

    module: str
    tensor: str
    a: np.ndarray
    b: np.ndarray
    scale: float
    embedding: bool = False

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])

    def delta(self) -> np.ndarray:
        """The change to the base tensor, in its numpy (GGUF reader) orientation: (out, in); (vocab, hidden)."""
        product = (self.b.astype(np.float64) @ self.a.astype(np.float64)) * self.scale
        return (product.T if self.embedding else product).astype(np.float32)


@dataclass(frozen=True)
class PeftAdapter:
    """A PEFT LoRA adapter directory, read: its config, sqlwright's metadata (None for a foreign adapter)
    and the adapted matrices."""

    directory: Path
    config: dict
    meta: dict | None
    pairs: tuple[LoraPair, ...]


@dataclass(frozen=True)
class GGUFBase:
    """What export needs of a base GGUF: where it is, its name and sha256, architecture and tensor shapes
    (numpy orientation)."""

    name: str
    path: Path
    sha256: str
    arch: str
    block_count: int
    shapes: dict[str, tuple[int, ...]]


# --- reading -----------------------------------------------------------------------------------------------
def _load_tensors(directory: Path) -> dict[str, np.ndarray]:
    """The adapter's tensors as float32 numpy arrays (torch reads what numpy cannot: bf16, .bin)."""
    for name in ADAPTER_WEIGHTS:
        path = directory / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                loaded = load_file(str(path))
            else:
                import torch

                loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # safetensors and torch raise several types for a damaged file
            raise AdapterMismatch(f"cannot read the LoRA weights {path}: {' '.join(str(exc).split())[:200]}") from exc
        return {key: value.float().numpy() for key, value in loaded.items()}
    raise AdapterMismatch(f"{directory} has no LoRA weights ({' or '.join(ADAPTER_WEIGHTS)})")


def _module_scales(config: dict, module: str, rank: int) -> float:
    """PEFT's scale for `module`: lora_alpha / r (or / sqrt(r) with rsLoRA), alpha_pattern applied."""
    alpha = float(config.get("lora_alpha", 8))
    patterns = config.get("alpha_pattern") or {}
    if patterns:
        from peft.utils.other import get_pattern_key

        key = get_pattern_key(list(patterns), module)
        alpha = float(patterns.get(key, alpha))
    return alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def read_peft_adapter(adapter_dir: str | Path, arch: str, block_count: int) -> PeftAdapter:
    """Read a PEFT LoRA directory for a base of architecture `arch` (a GGUF architecture name) with
    `block_count` blocks, mapping each adapted module to its GGUF tensor; AdapterMismatch or UserError (one
    line) for what is not a LoRA adapter or cannot become a llama.cpp one."""
    import gguf

    directory = Path(adapter_dir)
    config_path = directory / ADAPTER_CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdapterMismatch(f"{directory} is not a LoRA adapter directory (no {ADAPTER_CONFIG})") from None
    except (OSError, ValueError) as exc:
        raise AdapterMismatch(f"{config_path} is unreadable or not JSON") from exc
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(f"{directory} is a {config.get('peft_type')} adapter; only LoRA can be exported")
    for option, what in _UNSUPPORTED_OPTIONS.items():
        if config.get(option):
            raise UserError(f"{directory} uses {what}, which a llama.cpp LoRA adapter cannot hold")
    if config.get("bias", "none") != "none":
        raise UserError(f"{directory} trains biases (bias={config['bias']!r}), which a llama.cpp LoRA adapter "
                        "cannot hold")
    meta = _read_meta(directory)
    tensors = _load_tensors(directory)
    arch_enum = _arch_enum(arch)
    names = gguf.get_tensor_name_map(arch_enum, block_count)
    found: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        module, part = _split_key(key, directory)
        if part is not None:
            found.setdefault(module, {})[part] = value
    pairs = []
    for module, parts in sorted(found.items()):
        if set(parts) not in ({"A", "B"}, {"embA", "embB"}):
            raise AdapterMismatch(f"{directory}: LoRA module {module} lacks its A or B matrix")
        embedding = "embA" in parts
        a, b = (parts["embA"], parts["embB"]) if embedding else (parts["A"], parts["B"])
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise AdapterMismatch(f"{directory}: LoRA module {module} has A {a.shape} and B {b.shape}, "
                                  "which do not multiply")
        tensor = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if tensor is None:
            raise UserError(f"{directory}: LoRA on {module}, which has no tensor in llama.cpp's {arch} model")
        pairs.append(LoraPair(module, tensor, a, b, _module_scales(config, module, a.shape[0]), embedding))
    if not pairs:
        raise AdapterMismatch(f"{directory} holds no LoRA matrices")
    return PeftAdapter(directory, config, meta, tuple(pairs))


def _read_meta(directory: Path) -> dict | None:
    """``sqlwright-adapter.json`` (None when absent: a PEFT adapter sqlwright did not write)."""
    path = directory / ADAPTER_META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterMismatch(f"{path} is unreadable or not JSON") from exc
    if not isinstance(meta, dict):
        raise AdapterMismatch(f"{path} is not a JSON object")
    return meta


def _split_key(key: str, directory: Path) -> tuple[str, str | None]:
    """A PEFT state-dict key -> (Hugging Face module name, "A" | "B" | "embA" | "embB"), or part None for
    a tensor to skip (the frozen base weights PEFT saves next to an adapted embedding)."""
    name = key.removeprefix("base_model.model.")
    for suffix, part in ((".lora_A.weight", "A"), (".lora_B.weight", "B"),
                         (".lora_embedding_A", "embA"), (".lora_embedding_B", "embB")):
        if name.endswith(suffix):
            return name[: -len(suffix)], part
    if name.endswith(".base_layer.weight"):
        return name, None
    raise UserError(f"{directory}: unexpected tensor {key} in the LoRA weights (not a plain LoRA adapter)")


def _arch_enum(arch: str) -> Any:
    import gguf

    for enum, name in gguf.MODEL_ARCH_NAMES.items():
        if name == arch:
            return enum
    raise UserError(f"llama.cpp has no model architecture {arch!r}")


# --- the base ----------------------------------------------------------------------------------------------
def read_gguf_base(path: Path, name: str | None = None, sha256: str | None = None,
                   settings: Settings | None = None) -> GGUFBase:
    """Architecture, block count and tensor shapes of the GGUF at `path` (memory-mapped, nothing loaded)."""
    import gguf

    from sqlwright.llm.models import known_sha256

    settings = settings or load_settings()
    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable GGUF file ({exc})") from exc
    arch = _field(reader, "general.architecture")
    if arch is None or _field(reader, "general.type") == "adapter":
        raise UserError(f"{path} is not a model GGUF (it has no architecture, or is an adapter)")
    blocks = int(_field(reader, f"{arch}.block_count") or 0)
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape)) for t in reader.tensors}
    digest = sha256 or known_sha256(path, Path(settings.cache_dir) / "train")
    return GGUFBase(name or str(path), path, digest, str(arch), blocks, shapes)


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    return None if field is None else field.contents()


def resolve_gguf_base(base: str | None, adapter_dir: Path, settings: Settings | None = None) -> GGUFBase:
    """The base to export against: `base` (a registered name or .gguf path) when given, else the one
    ``sqlwright-adapter.json`` names; AdapterMismatch when the adapter was trained on another file."""
    from sqlwright.train.model import resolve_base

    settings = settings or load_settings()
    meta = _read_meta(Path(adapter_dir))
    if base is None:
        if not meta or not meta.get("base"):
            raise UserError(f"{adapter_dir} does not say which model it was trained on "
                            f"(no {ADAPTER_META}): give the base model with --base")
        base = str(meta["base"])
    resolved = resolve_base(base, settings)
    if meta and meta.get("base_sha256") and meta["base_sha256"] != resolved.sha256:
        raise AdapterMismatch(
            f"the LoRA adapter {adapter_dir} was trained on another base model ({meta.get('base')}, sha256 "
            f"{str(meta['base_sha256'])[:16]}…), not on {resolved.name} (sha256 {resolved.sha256[:16]}…)")
    return read_gguf_base(resolved.gguf_path, resolved.name, resolved.sha256, settings)


def _check_shapes(adapter: PeftAdapter, base: GGUFBase) -> None:
    """AdapterMismatch unless every adapted tensor exists in the base with the adapter's shape."""
    for pair in adapter.pairs:
        shape = base.shapes.get(pair.tensor)
        if shape is None:
            raise AdapterMismatch(f"the LoRA adapter {adapter.directory} adapts {pair.tensor}, which the base "
                                  f"{base.name} does not have: it was made for another model")
        expected = (pair.a.shape[1], pair.b.shape[0]) if pair.embedding else (pair.b.shape[0], pair.a.shape[1])
        if shape != expected:
            raise AdapterMismatch(f"the LoRA adapter {adapter.directory} was made for another model: "
                                  f"{pair.tensor} is {shape} in {base.name}, {expected} in the adapter")


# --- writing -----------------------------------------------------------------------------------------------
def _common_alpha(pairs: Sequence[LoraPair]) -> float | None:
    """The alpha with scale = alpha / rank for every pair (what llama.cpp computes), or None."""
    alphas = {round(p.scale * p.rank, 6) for p in pairs}
    return alphas.pop() if len(alphas) == 1 else None


def export_gguf_adapter(adapter_dir: str | Path, out_path: str | Path, *, base: str | None = None,
                        settings: Settings | None = None) -> Path:
    """Write the PEFT LoRA at `adapter_dir` as a llama.cpp GGUF LoRA adapter at `out_path` and return it.

    `base` (a registered model or .gguf path; default: the model ``sqlwright-adapter.json`` names) is the
    model the adapter will be served on: it must be the file the adapter was trained on (sha256), and every
    adapted tensor must exist there with the adapter's shape; AdapterMismatch (one line) otherwise."""
    import gguf

    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    base_file = resolve_gguf_base(base, adapter_dir, settings)
    adapter = read_peft_adapter(adapter_dir, base_file.arch, base_file.block_count)
    _check_shapes(adapter, base_file)
    alpha = _common_alpha(adapter.pairs)
    with atomic_path(out_path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), base_file.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_name(f"LoRA {adapter_dir.name} for {Path(base_file.name).name}")
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha if alpha is not None else 0.0)
        writer.add_string(KEY_BASE, base_file.name)
        writer.add_string(KEY_BASE_SHA256, base_file.sha256)
        writer.add_string(KEY_KIND, str((adapter.meta or {}).get("kind", "lora")))
        for pair in adapter.pairs:
            # llama.cpp multiplies B by alpha / rank; a scale it cannot express is folded into B (alpha 0).
            b = pair.b if alpha is not None else pair.b * np.float32(pair.scale)
            a_out = np.ascontiguousarray(pair.a.T) if pair.embedding else pair.a
            writer.add_tensor(pair.tensor + ".lora_a", np.ascontiguousarray(a_out, dtype=np.float32))
            writer.add_tensor(pair.tensor + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    log.info("wrote %s: %d LoRA matrices (alpha %s) for %s", out_path, len(adapter.pairs), alpha, base_file.name)
    return out_path


def merge_adapter(adapter_dir: str | Path, out_path: str | Path, *, base: str | None = None,
                  outtype: str = "f16", quantize: str | None = None, lora_scale: float = 1.0,
                  settings: Settings | None = None) -> Path:
    """Write base + LoRA as one model GGUF at `out_path`: every tensor of the base dequantized, the adapted
    ones with the scaled product B·A added, matrices stored as `outtype` (f16 or f32; norms and biases stay
    F32); then, with `quantize` (one of QUANTIZE_TYPES), requantized by llama.cpp's quantizer. The base's
    metadata (tokenizer, chat template) is copied; ``sqlwright.merged_adapter`` names the adapter.
    `lora_scale` multiplies the adapter (0: the base alone, converted the same way: the check's reference)."""
    import gguf
    from gguf.quants import dequantize

    if outtype not in ("f16", "f32"):
        raise UserError(f"--outtype must be f16 or f32, not {outtype!r}")
    if quantize is not None and quantize.lower() not in QUANTIZE_TYPES:
        raise UserError(f"unknown quantization {quantize!r}: one of {', '.join(QUANTIZE_TYPES)}")
    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    base_file = resolve_gguf_base(base, adapter_dir, settings)
    adapter = read_peft_adapter(adapter_dir, base_file.arch, base_file.block_count)
    _check_shapes(adapter, base_file)
    deltas = {pair.tensor: pair for pair in adapter.pairs}
    reader = gguf.GGUFReader(str(base_file.path))
    float_type = gguf.GGMLQuantizationType.F16 if outtype == "f16" else gguf.GGMLQuantizationType.F32
    target = out_path if quantize is None else out_path.with_name(out_path.name + f".{outtype}.tmp")
    with atomic_path(target) as tmp:
        writer = gguf.GGUFWriter(str(tmp), base_file.arch)
        _copy_metadata(reader, writer, outtype)
        writer.add_string(KEY_MERGED_ADAPTER, str(adapter_dir.resolve()))
        for tensor in reader.tensors:
            values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
            values = values.reshape(tuple(int(n) for n in reversed(tensor.shape)))
            pair = deltas.get(tensor.name)
            if pair is not None and lora_scale:
                values = values + pair.delta() * np.float32(lora_scale)
            # As convert_hf_to_gguf.py: 1-D tensors (norms, biases) stay F32.
            dtype = np.float16 if float_type == gguf.GGMLQuantizationType.F16 and values.ndim > 1 else np.float32
            writer.add_tensor(tensor.name, values.astype(dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    if quantize is not None:
        try:
            quantize_gguf(target, out_path, quantize)
        finally:
            target.unlink(missing_ok=True)
    log.info("wrote %s: %s merged with %d LoRA matrices", out_path, base_file.name, len(deltas))
    return out_path


def _copy_metadata(reader: Any, writer: Any, outtype: str) -> None:
    """Copy the base's key/values (all but the file's own and the architecture the writer sets)."""
    import gguf

    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), value_type, sub_type=sub_type)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)


def quantize_gguf(source: Path, out_path: Path, kind: str) -> Path:
    """Quantize the model GGUF `source` into `out_path` with llama.cpp's quantizer (llama_model_quantize)."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise UserError("quantizing needs llama-cpp-python: pip install 'sqlwright[embedded]'") from exc
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}", None)
    if ftype is None:
        raise UserError(f"this llama-cpp-python cannot quantize to {kind}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = load_settings().threads or os.cpu_count() or 1
    from sqlwright.llm.llamacpp import _quiet

    with atomic_path(out_path) as tmp, _quiet(True):
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params)
        if status != 0:
            raise UserError(f"llama.cpp could not quantize {source} to {kind} (status {status})")
    return out_path


# --- the check (train/logit_check.py) ----------------------------------------------------------------------
def check_adapter_logits(adapter_dir: str | Path, gguf_adapter: str | Path, base_gguf: str | Path,
                         prompts: Sequence[str] | None = None, *, base_hf_dir: str | Path | None = None,
                         settings: Settings | None = None) -> float:
    """The largest |logit difference| between PyTorch (base + PEFT adapter) and llama.cpp (`base_gguf` +
    `gguf_adapter`) over every position of `prompts` (see logit_check.adapter_logit_check for the verdict)."""
    from sqlwright.train.logit_check import CHECK_PROMPTS, adapter_logit_check

    return adapter_logit_check(adapter_dir, gguf_adapter, base_gguf, prompts or CHECK_PROMPTS,
                               base_hf_dir=base_hf_dir, settings=settings).max_diff
