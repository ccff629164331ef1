"""Values from any database driver made JSON-safe, so that a stored result reads back the same from SQLite
and PostgreSQL and goes to a browser as is.

    json_safe(Decimal("9.50"))  -> 9.5          json_safe(b"\\x00\\xff")        -> "00ff"
    json_safe(date(2024, 1, 2)) -> "2024-01-02"  json_safe(float("nan"))        -> "NaN"
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

JSONValue = None | bool | int | float | str | list[Any] | dict[str, Any]

_MAX_DEPTH = 32  # nested arrays/objects deeper than this (no real result has them) become text


def clean_text(text: str) -> str:
    """`text` storable in any engine: lone surrogates (undecodable bytes some drivers let through) and NUL
    (which PostgreSQL's text refuses) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A valid surrogate pair joins into its character; a lone one becomes U+FFFD.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _decimal(value: Decimal) -> int | float | str:
    """An integral Decimal as an int, one a float represents exactly as written as a float, else its text
    (a float would change it)."""
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def json_safe(value: object, _depth: int = 0) -> JSONValue:
    """`value` as JSON data: Decimal -> int, float or text; date, time, datetime -> ISO 8601 text;
    timedelta -> seconds; bytes -> hex; UUID -> text; NaN and infinities -> "NaN", "Infinity"; sequences ->
    lists; mappings -> objects with text keys; text cleaned (clean_text); anything else -> its str()."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _number(float(value))
    if isinstance(value, str):
        return clean_text(str(value))
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if _depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return {clean_text(str(k)): json_safe(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [json_safe(v, _depth + 1) for v in value]
    return clean_text(str(value))


def json_safe_rows(rows: Iterable[Iterable[object]], max_rows: int) -> tuple[tuple[tuple, ...], bool]:
    """At most `max_rows` rows, each a tuple of JSON-safe cells, and whether rows were left out."""
    kept: list[tuple] = []
    for row in rows:
        if len(kept) >= max_rows:
            return tuple(kept), True
        kept.append(tuple(json_safe(cell) for cell in row))
    return tuple(kept), False
