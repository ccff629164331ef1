"""Dataset loading: Spider, BIRD and custom JSONL/CSV, on the real files and on small ones made here."""

from __future__ import annotations

import collections
import json
import sqlite3
import time

import pytest

from sqlwright.db import open_database
from sqlwright.errors import DatasetError
from sqlwright.eval.datasets import dataset_kinds, load_dataset


# --- registry ----------------------------------------------------------------------------------
def test_kinds_are_registered():
    assert {"spider", "bird", "sqleval", "jsonl"} <= set(dataset_kinds())


def test_unknown_kind_suggests_a_name(tmp_path):
    with pytest.raises(DatasetError, match="did you mean 'spider'"):
        load_dataset("spidr", tmp_path)


# --- Spider ------------------------------------------------------------------------------------
def test_spider_dev_loads_fast_with_stable_ids_and_hardness(data_dir):
    # This thread's CPU time: the figure depends neither on what else the machine runs nor on threads
    # earlier tests left behind in this process (a server's, torch's), which process_time would count.
    start = time.thread_time()
    dataset = load_dataset("spider", data_dir / "spider")
    assert time.thread_time() - start < 1.0
    assert dataset.kind == "spider" and dataset.comparison == "spider"
    assert len(dataset.examples) == 1034
    assert [e.id for e in dataset.examples] == [str(i) for i in range(1034)]
    counts = collections.Counter(e.difficulty for e in dataset.examples)
    assert counts == {"easy": 248, "medium": 446, "hard": 174, "extra": 166}
    first = dataset.examples[0]
    assert (first.db, first.gold) == ("concert_singer", "SELECT count(*) FROM singer")
    assert len(dataset.db_ids) == 20


def test_spider_accepts_the_dev_json_path_and_runs_gold(data_dir):
    dataset = load_dataset("spider", data_dir / "spider" / "dev.json")
    example = dataset.examples[0]
    with open_database(dataset.database_url(example.db)) as db:
        assert db.execute(example.gold).rows == ((6,),)


def test_spider_missing_database_is_reported(data_dir):
    dataset = load_dataset("spider", data_dir / "spider")
    with pytest.raises(DatasetError, match="Spider database 'nope' not found"):
        dataset.database_url("nope")


def test_spider_malformed_json_names_file_and_line(tmp_path):
    (tmp_path / "database").mkdir()
    (tmp_path / "dev.json").write_text('[\n{"db_id": "x",\n "question": oops}\n]')
    with pytest.raises(DatasetError, match=r"dev.json:3: malformed JSON"):
        load_dataset("spider", tmp_path)


def test_spider_missing_field(tmp_path):
    (tmp_path / "database").mkdir()
    (tmp_path / "dev.json").write_text(json.dumps([{"db_id": "x", "question": "q?"}]))
    with pytest.raises(DatasetError, match="question 0: missing field.*query"):
        load_dataset("spider", tmp_path)


def test_spider_without_databases_folder(tmp_path):
    (tmp_path / "dev.json").write_text("[]")
    with pytest.raises(DatasetError, match="databases folder not found"):
        load_dataset("spider", tmp_path)


# --- BIRD --------------------------------------------------------------------------------------
def _bird_fixture(tmp_path, db_root_name="dev_databases"):
    """A BIRD-shaped folder: dev.json and <root>/shop/shop.sqlite."""
    db_dir = tmp_path / db_root_name / "shop"
    db_dir.mkdir(parents=True)
    conn = sqlite3.connect(db_dir / "shop.sqlite")
    conn.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL);"
        "INSERT INTO items VALUES (1, 'pen', 1.5), (2, 'book', 12.0), (3, 'bag', 30.0);"
    )
    conn.commit()
    conn.close()
    records = [
        {"question_id": 7, "db_id": "shop", "question": "How many items?", "evidence": "",
         "SQL": "SELECT COUNT(*) FROM items", "difficulty": "simple"},
        {"question_id": 9, "db_id": "shop", "question": "Most expensive item?",
         "evidence": "most expensive refers to MAX(price)",
         "SQL": "SELECT name FROM items ORDER BY price DESC LIMIT 1", "difficulty": "moderate"},
    ]
    (tmp_path / "dev.json").write_text(json.dumps(records))
    return tmp_path / "dev.json"


