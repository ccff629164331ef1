"""Demonstrations at ask time: retrieval of stored examples and notes, and their place in the prompt."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sqlwright.db import open_database
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import Engine
from sqlwright.pipeline.examples import (
    nearest_examples,
    nearest_notes,
    render_demonstrations,
    similarities,
)
from sqlwright.pipeline.prompt import schema_block


@dataclass(frozen=True)
class Ex:
    id: int
    question: str
    sql: str
    source: str = "taught"
    verified: bool = True


@dataclass(frozen=True)
class N:
    id: int
    text: str


class WordEmbedder:
    """A deterministic embedder: bag of words over a fixed vocabulary, unit length."""

    name = "words"
    cache_dir = None

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def encode(self, texts):
        rows = []
        for text in texts:
            words = [w.strip("?.,").lower() for w in text.split()]
            for w in words:
                self.vocab.setdefault(w, len(self.vocab))
            rows.append(words)
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, words in enumerate(rows):
            for w in words:
                out[i, self.vocab[w] % 256] += 1
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


def count(text: str) -> int:
    return max(1, len(text) // 4)


POOL = [
    Ex(1, "How many singers are there?", "SELECT count(*) FROM singer"),
    Ex(2, "List the names of singers from France", "SELECT name FROM singer WHERE country = 'France'"),
    Ex(3, "How many concerts were held in 2014?", "SELECT count(*) FROM concert WHERE year = 2014"),
    Ex(4, "What is the average age of singers?", "SELECT avg(age) FROM singer"),
]


def test_nearest_examples_come_nearest_last_and_k_of_them() -> None:
    demos = nearest_examples("How many singers do we have?", POOL, k=2, embedder=WordEmbedder(),
                             budget_tokens=10_000, count_tokens=count)
    assert len(demos) == 2
    assert demos[-1].id == 1  # the nearest sits next to the question
    assert demos[-1].similarity >= demos[0].similarity


def test_examples_below_the_similarity_floor_are_not_shown() -> None:
    question = "How many singers do we have?"
    everything = nearest_examples(question, POOL, k=4, embedder=WordEmbedder(), budget_tokens=10_000,
                                  count_tokens=count)
    scores = sorted(d.similarity for d in everything)
    floor = (scores[-1] + scores[-2]) / 2  # between the nearest and the next
    demos = nearest_examples(question, POOL, k=4, embedder=WordEmbedder(), budget_tokens=10_000,
                             count_tokens=count, min_similarity=floor)
    assert [d.id for d in demos] == [1] and demos[0].similarity >= floor
    assert nearest_examples(question, POOL, k=4, embedder=WordEmbedder(), budget_tokens=10_000,
                            count_tokens=count, min_similarity=1.0) == []


def test_bm25_ranks_without_an_embedder() -> None:
    demos = nearest_examples("concerts held in 2015", POOL, k=1, embedder=None, budget_tokens=10_000,
                             count_tokens=count)
    assert [d.id for d in demos] == [3]
    assert similarities("zzz qqq", [e.question for e in POOL], None).tolist() == [0.0] * 4


def test_unverified_synthesized_examples_are_never_shown_but_taught_ones_are() -> None:
    pool = [Ex(1, "How many singers are there?", "SELECT 1", source="synthesized", verified=False),
            Ex(2, "How many singers are there now?", "SELECT 2", source="synthesized", verified=True),
            Ex(3, "How many singers exist?", "SELECT 3", source="taught", verified=False)]
    demos = nearest_examples("How many singers are there?", pool, k=5, embedder=WordEmbedder(),
                             budget_tokens=10_000, count_tokens=count)
    assert sorted(d.id for d in demos) == [2, 3]


def test_taught_examples_win_ties_and_duplicates_are_shown_once() -> None:
    pool = [Ex(1, "How many singers are there?", "SELECT count(*) FROM singer", source="synthesized"),
            Ex(2, "How many singers are there?", "SELECT count(*) FROM singer", source="taught"),
            Ex(3, "How many singers are there?", "SELECT count(singer_id) FROM singer", source="synthesized")]
    demos = nearest_examples("How many singers are there?", pool, k=3, embedder=WordEmbedder(),
                             budget_tokens=10_000, count_tokens=count)
    assert [d.id for d in demos][-1] == 2  # the taught copy, nearest (last), and the synthesized twin dropped
    assert sorted(d.id for d in demos) == [2, 3]


def test_the_token_budget_skips_what_does_not_fit_and_keeps_what_does() -> None:
    long_sql = "SELECT " + ", ".join(f"c{i}" for i in range(200)) + " FROM singer"
    pool = [Ex(1, "How many singers are there?", long_sql), Ex(2, "How many concerts are there?", "SELECT 1")]
    demos = nearest_examples("How many singers are there?", pool, k=2, embedder=WordEmbedder(),
                             budget_tokens=60, count_tokens=count)
    assert [d.id for d in demos] == [2]
    assert nearest_examples("x", pool, k=0, embedder=None, budget_tokens=60, count_tokens=count) == []


def test_notes_are_retrieved_by_similarity_within_budget() -> None:
    notes = [N(1, "An active customer ordered in the last 90 days."), N(2, "Revenue is quantity times price.")]
    hints = nearest_notes("Which customers are active?", notes, k=1, embedder=WordEmbedder(),
                          budget_tokens=100, count_tokens=count)
    assert [h.id for h in hints] == [1]
    assert nearest_notes("x", notes, k=5, embedder=None, budget_tokens=1, count_tokens=count) == []


@dataclass
class MemoryStore:
    """The examples store's read side, in memory (the real store is tested in tests/store)."""

    stored: list = field(default_factory=list)
    notes_: list = field(default_factory=list)
    calls: list = field(default_factory=list)

    def examples(self, database: str, *, schema_fingerprint: str | None = None):
        self.calls.append((database, schema_fingerprint))
        return self.stored

    def notes(self, database: str, *, schema_fingerprint: str | None = None):
        return self.notes_


