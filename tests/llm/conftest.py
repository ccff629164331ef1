"""Shared fixtures for the model layer: the real embedded model, assembled and loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sqlwright.errors import ModelMissing


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SQLWRIGHT_CACHE_DIR when set (reuses an assembled model), else a fresh session directory."""
    env = os.environ.get("SQLWRIGHT_CACHE_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("sqlwright-cache")


@pytest.fixture(scope="session")
def test_model_name() -> str:
    return os.environ.get("SQLWRIGHT_TEST_MODEL", "qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def model_file(model_cache_dir: Path, test_model_name: str) -> Path:
    """The real GGUF (assembled from the installed part packages); skips when the parts are not installed."""
    from sqlwright.llm.models import model_path

    try:
        return model_path(test_model_name, model_cache_dir)
    except ModelMissing as exc:
        pytest.skip(f"model parts not installed: {exc}")


@pytest.fixture(scope="session")
def embedded_llm(model_file: Path):
    """One EmbeddedLLM for the whole session (loading costs seconds; CI has two cores)."""
    pytest.importorskip("llama_cpp")
    from sqlwright.llm.llamacpp import EmbeddedLLM

    llm = EmbeddedLLM(model_file, n_ctx=2048, seed=0)
    yield llm
    llm.close()
