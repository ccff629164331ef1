"""Demonstrations at ask time: the stored examples nearest the question, and the notes people wrote.

DAIL-SQL-style: the k stored question–SQL pairs whose questions are most similar to the new one (cosine of
the bundled MiniLM embeddings; BM25 over question words when embeddings are unavailable) are shown to the
model after the schema, within a token budget; the most similar comes last, next to the question. Examples
people taught beat synthesized ones of equal similarity, and synthesized ones are shown only when verified.
Notes (business definitions) are retrieved the same way and shown as hints.

The schema block stays first, so the prompt prefix that backends keep (system message + schema) is the same
with and without demonstrations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sqlwright.pipeline.embeddings import Embedder, encode_cached

log = logging.getLogger(__name__)

TAUGHT = "taught"
SIMILARITY_DIGITS = 3  # similarities equal to this many digits are ties (taught examples win them)


class ExampleLike(Protocol):
    id: int
    question: str
    sql: str
    source: str
    verified: bool


class NoteLike(Protocol):
    id: int
    text: str


class ExampleStore(Protocol):
    """Where examples and notes are kept (sqlwright.store.StateStore)."""

    def examples(self, database: str, *, schema_fingerprint: str | None = None) -> Sequence[ExampleLike]: ...

    def notes(self, database: str, *, schema_fingerprint: str | None = None) -> Sequence[NoteLike]: ...


@dataclass(frozen=True)
class Demonstration:
    """A stored example shown to the model for one question."""

    id: int
    question: str
    sql: str
    source: str
    similarity: float

    def to_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "sql": self.sql, "source": self.source,
                "similarity": round(self.similarity, 4)}


@dataclass(frozen=True)
class NoteHint:
    """A note shown to the model for one question."""

    id: int
    text: str
    similarity: float

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "similarity": round(self.similarity, 4)}


def usable_examples(examples: Sequence[ExampleLike]) -> list[ExampleLike]:
    """Examples that may be shown: every taught one, and synthesized ones whose answer was verified."""
    return [e for e in examples if e.source == TAUGHT or e.verified]


def similarities(question: str, texts: Sequence[str], embedder: Embedder | None) -> np.ndarray:
    """Similarity of `question` to each of `texts`, in [0, 1]-ish: embedding cosine, or BM25 scaled by
    the best score when there is no embedder."""
    if not texts:
        return np.zeros(0, dtype=np.float32)
    if embedder is not None:
        vectors = encode_cached(embedder, list(texts))
        query = embedder.encode([question])[0]
        return np.asarray(vectors @ query, dtype=np.float32)
    return _bm25_similarities(question, texts)


def _bm25_similarities(question: str, texts: Sequence[str]) -> np.ndarray:
    import bm25s

    from sqlwright.pipeline.linking import tokenize

    docs = [tokenize(t) or ["_"] for t in texts]
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(docs, show_progress=False)
    known = [t for t in tokenize(question, query=True) if t in model.vocab_dict]
    if not known:
        return np.zeros(len(texts), dtype=np.float32)
    scores = np.asarray(model.get_scores(known), dtype=np.float32)
    top = float(scores.max())
    return scores / top if top > 0 else scores


def _ranked(scores: np.ndarray, taught: Sequence[bool]) -> list[int]:
    """Indexes by similarity, best first; taught items first among equal similarities; then oldest first."""
    return sorted(range(len(scores)),
                  key=lambda i: (-round(float(scores[i]), SIMILARITY_DIGITS), not taught[i], i))


def nearest_examples(question: str, examples: Sequence[ExampleLike], *, k: int, embedder: Embedder | None,
                     budget_tokens: int, count_tokens: Callable[[str], int],
                     min_similarity: float = 0.0) -> list[Demonstration]:
    """The `k` usable examples nearest `question` whose rendering fits in `budget_tokens`, in prompt order
    (least similar first, the nearest last). The same question asked twice is shown once (its best copy).
    Examples less similar than `min_similarity` are not shown: an example about something else can pull the
    model away from the question (bench/learn_lift.py measures it)."""
    pool = usable_examples(examples)
    if k <= 0 or not pool:
        return []
    scores = similarities(question, [e.question for e in pool], embedder)
    chosen: list[Demonstration] = []
    seen: set[tuple[str, str]] = set()
    used = 0
    for i in _ranked(scores, [e.source == TAUGHT for e in pool]):
        if float(scores[i]) < min_similarity:
            break  # ranked best first: the rest are further still
        example = pool[i]
        key = (example.question.strip().lower(), example.sql.strip())
        if key in seen:
            continue
        cost = count_tokens(render_demonstration(example.question, example.sql))
        if used + cost > budget_tokens:
            continue  # a shorter one further down may still fit
        seen.add(key)
        used += cost
        chosen.append(Demonstration(example.id, example.question.strip(), example.sql.strip(), example.source,
                                    float(scores[i])))
        if len(chosen) == k:
            break
    return chosen[::-1]


def nearest_notes(question: str, notes: Sequence[NoteLike], *, k: int, embedder: Embedder | None,
                  budget_tokens: int, count_tokens: Callable[[str], int]) -> list[NoteHint]:
    """The `k` notes nearest `question` that fit in `budget_tokens` (all of them when they are few)."""
    if k <= 0 or not notes:
        return []
    scores = similarities(question, [n.text for n in notes], embedder)
    chosen: list[NoteHint] = []
    used = 0
    for i in _ranked(scores, [True] * len(notes)):
        cost = count_tokens(notes[i].text) + 2
        if used + cost > budget_tokens:
            continue
        used += cost
        chosen.append(NoteHint(notes[i].id, notes[i].text.strip(), float(scores[i])))
        if len(chosen) == k:
            break
    return chosen


def render_demonstration(question: str, sql: str) -> str:
    """One example as the prompt shows it."""
    return f"Question: {question.strip()}\n```sql\n{sql.strip()}\n```"


def render_demonstrations(demonstrations: Sequence[Demonstration]) -> str:
    """The examples block of the prompt ('' when there are none)."""
    return "\n\n".join(render_demonstration(d.question, d.sql) for d in demonstrations)


def render_notes(notes: Sequence[NoteHint]) -> str:
    """The notes block of the prompt ('' when there are none)."""
    return "\n".join(f"- {' '.join(n.text.split())}" for n in notes)
