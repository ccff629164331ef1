"""Model-proposed vocabularies for text columns: the prompt, the parsing of the reply, and the work file
that keeps every reply so that a killed run resumes without asking the model again.

    request = VocabularyRequest("wine_1", "wine", (("Name", 30), ("Color", 6)), context=(("Price", "number"),))
    values = propose_vocabulary(llm, request, cache)    # {"Name": ["Chateau Margaux", ...], "Color": [...]}

One prompt per table (columns in chunks for wide tables) asks for realistic, distinct values per column as
JSON; the reply is parsed leniently (code fences, truncated JSON, single quotes, lists of row objects) and
cleaned (placeholders, column-name echoes, over-long or duplicate values dropped). A column the model
fails on is left out of the result; the caller falls back to programmatic values for it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlwright.errors import LLMRequestFailed, UserError
from sqlwright.llm.base import LLM, Message

log = logging.getLogger(__name__)

VOCABULARY_PROMPT_VERSION = "vocab-2"  # change when the prompt changes what a model would write
COLUMNS_PER_PROMPT = 8  # wide tables are asked about in chunks: small models lose the thread in long lists
MIN_VALUES = 3  # fewer usable values than this (after cleaning) and the column falls back to programmatic
MAX_VALUE_CHARS = 60
LONG_VALUE_CHARS = 160  # descriptions, details, comments, titles, addresses
_LONG_TOKENS = {"description", "details", "detail", "comment", "comments", "note", "notes", "text", "abstract",
                "title", "address", "summary", "review", "content", "message", "reason", "remarks", "body"}

SYSTEM = ("You fill test databases with realistic example data. You reply with one JSON object and nothing "
          "else.")


@dataclass(frozen=True)
class VocabularyRequest:
    """What to ask the model about one table: the columns wanted (name, how many values) and context."""

    db_id: str
    table: str
    columns: tuple[tuple[str, int], ...]
    context: tuple[tuple[str, str], ...] = ()  # the table's other columns: (name, coarse type)
    related: tuple[str, ...] = ()  # tables this one references or is referenced by
    ddl: str = ""  # the table's CREATE TABLE, shown to the model when given

    def key(self, model: str) -> str:
        """The request's identity in the work file: database, table, model, prompt version and columns."""
        cols = ",".join(f"{name}:{count}" for name, count in self.columns)
        return f"{self.db_id}\x1f{self.table}\x1f{model}\x1f{VOCABULARY_PROMPT_VERSION}\x1f{cols}"


@dataclass
class VocabularyStats:
    """What proposing vocabularies cost: model calls, answers reused from the work file, columns lost."""

    model_calls: int = 0
    cached: int = 0
    failed_columns: int = 0
    request_failures: int = 0  # requests that failed (not kept in the work file: a resumed run asks again)
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # "db.table.column" the model gave nothing usable for


