"""Fixtures for the training tests: the tiny random Qwen2 (HF directory + GGUF), built once per session."""

from __future__ import annotations

import pytest
from tiny_model import TinyModel, build_tiny_qwen2


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The tiny Qwen2 of tiny_model.py, written under a session temporary directory (needs the [train] extra)."""
    for module in ("torch", "transformers", "tokenizers", "gguf"):
        pytest.importorskip(module, reason="needs the train extra: pip install 'sqlwright[train]'")
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))
