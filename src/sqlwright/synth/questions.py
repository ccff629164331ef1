"""Stage 2 of synthesis: each kept query back-translated into a question, explanation first (OmniSQL).

The model first explains the query (greedy), then writes the question in one of OmniSQL's nine styles
(chosen from the item's seed) from its explanation, k times at a temperature above zero; the candidate whose
embedding lies nearest the centroid of the k embeddings is kept (the one most like the others: OmniSQL's
pick). Without the bundled embedding model the first usable candidate is kept.

OmniSQL asks for the explanation and the question in one reply per candidate, with the query in view. Here
the explanation is one call and the k questions a second one that sees only the explanation: a 0.5B model
given both tasks at once mostly explains and never gets to the question, and shown the query it writes SQL
or a question about the SQL; the k candidates also no longer each pay for an explanation. Whether a
question still asks for what the query returns is what verification checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlwright.db.render import render_schema
from sqlwright.llm.base import LLM
from sqlwright.pipeline.embeddings import Embedder
from sqlwright.pipeline.generate import sqlglot_dialect
from sqlwright.synth.prompts import (
    STYLE_NAMES,
    clean_explanation,
    explanation_messages,
    get_style,
    parse_question_reply,
    question_messages,
)
from sqlwright.synth.sql import DatabaseContext, item_seed

DEFAULT_K = 3
DEFAULT_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 200  # per question (a dialogue is the longest)
EXPLANATION_MAX_TOKENS = 160


def choose_style(seed: int, database: str, level: str, index: int) -> str:
    """The style of an item's question, drawn from its seed (the same in every run)."""
    return STYLE_NAMES[item_seed(seed, database, level, index, "style") % len(STYLE_NAMES)]


def tables_of(sql: str, dialect: str) -> set[str]:
    """Lower-cased names of the tables `sql` reads (CTE names excluded); empty when it does not parse."""
    try:
        tree = sqlglot.parse_one(sql, read=sqlglot_dialect(dialect))
    except (SqlglotError, ValueError, RecursionError):
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


def question_schema_text(ctx: DatabaseContext, sql: str) -> str:
    """The schema rendering limited to the tables `sql` reads (all of it when none is recognised)."""
    used = tables_of(sql, ctx.dialect)
    known = [t.name for t in ctx.schema.tables if t.name.lower() in used or t.name.split(".")[-1].lower() in used]
    return render_schema(ctx.schema, tables=known) if known else ctx.schema_text


def nearest_to_centroid(vectors: np.ndarray) -> int:
    """The row of `vectors` (unit-length embeddings) with the highest cosine to their mean."""
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    if norm == 0.0:
        return 0
    return int(np.argmax(vectors @ (centroid / norm)))


@dataclass(frozen=True)
class QuestionResult:
    """The question chosen for one query, with the candidates it was chosen from."""

    style: str
    question: str | None  # None when no candidate was usable
    evidence: str | None = None  # the external knowledge of a vague or metaphorical question
    explanation: str | None = None  # the model's explanation of the query, before the chosen question
    candidates: tuple[str, ...] = ()  # the usable candidates' questions
    chosen: int | None = None  # index into candidates
    selection: str = "none"  # "centroid", "only" (one usable candidate), "first" (no embedder), "none"
    replies: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def reason(self) -> str | None:
        return None if self.question is not None else "no_question"


def synthesize_question(llm: LLM, ctx: DatabaseContext, sql: str, *, style: str, seed: int, k: int = DEFAULT_K,
                        embedder: Embedder | None = None, temperature: float = DEFAULT_TEMPERATURE,
                        max_tokens: int = DEFAULT_MAX_TOKENS) -> QuestionResult:
    """The model's explanation of `sql` (greedy), then k candidate questions in `style` given it (one call,
    n=k samples at `temperature`, seeded); the one nearest their embeddings' centroid kept."""
    spec = get_style(style)
    schema_text = question_schema_text(ctx, sql)
    start = time.perf_counter()
    [explained] = llm.complete(explanation_messages(dialect=ctx.dialect, schema_text=schema_text, sql=sql), n=1,
                               temperature=0.0, max_tokens=EXPLANATION_MAX_TOKENS, seed=seed)
    explanation = clean_explanation(explained.text)
    messages = question_messages(dialect=ctx.dialect, explanation=explanation, style=spec)
    completions = llm.complete(messages, n=k, temperature=temperature, max_tokens=max_tokens, seed=seed)
    seconds = time.perf_counter() - start
    replies = tuple(c.text for c in completions)
    usage = {"prompt_tokens": explained.prompt_tokens + max((c.prompt_tokens for c in completions), default=0),
             "completion_tokens": explained.completion_tokens + sum(c.completion_tokens for c in completions),
             "seconds": seconds}
    parsed = [p for p in (parse_question_reply(text, spec) for text in replies) if p is not None]
    if not parsed:
        return QuestionResult(style, None, explanation=explanation or None, replies=replies, **usage)
    texts = tuple(p.question for p in parsed)
    if len(parsed) == 1:
        chosen, selection = 0, "only"
    elif embedder is None:
        chosen, selection = 0, "first"
    else:
        chosen, selection = nearest_to_centroid(np.asarray(embedder.encode(list(texts)))), "centroid"
    best = parsed[chosen]
    return QuestionResult(style, best.question, best.evidence, explanation or None, texts, chosen, selection,
                          replies, **usage)
