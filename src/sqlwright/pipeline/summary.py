"""An answer in words: one sentence the model writes over the first rows of the result (as TAG proposes).

Only the capped rows go into the prompt (`max_rows`, each cell cut short), so a large result costs the same
as a small one. The reply is plain text: code blocks, markup and control characters are removed, and only
its first sentence is kept. It is shown as text everywhere (escaped in HTML), never run or rendered.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from sqlwright.llm.base import LLM, Message, raise_if_stopped
from sqlwright.pipeline.generate import Usage
from sqlwright.store.jsonsafe import json_safe

SUMMARY_MAX_TOKENS = 96  # one sentence
SUMMARY_MAX_CHARS = 400  # a longer "sentence" is cut at a word
CELL_CHARS = 80  # of each cell, in the prompt

_SYSTEM = (
    "You answer a question about a database in one short, plain sentence, using only the result of the SQL query "
    "that answered it. State the figures or names the result holds; do not invent any. If the result is empty, "
    "say that nothing matched. Do not mention SQL, queries or tables. Reply with the sentence only: no lists, "
    "no markup, no code."
)
_FENCED = re.compile(r"```.*?(```|$)", re.S)
_TAG = re.compile(r"<[^>\n]{0,200}>")
_MARKUP = re.compile(r"[*`#]+|^\s*>+\s*|^\s*[-•]\s+", re.M)
_LABEL = re.compile(r"^\s*(answer|summary|sentence)\s*:\s*", re.I)
_SPACE_BEFORE_STOP = re.compile(r"\s+([.,;:!?])")  # left where a tag or markup was removed
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def _cell(value: object) -> str:
    text = "NULL" if value is None else str(json_safe(value))
    text = " ".join(text.split())
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[object]], *, max_rows: int = 20,
                truncated: bool = False) -> str:
    """The first `max_rows` rows as a small pipe-separated table, with a line saying when there are more."""
    shown = list(rows[: max(0, max_rows)])
    lines = [" | ".join(_cell(c) for c in columns)]
    lines += [" | ".join(_cell(v) for v in row) for row in shown]
    if not rows:
        lines.append("(no rows)")
    elif len(rows) > len(shown) or truncated:
        more = "more" if truncated else str(len(rows))
        lines.append(f"(the first {len(shown)} rows of {more})")
    return "\n".join(lines)


def summary_messages(question: str, sql: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *,
                     max_rows: int = 20, truncated: bool = False) -> list[Message]:
    """The chat messages asking for the one-sentence answer."""
    result = render_rows(columns, rows, max_rows=max_rows, truncated=truncated)
    user = f"Question:\n{question.strip()}\n\nSQL:\n{sql.strip()}\n\nResult:\n{result}\n\nThe answer in one sentence:"
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def clean_summary(text: str | None) -> str | None:
    """The reply as one plain sentence: code blocks, tags, markup and control characters removed, the first
    sentence kept, cut at SUMMARY_MAX_CHARS; None when nothing is left."""
    if not text:
        return None
    text = _FENCED.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _MARKUP.sub("", text)  # before the control characters go: its patterns anchor at line starts
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)
    text = _SPACE_BEFORE_STOP.sub(r"\1", " ".join(text.split()))
    text = _LABEL.sub("", text).strip().strip('"').strip()
    if not text:
        return None
    text = _SENTENCE_END.split(text, maxsplit=1)[0]
    if len(text) > SUMMARY_MAX_CHARS:
        text = text[:SUMMARY_MAX_CHARS].rsplit(" ", 1)[0] + "…"
    return text or None


def summarize(llm: LLM, question: str, sql: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *,
              max_rows: int = 20, truncated: bool = False, should_stop: Callable[[], bool] | None = None,
              usage: Usage | None = None) -> str | None:
    """One sentence in words answering `question` from the first `max_rows` of the result; None when the
    model's reply holds no text. `should_stop`: the cancel hook (Cancelled); `usage` counts the call's tokens."""
    raise_if_stopped(should_stop)
    extra = {} if should_stop is None else {"should_stop": should_stop}
    completions = llm.complete(summary_messages(question, sql, columns, rows, max_rows=max_rows, truncated=truncated),
                               n=1, temperature=0.0, max_tokens=SUMMARY_MAX_TOKENS, **extra)
    if usage is not None:
        usage.add(completions)
    return clean_summary(completions[0].text) if completions else None