def build_messages(request: VocabularyRequest) -> list[Message]:
    """The chat asking for `request.columns`' values as one JSON object, with the table (its CREATE TABLE
    when given, else its columns) and its neighbours as context. The count is said once, not per column:
    small models copy a per-column count into the list as a value."""
    names = [name for name, _ in request.columns]
    topic = _readable(request.db_id)
    if request.ddl:
        lines = [f'Table "{request.table}" in a database about {topic}:', request.ddl]
    else:
        columns = [f"{name} ({kind})" for name, kind in request.context] + names
        lines = [f'Table "{request.table}" in a database about {topic}, with the columns {", ".join(columns)}.']
    if request.related:
        lines.append("Related tables: " + ", ".join(request.related) + ".")
    most = max(count for _, count in request.columns)
    few = [name for name, count in request.columns if count < most]
    lines.append("")
    lines.append(f"For each of the columns {', '.join(names)}, list about {most} different realistic values it "
                 "could hold (real names, words and codes; never \"Item 1\" or \"Example\").")
    if few:
        lines.append(f"{', '.join(few)}: only a few categories each.")
    lines.append("Reply with one JSON object: {" + ", ".join(f'"{n}": ["...", "..."]' for n in names) + "}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def max_tokens_for(request: VocabularyRequest) -> int:
    """A reply budget that fits the values asked for (about 6 tokens a value): a model that repeats itself
    stops there."""
    return min(1536, 40 + sum(12 + 6 * count for _, count in request.columns))


def propose_vocabulary(llm: LLM, request: VocabularyRequest, cache: VocabularyCache | None = None,
                       stats: VocabularyStats | None = None) -> dict[str, list[str]]:
    """Values per column of `request` that the model proposed and cleaning kept (columns it failed on are
    absent). Replies are kept in `cache` (and read from it) by the request's key; a request that failed
    (server error, timeout) is not kept, so a resumed run asks again. Unreachable servers raise."""
    stats = stats if stats is not None else VocabularyStats()
    model = getattr(llm, "name", type(llm).__name__)
    names = [name for name, _ in request.columns]
    avoid = [request.table, *(name for name, _ in request.context), *request.related]
    raw: dict[str, list[str]] = {}
    for start in range(0, len(request.columns), COLUMNS_PER_PROMPT):
        chunk = VocabularyRequest(request.db_id, request.table, request.columns[start:start + COLUMNS_PER_PROMPT],
                                  request.context, request.related, request.ddl)
        key = chunk.key(model)
        cached = cache.get(key) if cache is not None else None
        if cached is not None:  # parsed again from the kept reply: a better parser helps resumed runs too
            stats.cached += 1
            reply = cache.reply(key)
            raw.update(parse_vocabulary(reply, [n for n, _ in chunk.columns], avoid) if reply is not None else cached)
            continue
        began = time.perf_counter()
        try:
            [completion] = llm.complete(build_messages(chunk), n=1, temperature=0.0,
                                        max_tokens=max_tokens_for(chunk))
        except UserError:  # the server is unreachable or refuses the model: every table would fail
            raise
        except LLMRequestFailed as exc:
            log.warning("vocabulary for %s.%s: model request failed (%s); programmatic values instead",
                        request.db_id, request.table, exc)
            stats.request_failures += 1
            continue
        finally:
            stats.seconds += time.perf_counter() - began
        stats.model_calls += 1
        parsed = parse_vocabulary(completion.text, [name for name, _ in chunk.columns], avoid)
        if cache is not None:
            cache.put(key, parsed, reply=completion.text)
        raw.update(parsed)
    counts = dict(request.columns)
    out: dict[str, list[str]] = {}
    for name in names:
        values = raw.get(name) or []
        kept = values[: counts[name]]
        if len(kept) >= min(MIN_VALUES, counts[name]):
            out[name] = kept
        else:
            stats.failed_columns += 1
            stats.failures.append(f"{request.db_id}.{request.table}.{name}")
    return out


# --- parsing ---------------------------------------------------------------------------------------
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"|\'((?:[^\'\\\n]|\\.)*)\'')
_PLACEHOLDER = re.compile(
    r"^(?:\.{2,}|…|-+|\?+|_+|x{2,}|n/?a|none|null|nil|nan|tbd|tba|unknown|undefined|lorem ipsum.*|"
    r"(?:value|item|example|sample|string|text|entry|option|data|test|placeholder|foo|bar|baz|"
    r"column|field|name|value_?\d*)[\s_#-]*\d*)$",
    re.I,
)


def parse_vocabulary(text: str, columns: Sequence[str], avoid: Iterable[str] = ()) -> dict[str, list[str]]:
    """The cleaned values per column in a model's reply (columns with nothing usable are absent).

    Accepts a JSON object (in or out of a code fence, keys matched to `columns` ignoring case, blanks and
    underscores), a list of row objects, JSON cut off by the token limit, and single-quoted lists. Values
    that merely name a column or table (`avoid`, and the columns themselves) are dropped."""
    avoid = {_norm(a) for a in [*avoid, *columns]}
    by_norm = {_norm(c): c for c in columns}
    found: dict[str, list[object]] = {}
    for candidate in _json_candidates(text):
        for key, values in _column_lists(candidate):
            name = by_norm.get(_norm(key))
            if name is not None and name not in found:
                found[name] = values
        if found:
            break
    for name in columns:  # truncated or malformed JSON: each column's list, or its values in row objects
        if name not in found:
            values = _scan_list(text, name) or _scan_pairs(text, name)
            if values:
                found[name] = values
    out = {}
    for name, values in found.items():
        cleaned = [v for v in clean_values(values, name) if _norm(v) not in avoid]
        if cleaned:
            out[name] = cleaned
    return out


def clean_values(values: Iterable[object], column: str) -> list[str]:
    """`values` as distinct, trimmed strings with junk dropped: empty, placeholders ('...', 'N/A',
    'value 1'), echoes of the column's name, over-long text, line breaks, nested structures."""
    cap = LONG_VALUE_CHARS if set(_tokens(column)) & _LONG_TOKENS else MAX_VALUE_CHARS
    col_norm = _norm(column)
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        if isinstance(value, bool) or value is None or isinstance(value, dict | list | tuple):
            continue
        text = " ".join(str(value).split()).strip(" \"'`")
        if not text or len(text) > cap or any(ord(ch) < 32 for ch in text):
            continue
        norm = _norm(text)
        if not norm or _PLACEHOLDER.match(text) or norm == col_norm or re.fullmatch(re.escape(col_norm) + r"\d+", norm):
            continue
        if norm in seen:
            continue
        seen.add(norm)
        out.append(text)
    return _drop_numbered(out)


_ORDINALS = {"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth", "another", "yet", "one", "two", "three", "four", "five", "six", "seven",
             "eight", "nine", "ten", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "x", "y", "z"}
_REPEATS = re.compile(r"\b(\w+\W+\w+)\b.*\b\1\b", re.I)  # 'History of Science of Science': a model looping
_TEMPLATE_WORDS = re.compile(r"\b(?:example|sample|placeholder|lorem|ipsum|dummy|test)\b", re.I)


def _skeleton(value: str) -> str:
    """`value` without numbers, ordinal words and single letters: 'Customer A's Third Invoice' and
    'Account 12' become 'customer s invoice' and 'account'."""
    words = re.findall(r"[a-z]+", value.lower())
    return " ".join(w for w in words if w not in _ORDINALS)


def _drop_numbered(values: list[str]) -> list[str]:
    """Without template values: series that differ only by a number, letter or ordinal ('Account 1',
    'Account 2' …; 'Customer A's First Invoice', '… Second Invoice' …) when three or more make up half the
    list or more, and values naming themselves examples ('Example School')."""
    values = [v for v in values if not _TEMPLATE_WORDS.search(v) and not _REPEATS.search(v)]
    counts: dict[str, int] = {}
    for v in values:
        counts[_skeleton(v)] = counts.get(_skeleton(v), 0) + 1
    junk = {k for k, n in counts.items() if k and n >= 3 and 2 * n >= len(values)}  # 'A', 'B', 'C' are fine
    return [v for v in values if _skeleton(v) not in junk]


def _json_candidates(text: str) -> list[object]:
    """Every JSON value that decodes from the reply: fenced blocks first, then from each '{' or '['."""
    decoder = json.JSONDecoder()
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    out = []
    for source in sources:
        for i, ch in enumerate(source):
            if ch in "{[":
                try:
                    value, _ = decoder.raw_decode(source, i)
                except ValueError:
                    continue
                if isinstance(value, dict | list) and value:
                    out.append(value)
                    break
    return out


def _column_lists(value: object) -> list[tuple[str, list[object]]]:
    """(key, values) pairs in a decoded reply: {"col": [...]}, {"col": {"values": [...]}}, {"col": "a, b"},
    a wrapper such as {"columns": {...}}, or a list of rows [{"col": v, ...}, ...]."""
    if isinstance(value, list):
        rows = [r for r in value if isinstance(r, dict)]
        merged: dict[str, list[object]] = {}
        for row in rows:
            for k, v in row.items():
                merged.setdefault(str(k), []).append(v)
        return list(merged.items())
    if not isinstance(value, dict):
        return []
    pairs = []
    for k, v in value.items():
        if isinstance(v, list):
            pairs.append((str(k), v))
        elif isinstance(v, dict):
            inner = [x for x in v.values() if isinstance(x, list)]
            if inner:
                pairs.append((str(k), inner[0]))
            pairs.extend(_column_lists(v))  # a wrapper object around the columns
        elif isinstance(v, str) and "," in v:
            pairs.append((str(k), [p for p in v.split(",")]))
    return pairs


def _scan_list(text: str, column: str) -> list[str]:
    """Quoted strings after `"column": [` up to the closing bracket or the end of the text."""
    pattern = r"[\"']?" + r"[\s_]*".join(re.escape(p) for p in _tokens(column) or [column]) + r"[\"']?\s*:\s*\["
    match = re.search(pattern, text, re.I)
    if match is None:
        return []
    values = []
    pos = match.end()
    while True:
        m = _STRING.search(text, pos)
        close = text.find("]", pos)
        if m is None or (close != -1 and close < m.start()):
            break
        raw = m.group(1) if m.group(1) is not None else m.group(2)
        try:
            values.append(json.loads(f'"{raw}"') if m.group(1) is not None else raw)
        except ValueError:
            values.append(raw)
        pos = m.end()
    return values


def _scan_pairs(text: str, column: str) -> list[str]:
    """Every `"column": "value"` in the text (rows of a list cut off before its end)."""
    key = r"[\s_]*".join(re.escape(p) for p in _tokens(column) or [column])
    values = []
    for m in re.finditer(r"[\"']" + key + r"[\"']\s*:\s*(?:\"((?:[^\"\\\n]|\\.)*)\"|'((?:[^'\\\n]|\\.)*)')", text, re.I):
        if m.group(1) is not None:
            try:
                values.append(json.loads(f'"{m.group(1)}"'))
            except ValueError:
                values.append(m.group(1))
        else:
            values.append(m.group(2))
    return values


def _tokens(name: str) -> list[str]:
    """`name`'s words, lower case: camelCase, underscores, blanks and digits split."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", str(text).lower())


def _readable(name: str) -> str:
    """'cre_Doc_Tracking_DB' -> 'cre Doc Tracking DB', 'ArtistName' -> 'Artist Name' (names a model reads)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return " ".join(p for p in re.split(r"[_\s]+", spaced) if p)


# --- the work file ---------------------------------------------------------------------------------
class VocabularyCache:
    """Model replies by request key, one JSON line each in `path`, appended and flushed as they arrive.

    A run killed mid-write leaves at most a torn last line, which is skipped when the file is read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, list[str]]] = {}
        self._replies: dict[str, str] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                        key = str(record["key"])
                        self._entries[key] = {str(k): [str(x) for x in v] for k, v in dict(record["values"]).items()}
                        if isinstance(record.get("reply"), str):
                            self._replies[key] = record["reply"]
                    except (ValueError, KeyError, TypeError, AttributeError):
                        log.debug("skipping a torn line in %s", self.path)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, list[str]] | None:
        return self._entries.get(key)

    def reply(self, key: str) -> str | None:
        """The model's reply kept under `key`, as it wrote it."""
        return self._replies.get(key)

    def put(self, key: str, values: Mapping[str, Sequence[str]], reply: str | None = None) -> None:
        """Keep `values` and the model's `reply` under `key`, durably before returning."""
        self._entries[key] = {k: list(v) for k, v in values.items()}
        if reply is not None:
            self._replies[key] = reply
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db_id, table, model, version, _ = (key.split("\x1f") + [""] * 5)[:5]
        line = json.dumps({"key": key, "db_id": db_id, "table": table, "model": model, "prompt": version,
                           "values": self._entries[key], "reply": reply}, ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("\n" + line + "\n")  # a leading newline ends a line torn by an earlier kill
            fh.flush()
            os.fsync(fh.fileno())
