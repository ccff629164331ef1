"""KV states of shared prompt prefixes, kept on disk so that a new process need not prefill them again.

The embedded backend saves the KV state of a prompt's shared prefix (system message + schema rendering) after
evaluating it, and a later process (or the same one, back on a database it left) loads it instead of paying
the prefill: for the 1.5B model on 2 cores, about 15 s for a 1,100-token schema prompt against a few
hundredths of a second to read the state.

A state is found by what it is: the file name is a hash of the model's identity (the GGUF file's sha256, the
llama.cpp build and the KV-cache layout) and the prefix's token ids. A changed database (another schema
rendering, other sample values) or a changed prompt is another token sequence and so another file: a stale
state cannot be found, let alone used. Every file is checked before it is trusted: magic, format, the model
identity and the very token ids it was made from (stored in the file), the state's length and sha256; any
mismatch (a partial, corrupt or foreign file) is a miss, and the state is computed and written again.

Writes go to a temporary file in the same directory, renamed into place (atomic: a reader sees the old file or
the new one, never half of one; two processes writing the same state both write whole files). The total size is
bounded (``prompt_cache_mb``): after each write the least recently used states (by modification time, which a
hit refreshes) are deleted until the rest fit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"SQLWKV\x00\x01"  # file format version 1
SUFFIX = ".kv"
_TEMP_PREFIX = ".tmp-"
_STALE_TEMP_SECONDS = 3600.0  # a temporary file this old is a writer that died: removed by eviction
_HEADER = struct.Struct("<8sI")  # magic, header JSON length


def _token_bytes(tokens: Sequence[int]) -> bytes:
    return array("i", tokens).tobytes()


@dataclass(frozen=True)
class PromptCache:
    """States of prompt prefixes under `directory`, at most `max_bytes` in all."""

    directory: Path
    max_bytes: int

    def path_for(self, model_id: str, tokens: Sequence[int]) -> Path:
        digest = hashlib.sha256(model_id.encode("utf-8") + b"\x00" + _token_bytes(tokens)).hexdigest()
        return self.directory / f"{digest[:40]}{SUFFIX}"

    def load(self, model_id: str, tokens: Sequence[int]) -> bytes | None:
        """The state saved for exactly `tokens` under `model_id`, or None (missing, or not to be trusted)."""
        path = self.path_for(model_id, tokens)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        state = _parse(data, model_id, _token_bytes(tokens))
        if state is None:
            log.warning("prompt cache: ignoring %s (partial, corrupt or made for another model)", path.name)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used
        return state

    def store(self, model_id: str, tokens: Sequence[int], state: bytes) -> Path | None:
        """Save `state` for `tokens` under `model_id` (atomically), then evict down to the size bound.
        Returns the file, or None when the state alone exceeds the bound or the directory is not writable."""
        token_bytes = _token_bytes(tokens)
        header = json.dumps({
            "model": model_id,
            "tokens": len(tokens),
            "state_bytes": len(state),
            "state_sha256": hashlib.sha256(state).hexdigest(),
            "created": time.time(),
        }).encode("utf-8")
        size = _HEADER.size + len(header) + len(token_bytes) + len(state)
        if size > self.max_bytes:
            return None
        path = self.path_for(model_id, tokens)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(_HEADER.pack(MAGIC, len(header)))
                    fh.write(header)
                    fh.write(token_bytes)
                    fh.write(state)
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as exc:
            log.warning("prompt cache: cannot write %s (%s)", self.directory, exc)
            return None
        self.evict(keep=path)
        return path

    def evict(self, keep: Path | None = None) -> None:
        """Delete the least recently used states until the total fits `max_bytes` (`keep` goes last), and
        temporary files left by writers that died."""
        entries = []
        now = time.time()
        try:
            names = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in names:
            try:
                st = entry.stat()
            except OSError:
                continue  # deleted meanwhile by another process
            if entry.name.startswith(_TEMP_PREFIX):
                if now - st.st_mtime > _STALE_TEMP_SECONDS:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                continue
            if entry.name.endswith(SUFFIX):
                entries.append((entry.path == str(keep), st.st_mtime, st.st_size, entry.path))
        total = sum(size for _, _, size, _ in entries)
        for _, _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
            total -= size

    def total_bytes(self) -> int:
        try:
            return sum(p.stat().st_size for p in self.directory.glob(f"*{SUFFIX}"))
        except OSError:
            return 0


def _parse(data: bytes, model_id: str, token_bytes: bytes) -> bytes | None:
    """The state in a cache file's bytes, if the file is whole and was made for `model_id` and these tokens."""
    if len(data) < _HEADER.size:
        return None
    magic, header_len = _HEADER.unpack_from(data)
    if magic != MAGIC or _HEADER.size + header_len > len(data):
        return None
    try:
        header = json.loads(data[_HEADER.size : _HEADER.size + header_len])
        n_tokens = int(header["tokens"])
        state_bytes = int(header["state_bytes"])
        state_sha = str(header["state_sha256"])
        model = str(header["model"])
    except (ValueError, KeyError, TypeError):
        return None
    start = _HEADER.size + header_len
    if model != model_id or n_tokens * 4 != len(token_bytes):
        return None
    if data[start : start + len(token_bytes)] != token_bytes:
        return None
    state = data[start + len(token_bytes) :]
    if len(state) != state_bytes or hashlib.sha256(state).hexdigest() != state_sha:
        return None
    return state