@pytest.fixture()
def shop(tmp_path: Path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, vip INTEGER);"
                      "INSERT INTO customer VALUES (1, 'Ada', 1), (2, 'Bob', 0);")
    con.close()
    with open_database(f"sqlite:///{path}") as db:
        yield db


def test_engine_shows_examples_and_notes_after_the_schema_and_names_them(shop, monkeypatch) -> None:
    monkeypatch.setattr("sqlwright.pipeline.ask.load_default_embedder", lambda cache_dir=None: WordEmbedder())
    store = MemoryStore(stored=[Ex(7, "Who are our best customers?", "SELECT name FROM customer WHERE vip = 1"),
                                Ex(8, "How many customers?", "SELECT count(*) FROM customer")],
                        notes_=[N(3, "A best customer is one flagged vip.")])
    llm = ScriptedLLM(["```sql\nSELECT name FROM customer WHERE vip = 1\n```"])
    engine = Engine(llm, store=store)
    answer = engine.ask(shop, "Who are the best customers?", candidates=1, repair_rounds=0)
    assert answer.rows == (("Ada",),)
    user = llm.requests[0]["messages"][1]["content"]
    block = schema_block(engine._context(shop).text, dialect="sqlite")
    assert user.startswith(block)  # the shared prefix is untouched
    rest = user[len(block):]
    assert rest.index("Who are our best customers?") < rest.index("A best customer is one flagged vip.")
    assert rest.index("A best customer is one flagged vip.") < rest.index("Question:\nWho are the best customers?")
    assert [d.id for d in answer.examples][-1] == 7
    data = answer.to_dict()
    assert data["examples"][-1]["sql"] == "SELECT name FROM customer WHERE vip = 1"
    assert data["notes"] == [{"id": 3, "text": "A best customer is one flagged vip.", "similarity":
                              data["notes"][0]["similarity"]}]
    key, fingerprint = engine.identity(shop)
    assert store.calls == [(key, fingerprint)]
    assert "examples" in answer.timings


def test_examples_zero_or_no_store_leaves_the_prompt_as_before(shop, monkeypatch) -> None:
    def no_embedder(cache_dir=None):
        raise AssertionError("the embedding model must not load when nothing is shown")

    monkeypatch.setattr("sqlwright.pipeline.ask.load_default_embedder", no_embedder)
    reply = "```sql\nSELECT count(*) FROM customer\n```"
    plain = ScriptedLLM([reply])
    Engine(plain).ask(shop, "How many customers?", candidates=1, repair_rounds=0)
    off = ScriptedLLM([reply])
    store = MemoryStore(stored=[Ex(1, "How many customers?", "SELECT 2")])
    answer = Engine(off, store=store).ask(shop, "How many customers?", candidates=1, repair_rounds=0,
                                          examples=0, notes=0)
    assert off.requests[0]["messages"] == plain.requests[0]["messages"]
    assert answer.examples == ()
    empty = ScriptedLLM([reply])
    Engine(empty, store=MemoryStore()).ask(shop, "How many customers?", candidates=1, repair_rounds=0)
    assert empty.requests[0]["messages"] == plain.requests[0]["messages"]


def test_rendered_demonstrations_are_fenced_sql() -> None:
    demos = nearest_examples("How many singers?", POOL[:1], k=1, embedder=None, budget_tokens=100,
                             count_tokens=count)
    assert render_demonstrations(demos) == "Question: How many singers are there?\n```sql\nSELECT count(*) FROM singer\n```"