def test_bird_loads_and_runs_gold_on_its_sqlite(tmp_path):
    dataset = load_dataset("bird", _bird_fixture(tmp_path))
    assert dataset.kind == "bird" and dataset.comparison == "bird"
    assert [e.id for e in dataset.examples] == ["7", "9"]
    assert dataset.examples[0].evidence is None
    assert dataset.examples[1].evidence == "most expensive refers to MAX(price)"
    assert dataset.examples[1].difficulty == "moderate"
    assert [e.extra["index"] for e in dataset.examples] == [0, 1]
    with open_database(dataset.database_url("shop")) as db:
        assert db.execute(dataset.examples[0].gold).rows == ((3,),)
        assert db.execute(dataset.examples[1].gold).rows == (("bag",),)


def test_bird_folder_and_db_root(tmp_path):
    _bird_fixture(tmp_path, db_root_name="elsewhere")
    dataset = load_dataset("bird", tmp_path, db_root=tmp_path / "elsewhere")
    assert dataset.database_url("shop").endswith("elsewhere/shop/shop.sqlite")
    default = load_dataset("bird", tmp_path)  # dev_databases/ beside the JSON: absent
    with pytest.raises(DatasetError, match="BIRD database 'shop' not found.*give --db-root"):
        default.database_url("shop")


def test_bird_duplicate_question_id(tmp_path):
    record = {"question_id": 1, "db_id": "a", "question": "q", "SQL": "SELECT 1"}
    (tmp_path / "dev.json").write_text(json.dumps([record, record]))
    with pytest.raises(DatasetError, match="question 1: duplicate question_id 1"):
        load_dataset("bird", tmp_path / "dev.json")


def test_bird_mini_dev_real_files(data_dir):
    folder = data_dir / "bird_mini_dev"
    sqlite_set = load_dataset("bird", folder / "mini_dev_sqlite.json")
    assert len(sqlite_set.examples) == 500
    counts = collections.Counter(e.difficulty for e in sqlite_set.examples)
    assert counts == {"simple": 148, "moderate": 250, "challenging": 102}
    assert len(sqlite_set.db_ids) == 11
    # No databases ship with mini-dev: asking for one says where it was looked for.
    with pytest.raises(DatasetError, match=r"BIRD database '\w+' not found: .*dev_databases"):
        sqlite_set.database_url(sqlite_set.examples[0].db)

    pg_set = load_dataset("bird", folder / "mini_dev_postgresql.json")
    assert pg_set.dialect == "postgres"
    assert {e.id for e in pg_set.examples} == {e.id for e in sqlite_set.examples}  # same ids, not same order
    assert pg_set.database_url("formula_1") == "postgresql://postgres@127.0.0.1:5432/BIRD"
    custom = load_dataset("bird", folder / "mini_dev_postgresql.json", db_url="postgresql://u@h:5433/bird")
    assert custom.database_url("x") == "postgresql://u@h:5433/bird"


# --- custom JSONL / CSV ------------------------------------------------------------------------
@pytest.fixture
def tiny_db(tmp_path):
    path = tmp_path / "dbs" / "tiny.sqlite"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);")
    conn.commit()
    conn.close()
    return path


