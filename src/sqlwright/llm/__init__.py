"""The model layer: the LLM protocol, its backends and the registry of embedded models.

    llm = load_llm("qwen2.5-coder-0.5b")          # embedded GGUF, assembled from its part packages
    llm = load_llm("openai:qwen2.5-coder", settings)  # any OpenAI-compatible server at settings.base_url
    [c] = llm.complete([{"role": "user", "content": "..."}])

The backends are imported lazily (PEP 562): importing this package loads neither llama_cpp nor openai.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlwright.config import Settings, load_settings
from sqlwright.errors import ConfigError
from sqlwright.llm.adapters import resolve_adapter
from sqlwright.llm.base import LLM, Completion, Message
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.llm.models import (
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
    ModelStatus,
    list_models,
    model_path,
    register_model,
    verify_model,
)
from sqlwright.llm.prompt_cache import PromptCache

if TYPE_CHECKING:
    from sqlwright.llm.llamacpp import EmbeddedLLM
    from sqlwright.llm.openai_backend import OpenAILLM

OPENAI_PREFIX = "openai:"

_LAZY = {
    "EmbeddedLLM": "sqlwright.llm.llamacpp",
    "OpenAILLM": "sqlwright.llm.openai_backend",
}

__all__ = [
    "DEFAULT_MODEL",
    "LLM",
    "MODELS",
    "Completion",
    "EmbeddedLLM",
    "Message",
    "ModelSpec",
    "ModelStatus",
    "OpenAILLM",
    "PromptCache",
    "ScriptedLLM",
    "clear_loaded_models",
    "list_models",
    "load_llm",
    "model_path",
    "prompt_cache",
    "register_model",
    "verify_model",
]

# Embedded models loaded in this process, shared by every Engine that asks for the same file and context.
_loaded: dict[tuple[Path, int, int | None, int, Path | None], EmbeddedLLM] = {}
_loaded_lock = threading.Lock()


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sqlwright.llm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def load_llm(model: str | None = None, settings: Settings | None = None) -> LLM:
    """The LLM for `model` (default: settings.model).

    ``openai:NAME`` is model NAME on the OpenAI-compatible server at settings.base_url; anything else is a
    registered model name, a named adapter model (`sqlwright models add`) or a .gguf path, loaded in-process
    once per (file, n_ctx, threads, adapter); settings.lora applies a LoRA adapter to an embedded model.
    """
    settings = settings or load_settings()
    name = model or settings.model
    # A named adapter model is its base plus its adapter; settings.lora adds one to any embedded model.
    name, lora = resolve_adapter(name, settings.lora, settings.cache_dir)
    if name.startswith(OPENAI_PREFIX):
        remote = name[len(OPENAI_PREFIX):]
        if not remote:
            raise ConfigError("model 'openai:' needs a model name after the colon, e.g. openai:qwen2.5-coder")
        if not settings.base_url:
            raise ConfigError(
                f"model '{name}' needs the server's base_url: set SQLWRIGHT_BASE_URL "
                "(e.g. http://127.0.0.1:8000/v1) or pass --base-url"
            )
        from sqlwright.llm.openai_backend import OpenAILLM

        return OpenAILLM(
            remote,
            settings.base_url,
            api_key=settings.api_key,
            timeout=settings.request_timeout,
            retries=settings.retries,
            connect_timeout=settings.connect_timeout,
        )
    if lora is not None:
        lora = lora.resolve()
    path = model_path(name, settings.cache_dir).resolve()
    key = (path, settings.n_ctx, settings.threads, settings.prompt_lookup_tokens, lora)
    with _loaded_lock:
        llm = _loaded.get(key)
        if llm is None:
            from sqlwright.llm.llamacpp import EmbeddedLLM

            llm = EmbeddedLLM(path, n_ctx=settings.n_ctx, n_threads=settings.threads,
                              lookup_tokens=settings.prompt_lookup_tokens, prompt_cache=prompt_cache(settings),
                              lora_path=lora)
            _loaded[key] = llm
        return llm


def prompt_cache(settings: Settings) -> PromptCache | None:
    """The embedded models' on-disk prompt cache (None when prompt_cache_mb is 0)."""
    if settings.prompt_cache_mb <= 0:
        return None
    return PromptCache(settings.cache_dir / "prompt-cache", settings.prompt_cache_mb * 2**20)


def clear_loaded_models() -> None:
    """Close and forget the embedded models this process has loaded (frees their memory)."""
    with _loaded_lock:
        for llm in _loaded.values():
            llm.close()
        _loaded.clear()
