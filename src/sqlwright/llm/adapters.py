"""LoRA adapters for the embedded models: GGUF adapters (``sqlwright train export``) on the unchanged base.

An adapter is applied by llama.cpp to the context the embedded backend decodes in (`attach_lora`); the base's
weights stay as they are (quantized, memory-mapped). It is refused, one line, when it was made for another
model file: the adapter records the sha256 of the base it was trained on (``sqlwright.base_sha256``, read
here from the GGUF header without loading anything), and llama.cpp itself refuses tensors of another shape.

Named adapter models: ``sqlwright models add NAME --base qwen2.5-coder-0.5b --lora FILE`` copies the adapter
under ``<cache_dir>/adapters/`` and records NAME in ``<cache_dir>/adapters/models.json``; NAME then works
wherever a model name does (``--model NAME``), served as its base plus the adapter.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import json
import os
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlwright.errors import AdapterMismatch, ConfigError, ModelMissing, UnknownModel
from sqlwright.files import atomic_path

KEY_BASE = "sqlwright.base"
KEY_BASE_SHA256 = "sqlwright.base_sha256"
REGISTRY_FILE = "models.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# --- the GGUF header ----------------------------------------------------------------------------------------
# Value types of GGUF key/values (gguf's GGUFValueType): the fixed sizes, for skipping what is not read.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_MAX_KV = 1 << 20  # a header claiming more key/values is not a GGUF file


def _read(fh: BinaryIO, size: int) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("truncated")
    return data


def _string(fh: BinaryIO) -> bytes:
    (length,) = struct.unpack("<Q", _read(fh, 8))
    return _read(fh, length)


def _skip(fh: BinaryIO, value_type: int) -> None:
    if value_type in _FIXED:
        fh.seek(_FIXED[value_type], os.SEEK_CUR)
    elif value_type == _STRING:
        (length,) = struct.unpack("<Q", _read(fh, 8))
        fh.seek(length, os.SEEK_CUR)
    elif value_type == _ARRAY:
        item_type, count = struct.unpack("<IQ", _read(fh, 12))
        if item_type in _FIXED:
            fh.seek(_FIXED[item_type] * count, os.SEEK_CUR)
        else:
            for _ in range(count):
                _skip(fh, item_type)
    else:
        raise ValueError(f"unknown value type {value_type}")


def gguf_strings(path: Path) -> dict[str, str]:
    """The string key/values of a GGUF file's header (arrays and numbers skipped); ValueError when the file is
    not a GGUF. Reads the header only (no tensor data), without the gguf package."""
    with path.open("rb") as fh:
        magic, version = struct.unpack("<4sI", _read(fh, 8))
        if magic != b"GGUF" or version < 2:
            raise ValueError("not a GGUF file")
        _, n_kv = struct.unpack("<QQ", _read(fh, 16))
        if n_kv > _MAX_KV:
            raise ValueError("implausible header")
        out = {}
        for _ in range(n_kv):
            key = _string(fh).decode("utf-8", "replace")
            (value_type,) = struct.unpack("<I", _read(fh, 4))
            if value_type == _STRING:
                out[key] = _string(fh).decode("utf-8", "replace")
            else:
                _skip(fh, value_type)
        return out


@dataclass(frozen=True)
class AdapterInfo:
    """What a GGUF LoRA adapter's header says: its architecture and, when sqlwright wrote it, its base."""

    path: Path
    architecture: str | None
    base: str | None
    base_sha256: str | None