def test_jsonl_with_relative_db_path(tmp_path, tiny_db):
    lines = [
        {"question": "How many rows?", "db": "dbs/tiny.sqlite", "sql": "SELECT COUNT(*) FROM t", "id": "a",
         "category": "count", "difficulty": "easy"},
        {"question": "Who won in 2090?", "db": f"sqlite:///{tiny_db}", "sql": None, "feasible": False},
        {"question": "Sum?", "db": "dbs/tiny.sqlite", "sql": "SELECT SUM(x) FROM t", "evidence": "sum of x"},
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    dataset = load_dataset("jsonl", path)
    assert dataset.kind == "jsonl" and dataset.name == "mine"
    assert [e.id for e in dataset.examples] == ["a", "1", "2"]
    assert dataset.examples[1].feasible is False and dataset.examples[1].gold == ""
    assert dataset.examples[2].evidence == "sum of x"
    with open_database(dataset.database_url("dbs/tiny.sqlite")) as db:
        assert db.execute(dataset.examples[0].gold).rows == ((3,),)
    assert dataset.database_url(f"sqlite:///{tiny_db}") == f"sqlite:///{tiny_db}"


def test_csv_custom_dataset(tmp_path, tiny_db):
    path = tmp_path / "mine.csv"
    path.write_text('question,db,sql,feasible\n"Max?",dbs/tiny.sqlite,SELECT MAX(x) FROM t,yes\n')
    dataset = load_dataset("csv", path)
    assert dataset.kind == "jsonl"
    with open_database(dataset.database_url(dataset.examples[0].db)) as db:
        assert db.execute(dataset.examples[0].gold).rows == ((3,),)


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"question": "q", "db": "a.sqlite", "sql": "SELECT 1"}\n{bad json}\n', r"mine.jsonl:2: malformed JSON"),
        ('{"question": "q", "sql": "SELECT 1"}\n', r"mine.jsonl:1: missing or empty field\(s\) db"),
        ('{"question": "q", "db": "a.sqlite", "sql": "SELECT 1", "feasible": "maybe"}\n', "'feasible' must be"),
        ('{"id": 1, "question": "q", "db": "a", "sql": "S"}\n{"id": 1, "question": "q", "db": "a", "sql": "S"}\n',
         r"mine.jsonl:2: duplicate id '1' \(first on line 1\)"),
        ("\n", "no questions"),
    ],
)
def test_malformed_jsonl(tmp_path, text, message):
    path = tmp_path / "mine.jsonl"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset("jsonl", path)


def test_custom_missing_database_file(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"question": "q", "db": "gone.sqlite", "sql": "SELECT 1"}\n')
    dataset = load_dataset("jsonl", path)
    with pytest.raises(DatasetError, match="database file 'gone.sqlite' not found"):
        dataset.database_url("gone.sqlite")


# --- malformed files: one DatasetError line, never another exception (found by test_loaders_fuzz) ------
SPIDER_OK = {"db_id": "shop", "question": "q?", "query": "SELECT 1"}
BIRD_OK = {"question_id": 1, "db_id": "shop", "question": "q?", "SQL": "SELECT 1"}


def _spider_folder(tmp_path, content: bytes):
    (tmp_path / "database" / "shop").mkdir(parents=True, exist_ok=True)
    (tmp_path / "dev.json").write_bytes(content)
    return tmp_path


def _one_line_dataset_error(match, load, *args, **kwargs):
    with pytest.raises(DatasetError, match=match) as info:
        load(*args, **kwargs)
    assert len(str(info.value).splitlines()) == 1
    return str(info.value)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"query": None}, "'query' must be text, not null"),
        ({"question": {"en": "q?"}}, "'question' must be text, not an object"),
        ({"db_id": 7}, "'db_id' must be text, not a number"),
        ({"sql": {"select": "x"}}, "malformed parsed 'sql'"),
    ],
)
def test_spider_fields_of_the_wrong_type(tmp_path, change, match):
    content = json.dumps([{**SPIDER_OK, **change}]).encode()
    _one_line_dataset_error(match, load_dataset, "spider", _spider_folder(tmp_path, content))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'[{"db_id": "x"},\n{"db_id": "\xff"}]', r"dev.json:2: Spider questions file is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_spider_unreadable_json(tmp_path, content, match):
    _one_line_dataset_error(match, load_dataset, "spider", _spider_folder(tmp_path, content))


def test_json_with_a_byte_order_mark_loads(tmp_path):
    dataset = load_dataset("spider", _spider_folder(tmp_path, b"\xef\xbb\xbf" + json.dumps([SPIDER_OK]).encode()))
    assert dataset.examples[0].question == "q?"


@pytest.mark.parametrize("db_id", ["../shop", "/etc/passwd", "a\nb", "..", "x" * 5000])
def test_database_ids_must_be_plain_names(tmp_path, db_id):
    dataset = load_dataset("spider", _spider_folder(tmp_path, json.dumps([SPIDER_OK]).encode()))
    _one_line_dataset_error("Spider database", dataset.database_url, db_id)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"SQL": None}, "'SQL' must be text, not null"),
        ({"evidence": ["a", "b"]}, "'evidence' must be text, not a list"),
        ({"difficulty": {"level": 1}}, "'difficulty' must be text, not an object"),
        ({"question_id": 1.5}, "'question_id' must be text or a whole number, not a number"),
        ({"question_id": True}, "'question_id' must be text or a whole number"),
    ],
)
def test_bird_fields_of_the_wrong_type(tmp_path, change, match):
    (tmp_path / "dev.json").write_text(json.dumps([{**BIRD_OK, **change}]))
    _one_line_dataset_error(match, load_dataset, "bird", tmp_path / "dev.json")


