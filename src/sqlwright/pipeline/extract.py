"""Pull the SQL (or the "cannot be answered" marker) out of a model's free-form reply.

Order of preference: the last ```sql fenced block; else the last fenced block (any or no language tag)
that holds a statement; else the text from the first SELECT/WITH to the first `;` or blank line.
Special tokens (`<|im_end|>` ...), labels ("SQL:"), comment-only lines and trailing `;` are removed.
When a snippet holds several statements, the last one is kept: it is the model's final word.

Nothing here judges whether the SQL is safe; the guard does that before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# End-of-turn and special tokens that leak into replies from some backends and chat templates.
_SPECIAL_TOKENS = re.compile(
    r"<\|im_end\|>|<\|im_start\|>(?:assistant)?|<\|endoftext\|>|<\|eot_id\|>|<\|end\|>|</s>|<eos>"
)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n`]*\n?(.*?)(?:```|\Z)", re.S)
_SQL_TAGS = {"sql", "sqlite", "sqlite3", "postgres", "postgresql", "pgsql", "psql", "mysql", "mariadb",
             "duckdb", "tsql", "plsql", "sql92"}
# A statement start, used to tell SQL from prose inside untagged blocks. DML/DDL keywords are listed so
# that such a reply reaches the guard and is refused visibly, instead of passing as "no SQL".
_STATEMENT_START = re.compile(
    r"^\s*\(*\s*(select|with|insert|update|delete|drop|create|alter|pragma|attach|detach|replace|"
    r"truncate|grant|revoke|copy|values|explain|set|show|describe|call|merge|vacuum)\b",
    re.I,
)
_LABEL = re.compile(r"^\s*(?:final\s+)?(?:sql(?:\s+query)?|query|answer)\s*:\s*", re.I)
_UNANSWERABLE = re.compile(
    r"^[ \t>*`]*(?:--|#)?[ \t*]*(?:UNANSWERABLE|NOT[ _]ANSWERABLE|CANNOT[ _]ANSWER)\b[ \t*]*[:\-]?[ \t]*(.*)$",
    re.I | re.M,
)
# Raw-text fallback: SQL keywords are almost always upper case in replies, prose words lower case.
_RAW_START_UPPER = re.compile(r"\b(SELECT|WITH)\b")
_RAW_START_LINE = re.compile(r"^[ \t]*(select|with)\b", re.I | re.M)


@dataclass(frozen=True)
class Extraction:
    """What a reply says: its SQL, or the model's reason why the question cannot be answered."""

    sql: str | None
    unanswerable: str | None = None  # the stated reason, when the reply says it cannot be answered


def strip_special_tokens(text: str) -> str:
    """`text` without chat-template special tokens."""
    return _SPECIAL_TOKENS.sub("", text)


def _split_statements(sql: str) -> list[str]:
    """Split at `;` outside quotes and comments (a forgiving scanner: replies are not always valid SQL)."""
    parts: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if j + 1 < n and sql[j + 1] == close and close != "]":  # doubled quote escapes
                        j += 2
                        continue
                    break
                j += 1
            buf.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            buf.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append(sql[i:j])
            i = j
        elif ch == ";":
            parts.append("".join(buf))
            buf = []
            i += 1
        else:
            buf.append(ch)
            i += 1
    parts.append("".join(buf))
    return parts


def _without_comment_lines(sql: str) -> str:
    """Drop lines that are only a `--` comment (models annotate; the guard trims them anyway)."""
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))


def clean_sql(snippet: str) -> str | None:
    """The last statement in `snippet`, trimmed of labels, comment-only lines and `;`; None if empty."""
    text = _LABEL.sub("", strip_special_tokens(snippet).strip(), count=1)
    statements = [_without_comment_lines(s).strip() for s in _split_statements(text)]
    statements = [s for s in statements if s]
    if not statements:
        return None
    return statements[-1]


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag lower-cased, body) of each fenced block, an unterminated last one included."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def _from_raw_text(text: str) -> str | None:
    """From the first SELECT/WITH to the first `;` or blank line, for replies without fences."""
    match = _RAW_START_UPPER.search(text) or _RAW_START_LINE.search(text)
    if match is None:
        return None
    tail = text[match.start() :]
    tail = _split_statements(tail)[0]
    tail = re.split(r"\n[ \t]*\n", tail, maxsplit=1)[0]
    return clean_sql(tail)


def _reply_body(text: str) -> str:
    """The part of a reply after a closed `<think>` section when that part holds anything."""
    if "</think>" in text:
        after = text.rsplit("</think>", 1)[1]
        if after.strip():
            return after
    return text


def extract_sql(text: str) -> str | None:
    """The SQL in a model reply, or None when there is none."""
    body = _reply_body(strip_special_tokens(text))
    blocks = _fenced_blocks(body)
    for tag, code in reversed(blocks):
        if tag in _SQL_TAGS:
            sql = clean_sql(code)
            if sql:
                return sql
    for _tag, code in reversed(blocks):
        sql = clean_sql(code)
        if sql and _STATEMENT_START.match(sql):
            return sql
    # No usable fence: search the prose outside fences first, then everything.
    outside = _FENCE.sub("\n\n", body) if blocks else body
    return _from_raw_text(outside) or (_from_raw_text(body) if blocks else None)


def unanswerable_reason(text: str) -> str | None:
    """The reason given with an UNANSWERABLE marker in `text` ("" when none is given), or None."""
    match = _UNANSWERABLE.search(strip_special_tokens(text))
    if match is None:
        return None
    return match.group(1).strip().strip("`*").strip()


def parse_reply(text: str) -> Extraction:
    """The reply's SQL, or its unanswerable marker. A reply holding both a query and the marker counts
    as SQL (the model hedged but committed to a query); a marker alone makes it unanswerable."""
    reason = unanswerable_reason(text)
    cleaned = _UNANSWERABLE.sub("", strip_special_tokens(text)) if reason is not None else text
    sql = extract_sql(cleaned)
    if sql is not None:
        return Extraction(sql)
    if reason is not None:
        return Extraction(None, reason or "no reason given")
    return Extraction(None)
