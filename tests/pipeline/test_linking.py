"""Schema linking on real schemas: several Spider databases side by side, and databases made here."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys

import numpy as np
import pytest
import sqlglot
from sqlglot import exp

from sqlwright.db import Schema, open_database, render_schema
from sqlwright.pipeline import embeddings as emb
from sqlwright.pipeline.linking import estimate_tokens, identifier_words, link_schema, stem, tokenize
from sqlwright.pipeline.values import ValueIndex

SPIDER_DBS = ["world_1", "concert_singer", "pets_1", "car_1", "flight_2", "employee_hire_evaluation", "dog_kennels"]


@pytest.fixture(scope="module")
def merged(spider_db) -> Schema:
    """Seven Spider databases' real schemas as one (their table names do not collide)."""
    tables = []
    for name in SPIDER_DBS:
        db = open_database(f"sqlite:///{spider_db(name)}")
        tables.extend(db.schema().tables)
        db.close()
    assert len({t.name.lower() for t in tables}) == len(tables)
    return Schema("sqlite", tuple(tables), "merged")


@pytest.fixture(scope="module")
def dev_questions(data_dir) -> list[dict]:
    return json.loads((data_dir / "spider" / "dev.json").read_text())


def _gold_tables(sql: str) -> set[str]:
    return {t.name.lower() for t in sqlglot.parse_one(sql, read="sqlite").find_all(exp.Table)}


def test_identifier_words_and_tokens():
    assert identifier_words("HomeTown_ID") == ["home", "town", "id"]
    assert identifier_words("singer_in_concert") == ["singer", "in", "concert"]
    assert identifier_words("LName") == ["l", "name"]
    assert stem("countries") == "country" and stem("singers") == "singer" and stem("stopped") == "stop"
    assert tokenize("dept_no") == ["department", "number"]
    assert "highschooler" in tokenize("How many high schoolers are there?", query=True)


def test_whole_schema_when_it_fits(spider_db):
    db = open_database(f"sqlite:///{spider_db('concert_singer')}")
    schema = db.schema()
    db.close()
    result = link_schema(schema, "How many singers do we have?", budget_tokens=10_000, use_embeddings=False)
    assert result.pruned is False and result.schema is schema
    assert result.tables == [t.name for t in schema.tables]


def test_prunes_under_budget_and_keeps_gold_tables(merged):
    full = estimate_tokens(render_schema(merged))
    cases = {
        "Show the name and theme for all concerts and the number of singers in each concert.":
            {"concert", "singer_in_concert"},
        "What is the total population and maximum GNP in Asia?": {"country"},
        "Find the last name of the student who has a cat that is age 3.": {"student", "has_pet", "pets"},
        "How many flights depart from City Aberdeen?": {"flights", "airports"},
        "Which employee received the biggest bonus? Give me the employee name.": {"employee", "evaluation"},
        "What are the names of the dogs whose owners live in Virginia?": {"dogs", "owners"},
        "What is the name of the different car makers who produced a car in 1970?":
            {"car_makers", "model_list", "car_names", "cars_data"},
    }
    for question, gold in cases.items():
        result = link_schema(merged, question, budget_tokens=900, use_embeddings=False)
        assert result.pruned
        assert estimate_tokens(render_schema(result.schema)) <= 900 < full
        assert gold <= {t.lower() for t in result.tables}, (question, result.tables)
        assert {t.name for t in result.schema.tables} == set(result.tables)
        assert result.seconds < 1.0


def test_recall_on_dev_questions(merged, dev_questions):
    """Gold tables of the dev questions of these databases are kept at a budget of about a third of
    the merged schema (BM25 alone)."""
    questions = [q for q in dev_questions if q["db_id"] in SPIDER_DBS][::4]
    kept = total = 0
    for q in questions:
        gold = _gold_tables(q["query"])
        result = link_schema(merged, q["question"], budget_tokens=1200, use_embeddings=False)
        kept += len(gold & {t.lower() for t in result.tables})
        total += len(gold)
    assert len(questions) > 50
    assert kept / total >= 0.95


