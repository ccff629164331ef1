"""Writing files so that a reader never sees half of one: write a temporary file beside the target, then
rename it onto the target (atomic on POSIX), or remove it when the writing fails."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path, *, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path next to `target` for the block to write; renamed onto `target` (with `mode`: mkstemp
    makes files private, and what sqlwright writes is no secret) when the block succeeds, removed otherwise."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
