"""The result of one execution."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    truncated: bool = False  # more rows existed than the row cap allowed
    seconds: float = 0.0

    @property
    def row_count(self) -> int:
        return len(self.rows)