def test_smaller_budget_keeps_less(merged):
    question = "What are the names of the singers who performed in a concert in 2014?"
    wide = link_schema(merged, question, budget_tokens=2000, use_embeddings=False)
    narrow = link_schema(merged, question, budget_tokens=500, use_embeddings=False)
    assert len(narrow.tables) < len(wide.tables)
    assert estimate_tokens(render_schema(narrow.schema)) <= 500
    assert {"singer", "concert", "singer_in_concert"} <= set(narrow.tables)
    # primary and foreign key columns come with the chosen tables
    sic = narrow.schema.table("singer_in_concert")
    assert {c.name for c in sic.columns} == {"concert_ID", "Singer_ID"}
    assert narrow.schema.table("singer").column("Singer_ID") is not None
    assert narrow.scores["singer"] > 0


def test_custom_token_counter(merged):
    words = lambda text: len(text.split())  # noqa: E731
    result = link_schema(merged, "How many pets are older than 5?", budget_tokens=150, count_tokens=words,
                         use_embeddings=False)
    assert result.pruned and words(render_schema(result.schema)) <= 150
    assert "Pets" in result.tables


def _library_with_padding(path):
    """A library among 40 unrelated tables: author and book are joined through a chain of blandly
    named tables (author - xr_77 - qq_5 - zz_9 - book), whose names share no word with questions."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE author (author_id INTEGER PRIMARY KEY, full_name TEXT, born INTEGER)")
    con.execute("CREATE TABLE book (book_id INTEGER PRIMARY KEY, title TEXT, published INTEGER)")
    con.execute("CREATE TABLE qq_5 (q_id INTEGER PRIMARY KEY, flag TEXT)")
    con.execute("CREATE TABLE xr_77 (a_ref INTEGER REFERENCES author (author_id), "
                "q_ref INTEGER REFERENCES qq_5 (q_id), PRIMARY KEY (a_ref, q_ref))")
    con.execute("CREATE TABLE zz_9 (q_ref INTEGER REFERENCES qq_5 (q_id), "
                "b_ref INTEGER REFERENCES book (book_id), PRIMARY KEY (q_ref, b_ref))")
    topics = ["weather", "invoice", "vehicle", "satellite", "harbour", "vaccine", "tariff", "glacier"]
    for i in range(40):
        topic = topics[i % len(topics)]
        cols = ", ".join(f"{topic}_metric_{j} REAL" for j in range(6))
        con.execute(f"CREATE TABLE {topic}_log_{i} (entry_id INTEGER PRIMARY KEY, {cols}, note TEXT)")
    places = ["Lisbon", "Oslo", "Quito", "Zanzibar", "Hanoi", "Lima", "Dakar", "Perth", "Tromso", "Accra"]
    con.executemany("INSERT INTO harbour_log_4 (entry_id, note) VALUES (?, ?)", list(enumerate(places)))
    con.executemany("INSERT INTO author VALUES (?, ?, ?)", [(1, "Mary Shelley", 1797), (2, "Jules Verne", 1828)])
    con.commit()
    con.close()


def test_foreign_key_path_between_chosen_tables(tmp_path):
    path = tmp_path / "library.sqlite"
    _library_with_padding(path)
    db = open_database(f"sqlite:///{path}")
    schema = db.schema()
    db.close()
    question = "List the titles of books by each author born before 1800."
    result = link_schema(schema, question, budget_tokens=400, use_embeddings=False, max_hops=4)
    assert result.pruned and {"author", "book"} <= set(result.tables)
    # the whole join path is kept, with the key columns that make the joins expressible
    assert {"xr_77", "qq_5", "zz_9"} <= set(result.tables)
    assert {c.name for c in result.schema.table("xr_77").columns} == {"a_ref", "q_ref"}
    assert {fk.ref_table for fk in result.schema.table("zz_9").foreign_keys} == {"qq_5", "book"}
    # qq_5 is two joins from either end: nothing but the path search brings it in
    no_paths = link_schema(schema, question, budget_tokens=400, use_embeddings=False, max_hops=0)
    assert {"author", "book"} <= set(no_paths.tables) and "qq_5" not in no_paths.tables
    # nor does a path longer than max_hops
    short = link_schema(schema, question, budget_tokens=400, use_embeddings=False, max_hops=3)
    assert "qq_5" not in short.tables


def test_value_matches_boost_their_columns(tmp_path):
    path = tmp_path / "library.sqlite"
    _library_with_padding(path)
    db = open_database(f"sqlite:///{path}")
    schema = db.schema(samples=2)
    values = ValueIndex.for_database(db, tmp_path / "cache")
    db.close()
    question = "Which entries mention Zanzibar?"
    matches = values.match(question)
    assert matches and (matches[0].table, matches[0].column, matches[0].value) == ("harbour_log_4", "note", "Zanzibar")
    plain = link_schema(schema, question, budget_tokens=200, use_embeddings=False)
    boosted = link_schema(schema, question, budget_tokens=200, use_embeddings=False, value_matches=matches)
    assert boosted.tables[0] == "harbour_log_4"
    assert "note" in boosted.columns["harbour_log_4"]
    assert plain.tables[:1] != ["harbour_log_4"]


class _CountingEmbedder:
    """A deterministic stand-in that counts the texts it is asked to encode (for the cache logic)."""

    name = "counting-test-embedder"

    def __init__(self, cache_dir=None):
        self.cache_dir = cache_dir
        self.encoded = 0

    def encode(self, texts):
        self.encoded += len(texts)
        rng = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=16) for t in texts]
        vectors = np.asarray(rng, dtype=np.float32).reshape(len(texts), 16)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_schema_embeddings_cached_in_memory_and_on_disk(merged, tmp_path, monkeypatch):
    embedder = _CountingEmbedder(tmp_path)
    link_schema(merged, "How many dogs are there?", budget_tokens=600, embedder=embedder)
    n_schema_texts = len(merged.tables) + sum(len(t.columns) for t in merged.tables)
    assert embedder.encoded == n_schema_texts + 1  # schema once, then the question
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 2  # tables, columns
    link_schema(merged, "How many owners are there?", budget_tokens=600, embedder=embedder)
    assert embedder.encoded == n_schema_texts + 2  # only the new question
    monkeypatch.setattr(emb, "_MEMORY", emb.OrderedDict())  # a new process: memory empty, disk kept
    fresh = _CountingEmbedder(tmp_path)
    link_schema(merged, "How many breeds are there?", budget_tokens=600, embedder=fresh)
    assert fresh.encoded == 1


def test_bm25_alone_when_embeddings_are_missing(merged, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails as if not installed
    emb._default_embedder.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="sqlwright.pipeline.embeddings"):
            assert emb.load_default_embedder() is None
            result = link_schema(merged, "How many dogs are there?", budget_tokens=600)
        assert "BM25 only" in caplog.text
        assert "Dogs" in result.tables
    finally:
        emb._default_embedder.cache_clear()


@pytest.mark.slow
def test_minilm_embeddings_offline(merged, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = emb.SentenceTransformerEmbedder()
    vectors = embedder.encode(["nation", "country", "stadium"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    # no identifier says "nation" or "tongue": the embeddings carry the question to country/language
    question = "Which tongues are spoken in the nation with the most people?"
    result = link_schema(merged, question, budget_tokens=500, embedder=embedder)
    assert {"country", "countrylanguage"} <= set(result.tables)
    # the first call embedded the schema; later questions only embed themselves
    again = link_schema(merged, "What is the most common tongue among all nations?", budget_tokens=500,
                        embedder=embedder)
    assert "countrylanguage" in again.tables
    assert again.seconds < 1.0


_QUIET_SCRIPT = """
import sqlite3, sys
from sqlwright.cli.app import _main
_main(debug=False, verbose=False)  # the CLI's own logging set-up, as without --debug
from sqlwright.db import open_database
from sqlwright.pipeline.embeddings import load_default_embedder
from sqlwright.pipeline.linking import link_schema
path = sys.argv[1]
conn = sqlite3.connect(path)
for t in range(40):
    cols = ", ".join(f"c{j}_name TEXT" for j in range(10))
    conn.execute(f"CREATE TABLE t{t}_orders (id INTEGER PRIMARY KEY, {cols})")
conn.commit()
schema = open_database(path).schema()
assert load_default_embedder() is not None, "the bundled embedding model did not load"
linked = link_schema(schema, "How many orders are there?", budget_tokens=300)
assert linked.pruned
"""


def test_linking_prints_nothing_of_its_libraries_on_stderr(tmp_path):
    """bm25s sets its logger to DEBUG and transformers draws a "Loading weights" bar: neither may reach
    the user's terminal when they did not ask for --debug."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT, str(tmp_path / "wide.sqlite")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
