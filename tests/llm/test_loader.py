"""load_llm: openai: names, embedded names and paths, the in-process cache, lazy imports, exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import sqlwright.llm as llm_pkg
from sqlwright.config import Settings
from sqlwright.errors import ConfigError, UnknownModel
from sqlwright.llm import clear_loaded_models, load_llm


def test_openai_model_uses_settings() -> None:
    settings = Settings(base_url="http://127.0.0.1:9/v1", api_key="k", request_timeout=7, retries=0)
    llm = load_llm("openai:qwen-coder", settings)
    assert type(llm).__name__ == "OpenAILLM"
    assert (llm.name, llm.model, llm.base_url, llm.timeout, llm.retries) == (
        "openai:qwen-coder", "qwen-coder", "http://127.0.0.1:9/v1", 7, 0
    )


def test_openai_model_without_base_url_or_name_is_config_error() -> None:
    with pytest.raises(ConfigError, match="SQLWRIGHT_BASE_URL"):
        load_llm("openai:qwen-coder", Settings())
    with pytest.raises(ConfigError, match="model name"):
        load_llm("openai:", Settings(base_url="http://127.0.0.1:9/v1"))


def test_unknown_model_name(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="did you mean 'qwen2.5-coder-1.5b'"):
        load_llm("qwen2.5-coder-1.5", Settings(cache_dir=tmp_path))


def test_package_import_loads_no_backend_library() -> None:
    code = (
        "import sys, sqlwright.llm\n"
        "heavy = [m for m in ('llama_cpp', 'openai', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_exports_resolve() -> None:
    for name in llm_pkg.__all__:
        assert getattr(llm_pkg, name) is not None, name
    with pytest.raises(AttributeError):
        _ = llm_pkg.NoSuchThing


@pytest.mark.model
def test_embedded_models_are_shared_per_file_and_context(model_file: Path, model_cache_dir: Path,
                                                        test_model_name: str) -> None:
    pytest.importorskip("llama_cpp")
    settings = Settings(cache_dir=model_cache_dir, n_ctx=512, threads=1)
    try:
        first = load_llm(test_model_name, settings)
        assert type(first).__name__ == "EmbeddedLLM" and first.n_ctx == 512
        assert load_llm(str(model_file), settings) is first  # the path and the name are one file
        other = load_llm(test_model_name, Settings(cache_dir=model_cache_dir, n_ctx=1024, threads=1))
        assert other is not first and other.n_ctx == 1024
    finally:
        clear_loaded_models()


def test_missing_llama_cpp_is_model_missing_with_install_hint(tmp_path: Path, monkeypatch) -> None:
    from sqlwright.errors import ModelMissing
    from sqlwright.llm.llamacpp import EmbeddedLLM

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(ModelMissing, match=r"pip install 'sqlwright\[embedded\]'.*sqlwright\.sh"):
        EmbeddedLLM(gguf)
