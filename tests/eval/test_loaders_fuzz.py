"""Fuzzing the dataset and predictions loaders: whatever bytes a file holds, loading it gives a dataset
of well-typed examples or raises a DatasetError with a one-line message, never another exception.

Inputs are random bytes, and valid files of every kind mutated at two levels: fields replaced by JSON of
the wrong type or dropped, then bytes cut, a BOM, invalid UTF-8, NULs, odd line ends, a huge line or a
deeply nested value spliced in. Examples are derandomized, so CI sees the same inputs every run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlwright.errors import DatasetError, SqlwrightError
from sqlwright.eval.datasets import load_dataset, read_predictions
from sqlwright.eval.types import Example, Prediction

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# A valid parsed `sql` of Spider's dev.json: SELECT count(*) FROM t.
PARSED_SQL = {
    "select": [False, [[3, [0, [0, "__all__", False], None]]]],
    "from": {"table_units": [["table_unit", 0]], "conds": []},
    "where": [], "groupBy": [], "having": [], "orderBy": [], "limit": None,
    "intersect": None, "union": None, "except": None,
}
SPIDER_RECORD = {"db_id": "shop", "question": "How many orders?", "query": "SELECT count(*) FROM t",
                 "sql": PARSED_SQL}
BIRD_RECORD = {"question_id": 0, "db_id": "shop", "question": "How many orders?", "evidence": "orders are rows",
               "SQL": "SELECT count(*) FROM t", "difficulty": "simple"}
CUSTOM_RECORD = {"id": "q1", "question": "How many orders?", "db": "shop.sqlite", "sql": "SELECT count(*) FROM t",
                 "evidence": "", "category": "count", "difficulty": "easy", "feasible": True}
SQLEVAL_ROW = {"question": "How many orders?", "query": "SELECT count(*) FROM t", "db_name": "shop",
               "query_category": "count", "instructions": ""}
PREDICTION_RECORD = {"id": "0", "sql": "SELECT 1", "seconds": 0.5, "prompt_tokens": 10, "completion_tokens": 3,
                     "error": None}

EXAMPLES = [Example(id=str(i), question=f"q{i}", db="shop", gold="SELECT 1", extra={"index": i}) for i in range(3)]

# --- strategies --------------------------------------------------------------------------------------
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
odd_text = st.sampled_from(["", " ", "\n", "\ufeff", "\u2028", "\x00", "a\tb", "é", "../../etc", "/", "x" * 300,
                            "shop/../shop", "SELECT 1;\nSELECT 2", "\r\n", "NaN", "1_0", " 1", "٣", "-1"])


@st.composite
def mutated_record(draw, valid: dict) -> dict:
    """`valid` with some fields given wrong-typed or odd values, some dropped, some added."""
    record = dict(valid)
    for key in list(record):
        choice = draw(st.integers(0, 15))
        if choice == 0:
            del record[key]
        elif choice == 1:
            record[key] = draw(json_values)
        elif choice == 2:
            record[key] = draw(odd_text)
    if draw(st.booleans()):
        record[draw(st.text(max_size=8))] = draw(json_values)
    return record


@st.composite
def mutated_parsed_sql(draw) -> object:
    """Spider's parsed `sql`, with one nested part replaced by random JSON."""
    parsed = json.loads(json.dumps(PARSED_SQL))
    key = draw(st.sampled_from(sorted(parsed)))
    parsed[key] = draw(json_values | st.just([[0, 9, [0, [0, 1, False], None], {"x": 1}, None], "or"]))
    return parsed if draw(st.integers(0, 4)) else draw(json_values)


def _mostly(draw, usual: st.SearchStrategy, odd: st.SearchStrategy, one_in: int = 8):
    """A value from `usual`, or one time in `one_in` from `odd` (Hypothesis's one_of has no weights)."""
    return draw(odd) if draw(st.integers(1, one_in)) == 1 else draw(usual)


@st.composite
def json_list(draw, record: st.SearchStrategy) -> bytes:
    value = _mostly(draw, st.lists(record, min_size=0, max_size=4), json_values)
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def json_lines(record: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    lines = st.lists(record | json_values, min_size=0, max_size=4)
    return lines.map(lambda values: "\n".join(json.dumps(v, ensure_ascii=False) for v in values)
                     .encode("utf-8", "surrogatepass"))


def csv_rows(row: st.SearchStrategy, delimiter: str = ",") -> st.SearchStrategy[bytes]:
    def render(rows: list[dict]) -> bytes:
        header = list(dict.fromkeys(k for r in rows for k in r)) or ["question"]
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter)
        writer.writerow(header)
        for r in rows:
            writer.writerow([r.get(k, "") if isinstance(r.get(k), str) else json.dumps(r.get(k)) for k in header])
        return buf.getvalue().encode("utf-8", "surrogatepass")

    return st.lists(row, max_size=4).map(render)


SPLICES = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"\x00", b"\r", b"\r\n", "\u2028".encode(), b'"', b",", b"\t",
           b"{", b"[", b"}", b"\n\n", b"x" * 200_000, b"[" * 50_000, b'{"a":' * 20_000, b"NaN", b"-Infinity",
           b"1e999999", b'"' + b"\\ud800" + b'"']


@st.composite
def mutated_bytes(draw, base: st.SearchStrategy[bytes]) -> bytes:
    """A file from `base`, then up to three byte-level changes: cut, splice in, or a BOM in front."""
    data = draw(base)
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        kind = draw(st.sampled_from(["cut", "splice", "bom"]))
        position = draw(st.integers(0, len(data)))
        if kind == "cut":
            data = data[:position]
        elif kind == "splice":
            data = data[:position] + draw(st.sampled_from(SPLICES)) + data[position:]
        else:
            data = b"\xef\xbb\xbf" + data
    return data


