"""Value retrieval: the value index over real databases, its disk cache, and fuzzy matching."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from sqlwright.db import open_database
from sqlwright.pipeline.values import ValueIndex, ValueMatch, normalize_text, render_value_hints


@pytest.fixture(scope="module")
def world(spider_db, tmp_path_factory):
    """world_1 opened read-only, and its value index built in a temporary cache."""
    db = open_database(f"sqlite:///{spider_db('world_1')}")
    index = ValueIndex.for_database(db, tmp_path_factory.mktemp("cache"))
    yield db, index
    db.close()


def _has(matches: list[ValueMatch], table: str, column: str, value: str) -> bool:
    return any((m.table, m.column, m.value) == (table, column, value) for m in matches)


def test_normalize_text_folds_case_accents_and_punctuation():
    assert normalize_text("Côte d’Ivoire") == normalize_text("cote d'ivoire") == "cote d ivoire"
    assert normalize_text("  São-Tomé_and  Príncipe ") == "sao tome and principe"


def test_finds_stored_spellings(world):
    _, index = world
    assert _has(index.match("What is the population of cote d'ivoire?"), "country", "Name", "Côte d’Ivoire")
    assert _has(index.match("How many people live in the united states?"), "country", "Name", "United States")
    languages = index.match("Which countries speak both english and dutch?")
    assert _has(languages, "countrylanguage", "Language", "English")
    assert _has(languages, "countrylanguage", "Language", "Dutch")
    assert _has(index.match("What is the district of kabul?"), "city", "Name", "Kabul")


def test_fuzzy_spelling_mistakes(world):
    _, index = world
    typo = index.match("What is the life expectancy of Afganistan?")
    assert _has(typo, "country", "Name", "Afghanistan")
    best = typo[0]
    assert best.value == "Afghanistan" and 0.8 <= best.score < 1.0  # close, not exact
    exact = index.match("What is the life expectancy of Afghanistan?")[0]
    assert exact.value == "Afghanistan" and exact.score == 1.0


def test_words_that_only_ask_match_nothing(world):
    _, index = world
    assert index.match("How many are there in total?") == []
    assert index.match("") == []


def test_phrase_inside_a_short_value(world):
    _, index = world
    matches = index.match("Which countries have a federal republic government?")
    assert _has(matches, "country", "GovernmentForm", "Federal Republic")


def test_match_is_fast(world):
    _, index = world
    questions = [
        "What are the names of all the countries that became independent after 1950?",
        "How many official languages does Afghanistan have?",
        "What is the total population of the cities in the district of Gelderland?",
        "Which language is spoken by the largest number of countries in Asia and Europe?",
        "Give the name of the country in Oceania with the smallest surface area, and its head of state.",
    ] * 4
    started = time.perf_counter()
    for q in questions:
        index.match(q)
    assert (time.perf_counter() - started) / len(questions) < 0.1


def test_render_value_hints():
    matches = [
        ValueMatch("country", "Name", "Côte d’Ivoire", 1.0),
        ValueMatch("country", "Name", "Chad", 0.9),
        ValueMatch("singer", "name", "O'Neil", 1.0),
    ]
    assert render_value_hints(matches) == "country.Name: 'Côte d’Ivoire', 'Chad'\nsinger.name: 'O''Neil'"
    assert render_value_hints([]) == ""


def test_index_is_cached_on_disk_and_rebuilt_when_the_database_changes(spider_db, tmp_path, monkeypatch):
    path = tmp_path / "concert_singer.sqlite"
    shutil.copy(spider_db("concert_singer"), path)
    cache = tmp_path / "cache"
    db = open_database(f"sqlite:///{path}")
    first = ValueIndex.for_database(db, cache)
    files = list((cache / "values").glob("*.sqlite"))
    assert len(files) == 1 and len(first) > 0
    assert first.match("Which singers are from the netherlands?")[0].value == "Netherlands"

    # unchanged database: loaded from the file, the database is not queried again
    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although the database did not change")

    monkeypatch.setattr(ValueIndex, "build", classmethod(no_build))
    again = ValueIndex.for_database(db, cache)
    assert len(again) == len(first) and again.fingerprint == first.fingerprint
    monkeypatch.undo()
    db.close()

    with sqlite3.connect(path) as con:  # change the data: a new singer with a distinctive name
        con.execute("INSERT INTO singer (Singer_ID, Name, Country) VALUES (99, 'Zebulon Quaxley', 'Iceland')")
    con.close()
    db = open_database(f"sqlite:///{path}")
    assert db.fingerprint() != first.fingerprint
    rebuilt = ValueIndex.for_database(db, cache)
    db.close()
    assert rebuilt.fingerprint != first.fingerprint
    assert _has(rebuilt.match("What country is zebulon quaxley from?"), "singer", "Name", "Zebulon Quaxley")
    assert not first.match("What country is zebulon quaxley from?")
    assert [f.name for f in (cache / "values").glob("*.sqlite")] != [f.name for f in files]
    assert len(list((cache / "values").glob("*.sqlite"))) == 1  # the stale file was removed


def test_skips_long_texts_ids_and_numbers(tmp_path):
    path = tmp_path / "mixed.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, code TEXT, label TEXT, body TEXT, year TEXT)")
        con.executemany(
            "INSERT INTO item VALUES (?, ?, ?, ?, ?)",
            [(i, f"a7f3c9{i:04d}e1", f"Label {chr(65 + i % 26)}", "word " * 40 + str(i), str(1990 + i))
             for i in range(40)],
        )
    con.close()
    db = open_database(f"sqlite:///{path}")
    index = ValueIndex.build(db)
    db.close()
    columns = {e.column for e in index.entries}
    assert columns == {"label"}  # codes, long texts and digit-only years are not indexed
    assert _has(index.match("show label q"), "item", "label", "Label Q")


def test_bounded_per_column(tmp_path):
    path = tmp_path / "many.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE person (name TEXT)")
        con.executemany("INSERT INTO person VALUES (?)", [(f"Person {i} Smith",) for i in range(300)])
    con.close()
    db = open_database(f"sqlite:///{path}")
    index = ValueIndex.build(db, max_values_per_column=50)
    db.close()
    assert len(index) == 50


def test_every_dialect(opened, tmp_path):
    """The distinct-values queries run through the guard in each dialect; stored spellings come back."""
    index = ValueIndex.for_database(opened, tmp_path)
    assert _has(index.match("Which singers are from the united states?"), "singer", "country", "United States")
    assert _has(index.match("When did o'neil sing?"), "singer", "name", "O'Neil")
    assert _has(index.match("Which singers sang at super bootcamp?"), "concert", "concert_name", "Super bootcamp")
    assert not any(e.column == "payload" for e in index.entries)  # blobs are not text
    assert Path(tmp_path / "values").is_dir()