def test_unusable_dataset_paths(tmp_path):
    _one_line_dataset_error("no_such_user_sqlwright", load_dataset, "spider", "~no_such_user_sqlwright/spider")
    _one_line_dataset_error("File name too long", load_dataset, "bird", tmp_path / ("x" * 5000))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'{"question": "q", "db": "a.sqlite", "sql": "S"}\n{"question": "\xff"}\n', r"mine.jsonl:2: not UTF-8"),
        (b'{"question": {"q": 1}, "db": "a.sqlite", "sql": "S"}\n', "'question' must be text, not an object"),
        (b'{"question": "q", "db": "a.sqlite", "sql": ["S"]}\n', "'sql' must be text, not a list"),
        (b'{"question": "q", "db": "a.sqlite", "sql": "S", "id": [1]}\n', "'id' must be text"),
        (b"[" * 100_000 + b"\n", r"mine.jsonl:1: JSON nested too deeply"),
    ],
)
def test_jsonl_unreadable_lines(tmp_path, content, match):
    (tmp_path / "mine.jsonl").write_bytes(content)
    _one_line_dataset_error(match, load_dataset, "jsonl", tmp_path / "mine.jsonl")


def test_custom_files_with_a_byte_order_mark_load(tmp_path):
    (tmp_path / "mine.jsonl").write_bytes(b'\xef\xbb\xbf{"question": "q", "db": "a.sqlite", "sql": "S"}\n')
    assert load_dataset("jsonl", tmp_path / "mine.jsonl").examples[0].question == "q"
    (tmp_path / "mine.csv").write_bytes(b"\xef\xbb\xbfquestion,db,sql\nq,a.sqlite,S\n")
    assert load_dataset("csv", tmp_path / "mine.csv").examples[0].question == "q"


def test_csv_with_invalid_utf8(tmp_path):
    (tmp_path / "mine.csv").write_bytes(b"question,db,sql\nq,a.sqlite,S\nq\xff,a.sqlite,S\n")
    _one_line_dataset_error(r"mine.csv:3: not UTF-8", load_dataset, "csv", tmp_path / "mine.csv")


def test_custom_database_paths_the_system_refuses(tmp_path):
    (tmp_path / "mine.jsonl").write_text('{"question": "q", "db": "a.sqlite", "sql": "S"}\n')
    dataset = load_dataset("jsonl", tmp_path / "mine.jsonl")
    _one_line_dataset_error("no_such_user_sqlwright", dataset.database_url, "~no_such_user_sqlwright/x.sqlite")
    _one_line_dataset_error("File name too long", dataset.database_url, "x" * 5000 + ".sqlite")


def _sqleval_folder(tmp_path, questions: bytes):
    (tmp_path / "questions").mkdir()
    (tmp_path / "databases" / "shop").mkdir(parents=True)
    (tmp_path / "databases" / "shop" / "shop.sql").write_text("CREATE TABLE t (x integer);\n")
    (tmp_path / "questions" / "questions_gen_sqlite.csv").write_bytes(questions)
    return tmp_path


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"question,query,db_name\xff\n", r":1: not UTF-8"),
        (b'question,query,"db_name' + b"x" * 200_000 + b"\n", r":1: malformed CSV"),  # past csv's field limit
        (b"question,query,db_name\nq,SELECT 1,../shop\n", "SQL-Eval database id '../shop' is not a plain name"),
    ],
)
def test_sqleval_unreadable_questions(tmp_path, content, match):
    _one_line_dataset_error(match, load_dataset, "sqleval", _sqleval_folder(tmp_path, content), dialect="sqlite")


def test_sqleval_questions_with_a_byte_order_mark_load(tmp_path):
    folder = _sqleval_folder(tmp_path, b"\xef\xbb\xbfquestion,query,db_name\nq,SELECT 1,shop\n")
    assert load_dataset("sqleval", folder, dialect="sqlite").examples[0].db == "shop"