def read_adapter(path: str | Path) -> AdapterInfo:
    """The header of the GGUF LoRA adapter at `path`; ModelMissing when there is no file, AdapterMismatch when
    it is not a GGUF LoRA adapter."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelMissing(f"LoRA adapter not found: {path}")
    try:
        strings = gguf_strings(path)
    except (OSError, ValueError, struct.error) as exc:
        raise AdapterMismatch(f"{path} is not a GGUF LoRA adapter ({exc}); make one with "
                              "`sqlwright train export ADAPTER_DIR --out FILE.gguf`") from exc
    if strings.get("general.type") != "adapter" or strings.get("adapter.type") != "lora":
        raise AdapterMismatch(f"{path} is a GGUF file but not a LoRA adapter (general.type "
                              f"{strings.get('general.type')!r}); make one with `sqlwright train export`")
    return AdapterInfo(path, strings.get("general.architecture"), strings.get(KEY_BASE),
                       strings.get(KEY_BASE_SHA256))


def check_adapter_base(info: AdapterInfo, base_name: str, base_sha256: str) -> None:
    """AdapterMismatch (one line) when the adapter records a base other than the file `base_sha256`."""
    if info.base_sha256 and info.base_sha256 != base_sha256:
        raise AdapterMismatch(
            f"the LoRA adapter {info.path.name} was made for another model ({info.base or 'unknown'}, sha256 "
            f"{info.base_sha256[:16]}…), not for {base_name} (sha256 {base_sha256[:16]}…)")


# --- applying one to a llama.cpp context --------------------------------------------------------------------
def attach_lora(llama_cpp: Any, model: Any, ctx: Any, path: Path, *, model_name: str,
                model_sha256: Callable[[], str], quiet: Callable[[], contextlib.AbstractContextManager]) -> Any:
    """Load the GGUF adapter at `path` for the llama.cpp `model` and apply it (scale 1) to `ctx`; returns the
    adapter handle (free it with `llama_adapter_lora_free` before the model). Refused (AdapterMismatch, one
    line) when it records another base than `model_sha256()` or llama.cpp finds its tensors do not fit."""
    info = read_adapter(path)
    check_adapter_base(info, model_name, model_sha256())
    with quiet():
        adapter = llama_cpp.llama_adapter_lora_init(model, str(path).encode("utf-8"))
    if not adapter:
        raise AdapterMismatch(f"llama.cpp cannot apply the LoRA adapter {path.name} to {model_name}: it was made "
                              f"for another model (architecture {info.architecture or 'unknown'}, or other "
                              "tensor shapes)")
    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
    scales = (ctypes.c_float * 1)(1.0)
    if llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
        llama_cpp.llama_adapter_lora_free(adapter)
        raise AdapterMismatch(f"llama.cpp could not apply the LoRA adapter {path.name} to {model_name}")
    return adapter


# --- named adapter models -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdapterModel:
    """A named model: a base (registered name or .gguf path) with a LoRA adapter (its copy in the cache)."""

    name: str
    base: str
    lora: str
    lora_sha256: str
    base_sha256: str | None
    source: str
    created: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _registry_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "adapters" / REGISTRY_FILE


def adapter_models(cache_dir: Path) -> dict[str, AdapterModel]:
    """The named adapter models recorded under `cache_dir` (none when the file is absent)."""
    path = _registry_path(cache_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the adapter model list {path} is unreadable ({exc}); fix or delete it") from exc
    try:
        return {name: AdapterModel(**entry) for name, entry in raw.items()}
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"the adapter model list {path} is malformed; fix or delete it") from exc


def _write_registry(cache_dir: Path, models: dict[str, AdapterModel]) -> None:
    with atomic_path(_registry_path(cache_dir)) as tmp:
        tmp.write_text(json.dumps({name: m.as_dict() for name, m in sorted(models.items())}, indent=2) + "\n",
                       encoding="utf-8")


def add_adapter_model(name: str, base: str, lora: str | Path, cache_dir: Path) -> AdapterModel:
    """Record `name` = `base` + the adapter at `lora` (copied under `cache_dir`/adapters). Refused (one line):
    a name already taken or not a plain name, a base that is not a local model, a file that is not a LoRA
    adapter, an adapter made for another base."""
    from sqlwright.llm.models import MODELS, file_sha256, known_sha256, model_path

    if not _NAME.fullmatch(name) or name.endswith(".gguf"):
        raise ConfigError(f"model name {name!r}: letters, digits, '.', '_' and '-' (up to 64), not a path")
    models = adapter_models(cache_dir)
    if name in MODELS or name in models:
        raise ConfigError(f"a model named {name!r} exists already (sqlwright models remove {name} first)")
    if base.startswith("openai:") or base in models:
        raise ConfigError(f"the base of {name!r} must be a registered embedded model or a .gguf file, not {base!r}")
    info = read_adapter(lora)
    if base in MODELS:  # its sha256 is known: no need to assemble it now
        base_sha256, base_ref = MODELS[base].sha256, base
    else:
        base_file = model_path(base, cache_dir)
        base_sha256 = known_sha256(base_file, Path(cache_dir) / "adapters")
        base_ref = str(base_file.resolve())
    check_adapter_base(info, base, base_sha256)
    lora_sha256 = file_sha256(info.path)
    target = Path(cache_dir) / "adapters" / f"{name}-{lora_sha256[:12]}.gguf"
    with atomic_path(target) as tmp:
        shutil.copyfile(info.path, tmp)
    entry = AdapterModel(
        name=name, base=base_ref, lora=str(target),
        lora_sha256=lora_sha256, base_sha256=base_sha256, source=str(info.path.resolve()),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    _write_registry(cache_dir, {**models, name: entry})
    return entry


def remove_adapter_model(name: str, cache_dir: Path) -> AdapterModel:
    """Forget the named adapter model `name` and delete its copy of the adapter."""
    models = adapter_models(cache_dir)
    entry = models.pop(name, None)
    if entry is None:
        known = ", ".join(sorted(models)) or "none"
        raise UnknownModel(f"no adapter model named {name!r} (adapter models: {known}); built-in models "
                           "cannot be removed")
    _write_registry(cache_dir, models)
    Path(entry.lora).unlink(missing_ok=True)
    return entry


def resolve_adapter(name: str, lora: str | Path | None, cache_dir: Path) -> tuple[str, Path | None]:
    """(base model, adapter file or None) for model `name` and the `lora` setting: a named adapter model
    is its base and adapter; giving `lora` too is refused (one adapter at a time)."""
    entry = adapter_models(cache_dir).get(name) if not name.startswith("openai:") else None
    if entry is not None:
        if lora:
            raise ConfigError(f"model {name!r} already has a LoRA adapter; give --lora with its base "
                              f"({entry.base}) instead")
        path = Path(entry.lora)
        if not path.is_file():
            raise ModelMissing(f"the adapter of model {name!r} is gone ({path}); add it again with "
                               "`sqlwright models add`")
        return entry.base, path
    if lora and name.startswith("openai:"):
        raise ConfigError("--lora (SQLWRIGHT_LORA) applies to embedded models, not to an openai: server's model")
    return name, (Path(lora).expanduser() if lora else None)