@st.composite
def file_bytes(draw, base: st.SearchStrategy[bytes]) -> bytes:
    return _mostly(draw, mutated_bytes(base), st.binary(max_size=400))


# --- checks --------------------------------------------------------------------------------------------
def _one_line(exc: SqlwrightError) -> None:
    assert isinstance(exc, DatasetError), f"{type(exc).__name__} rather than a DatasetError: {exc}"
    message = str(exc)
    assert message.strip() and len(message.splitlines()) == 1, f"not one line: {message!r}"


def _check_examples(dataset) -> None:
    for example in dataset.examples:
        assert isinstance(example.id, str) and isinstance(example.question, str)
        assert isinstance(example.db, str) and isinstance(example.gold, str)
        for optional in (example.evidence, example.category, example.difficulty):
            assert optional is None or isinstance(optional, str)


def _load(kind: str, path: Path, check_urls: bool = True, **kwargs) -> None:
    try:
        with load_dataset(kind, path, **kwargs) as dataset:
            _check_examples(dataset)
            if check_urls:
                for db_id in dataset.db_ids:
                    with contextlib.suppress(DatasetError):  # a missing database is a DatasetError, fine
                        assert isinstance(dataset.database_url(db_id), str)
    except SqlwrightError as exc:
        _one_line(exc)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """One folder per dataset kind, laid out as its loader expects; the fuzzed file is rewritten per example."""
    root = tmp_path_factory.mktemp("loaders_fuzz")
    spider = root / "spider"
    (spider / "database" / "shop").mkdir(parents=True)
    (spider / "database" / "shop" / "shop.sqlite").write_bytes(b"")
    (spider / "tables.json").write_bytes(b"\xff not read by the loader")
    bird = root / "bird"
    (bird / "dev_databases" / "shop").mkdir(parents=True)
    (bird / "dev_databases" / "shop" / "shop.sqlite").write_bytes(b"")
    sqleval = root / "sqleval"
    (sqleval / "questions").mkdir(parents=True)
    (sqleval / "databases" / "shop").mkdir(parents=True)
    (sqleval / "databases" / "shop" / "shop.sql").write_text("CREATE TABLE t (x integer);\n")
    custom = root / "custom"
    custom.mkdir()
    (custom / "shop.sqlite").write_bytes(b"")
    return {"spider": spider, "bird": bird, "sqleval": sqleval, "custom": custom, "root": root}


# --- the properties ----------------------------------------------------------------------------------
@FUZZ
@given(data=file_bytes(json_list(mutated_record(SPIDER_RECORD) | st.builds(
    lambda sql: {**SPIDER_RECORD, "sql": sql}, mutated_parsed_sql()))))
def test_spider_dev_json(folders, data):
    (folders["spider"] / "dev.json").write_bytes(data)
    _load("spider", folders["spider"])


@FUZZ
@given(data=file_bytes(json_list(mutated_record(BIRD_RECORD))))
def test_bird_json(folders, data):
    (folders["bird"] / "dev.json").write_bytes(data)
    _load("bird", folders["bird"])
    _load("bird", folders["bird"] / "dev.json", dialect="postgres")


@FUZZ
@given(data=file_bytes(csv_rows(mutated_record(SQLEVAL_ROW))))
def test_sqleval_csv(folders, data):
    (folders["sqleval"] / "questions" / "questions_gen_sqlite.csv").write_bytes(data)
    # database_url would build the database: loading is what is fuzzed here.
    _load("sqleval", folders["sqleval"], check_urls=False, dialect="sqlite")


@FUZZ
@given(data=file_bytes(json_lines(mutated_record(CUSTOM_RECORD))))
def test_custom_jsonl(folders, data):
    (folders["custom"] / "set.jsonl").write_bytes(data)
    _load("jsonl", folders["custom"] / "set.jsonl")


@FUZZ
@given(data=file_bytes(csv_rows(mutated_record(CUSTOM_RECORD))), suffix=st.sampled_from([".csv", ".tsv"]))
def test_custom_csv(folders, data, suffix):
    (folders["custom"] / f"set{suffix}").write_bytes(data)
    _load("csv", folders["custom"] / f"set{suffix}")


predictions_files = file_bytes(
    json_lines(mutated_record(PREDICTION_RECORD))  # JSONL
    | st.dictionaries(st.sampled_from(["0", "1", "2", "3", "-1", " 1", "1_0", "٣", "x", "0" * 30]),
                      st.sampled_from(["SELECT 1\t----- bird -----\tshop", None, 5, ""]) | json_values,
                      max_size=4).map(lambda d: json.dumps(d).encode())  # BIRD
    | st.lists(st.sampled_from(["SELECT 1", "SELECT 1\tshop", "", " ", "SELECT '\u2028'", "\x0c", "\x85"])
               | st.text(max_size=20), max_size=5).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))
)


@FUZZ
@given(data=predictions_files)
def test_predictions_file(folders, data):
    path = folders["root"] / "predictions.txt"
    path.write_bytes(data)
    try:
        predictions = read_predictions(path, EXAMPLES)
    except SqlwrightError as exc:
        _one_line(exc)
    else:
        assert set(predictions) <= {e.id for e in EXAMPLES}
        for prediction in predictions.values():
            assert isinstance(prediction, Prediction)
            assert prediction.sql is None or isinstance(prediction.sql, str)
            assert prediction.error is None or isinstance(prediction.error, str)
            assert prediction.prompt_tokens is None or type(prediction.prompt_tokens) is int
            assert prediction.seconds is None or isinstance(prediction.seconds, float)
