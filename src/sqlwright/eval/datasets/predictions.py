"""Read a predictions file written by another system, in any of the three usual formats.

- **JSONL** (sqlwright's own): one object per line, {"id": ..., "sql": ...}; `sql` null means the system
  abstained. Optional: seconds, prompt_tokens, completion_tokens, error.
- **BIRD**: one JSON object {"0": "SQL\\t----- bird -----\\tdb_id", ...} keyed by the question's position
  in the dataset file.
- **Spider**: one SQL per line, in example order (anything after a tab, such as a db_id, is dropped, as
  the official evaluator does). An empty line is an abstention.

The format is recognised from the content: a single JSON object is BIRD, lines that are JSON objects
are JSONL, anything else is Spider.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sqlwright.errors import DatasetError
from sqlwright.eval.datasets.base import undecodable_line
from sqlwright.eval.types import Example, Prediction

BIRD_SEPARATOR = "\t----- bird -----\t"


def read_predictions(path: Path, examples: list[Example]) -> dict[str, Prediction]:
    """Predictions keyed by example id. Raises DatasetError naming the file and line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"predictions file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # universal newlines: every line ends in "\n" here
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}:{undecodable_line(path)}: not UTF-8 text") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read predictions file {path}: {exc.strerror or exc}") from exc
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # several objects: JSON Lines
        except RecursionError as exc:
            raise DatasetError(f"{path}: JSON nested too deeply") from exc
        if isinstance(whole, dict) and not ("id" in whole and "sql" in whole):
            return _read_bird(path, whole, examples)
        return _read_jsonl(path, text, examples)
    if stripped.startswith("["):
        raise DatasetError(f"{path}: a JSON list is not a predictions format; use JSON Lines of {{id, sql}}")
    return _read_spider(path, text, examples)


def _read_jsonl(path: Path, text: str, examples: list[Example]) -> dict[str, Prediction]:
    known = {example.id for example in examples}
    out: dict[str, Prediction] = {}
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: malformed JSON: {exc.msg}") from exc
        except RecursionError as exc:
            raise DatasetError(f"{path}:{number}: JSON nested too deeply") from exc
        if not isinstance(record, dict) or "id" not in record or "sql" not in record:
            raise DatasetError(f"{path}:{number}: expected an object with 'id' and 'sql'")
        example_id = str(record["id"])
        if example_id not in known:
            raise DatasetError(f"{path}:{number}: id {example_id!r} is not in the dataset")
        if example_id in out:
            raise DatasetError(f"{path}:{number}: second prediction for id {example_id!r}")
        sql = record["sql"]
        if sql is not None and not isinstance(sql, str):
            raise DatasetError(f"{path}:{number}: 'sql' must be a string or null")
        out[example_id] = Prediction(
            id=example_id,
            sql=_clean(sql),
            seconds=_number(record, "seconds", float, path, number),
            prompt_tokens=_number(record, "prompt_tokens", int, path, number),
            completion_tokens=_number(record, "completion_tokens", int, path, number),
            error=_error(record, path, number),
        )
    return out


def _read_bird(path: Path, mapping: dict, examples: list[Example]) -> dict[str, Prediction]:
    by_index = {example.extra.get("index", position): example for position, example in enumerate(examples)}
    out: dict[str, Prediction] = {}
    for key, value in mapping.items():
        # Plain digits only: int() would also take " 1", "1_0" and non-ASCII digits.
        if not (key.isascii() and key.isdigit()) or len(key) > 18:
            raise DatasetError(f"{path}: key {_cut(key)!r} is not a question index (BIRD predictions format)")
        index = int(key)
        example = by_index.get(index)
        if example is None:
            raise DatasetError(f"{path}: key {key!r} is beyond the dataset's {len(examples)} questions")
        if value is not None and not isinstance(value, str):
            raise DatasetError(f"{path}: key {key!r}: expected a string 'SQL\\t----- bird -----\\tdb_id'")
        sql = value.split(BIRD_SEPARATOR, 1)[0] if value is not None else None
        out[example.id] = Prediction(id=example.id, sql=_clean(sql))
    return out


def _lines(text: str) -> list[str]:
    """The file's lines, as the official evaluators read them: split at line ends only, not at the other
    characters `str.splitlines` breaks on (U+2028, form feed, ...), which may sit inside a SQL literal."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _read_spider(path: Path, text: str, examples: list[Example]) -> dict[str, Prediction]:
    lines = _lines(text)
    # A trailing blank line is an editor's newline, not an abstention.
    while len(lines) > len(examples) and not lines[-1].strip():
        lines.pop()
    if len(lines) != len(examples):
        raise DatasetError(
            f"{path}: {len(lines)} lines for {len(examples)} questions "
            "(Spider format: one SQL per line, in the dataset's order)"
        )
    return {
        example.id: Prediction(id=example.id, sql=_clean(line.split("\t", 1)[0]))
        for example, line in zip(examples, lines, strict=True)
    }


def _clean(sql: str | None) -> str | None:
    if sql is None:
        return None
    sql = sql.strip()
    return sql or None


def _number(record: dict, key: str, kind: type, path: Path, line: int) -> Any:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetError(f"{path}:{line}: '{key}' must be a number")
    if kind is int and value != int(value):
        raise DatasetError(f"{path}:{line}: '{key}' must be a whole number")
    return kind(value)


def _error(record: dict, path: Path, line: int) -> str | None:
    value = record.get("error")
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"{path}:{line}: 'error' must be a string or null")
    return value or None


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
