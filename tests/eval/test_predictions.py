"""Reading other systems' predictions: Spider lines, BIRD JSON and JSONL."""

from __future__ import annotations

import json

import pytest

from sqlwright.errors import DatasetError
from sqlwright.eval.datasets import read_predictions
from sqlwright.eval.types import Example


@pytest.fixture
def examples():
    return [
        Example(id=str(i), question=f"q{i}", db="db", gold="SELECT 1", extra={"index": i}) for i in range(3)
    ]


def test_spider_lines_in_order(tmp_path, examples):
    path = tmp_path / "pred.sql"
    path.write_text("SELECT 1\tdb\n\nSELECT 3 \n")
    preds = read_predictions(path, examples)
    assert [preds[str(i)].sql for i in range(3)] == ["SELECT 1", None, "SELECT 3"]


def test_spider_wrong_line_count(tmp_path, examples):
    path = tmp_path / "pred.sql"
    path.write_text("SELECT 1\nSELECT 2\n")
    with pytest.raises(DatasetError, match="2 lines for 3 questions"):
        read_predictions(path, examples)


def test_bird_json_by_position(tmp_path, examples):
    path = tmp_path / "predict_dev.json"
    path.write_text(json.dumps({"0": "SELECT a\t----- bird -----\tdb", "2": "SELECT c\t----- bird -----\tdb"}))
    preds = read_predictions(path, examples)
    assert set(preds) == {"0", "2"}
    assert preds["2"].sql == "SELECT c"


def test_bird_json_maps_index_not_id(tmp_path):
    examples = [Example(id="1471", question="q", db="d", gold="S", extra={"index": 0})]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"0": "SELECT 9\t----- bird -----\td"}))
    assert read_predictions(path, examples)["1471"].sql == "SELECT 9"
    path.write_text(json.dumps({"5": "SELECT 9"}))
    with pytest.raises(DatasetError, match="key '5' is beyond"):
        read_predictions(path, examples)


def test_jsonl_with_abstention_and_timings(tmp_path, examples):
    path = tmp_path / "pred.jsonl"
    path.write_text(
        '{"id": "0", "sql": "SELECT 1", "seconds": 1.5, "prompt_tokens": 10, "completion_tokens": 3}\n'
        '{"id": 1, "sql": null}\n'
    )
    preds = read_predictions(path, examples)
    assert preds["0"].sql == "SELECT 1" and preds["0"].seconds == 1.5 and preds["0"].prompt_tokens == 10
    assert preds["1"].sql is None
    assert "2" not in preds


def test_single_line_jsonl_is_not_bird(tmp_path, examples):
    path = tmp_path / "pred.jsonl"
    path.write_text('{"id": "2", "sql": "SELECT 2"}')
    assert read_predictions(path, examples)["2"].sql == "SELECT 2"


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"id": "0", "sql": "S"}\n{oops}\n', r"pred.jsonl:2: malformed JSON"),
        ('{"id": "0", "sql": "S"}\n{"id": "9", "sql": "S"}\n', r"pred.jsonl:2: id '9' is not in the dataset"),
        ('{"id": "0", "sql": "S"}\n{"id": "0", "sql": "T"}\n', r"pred.jsonl:2: second prediction for id '0'"),
        ('{"id": "0", "sql": "S"}\n{"sql": "T"}\n', r"pred.jsonl:2: expected an object with 'id' and 'sql'"),
        ('{"id": "0", "sql": "S"}\n{"id": "1", "sql": 5}\n', r"pred.jsonl:2: 'sql' must be a string or null"),
        ('{"id": "0", "sql": "S", "seconds": "x"}\n{"id": "1", "sql": "S"}\n', r"pred.jsonl:1: 'seconds' must"),
    ],
)
def test_malformed_jsonl(tmp_path, examples, text, message):
    path = tmp_path / "pred.jsonl"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_predictions(path, examples)


def test_missing_file(tmp_path, examples):
    with pytest.raises(DatasetError, match="predictions file not found"):
        read_predictions(tmp_path / "nope.jsonl", examples)


def test_spider_dev_gold_as_predictions(data_dir):
    from sqlwright.eval.datasets import load_dataset

    dataset = load_dataset("spider", data_dir / "spider")
    preds = read_predictions(data_dir / "spider" / "dev_gold.sql", dataset.examples)
    assert len(preds) == 1034
    assert preds["0"].sql == "SELECT count(*) FROM singer"


# --- malformed files: one DatasetError line, never another exception (found by test_loaders_fuzz) ------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "0", "sql": "S", "prompt_tokens": NaN}\n', r"pred.jsonl:1: 'prompt_tokens' must be a number"),
        ('{"id": "0", "sql": "S", "completion_tokens": Infinity}\n', "'completion_tokens' must be a number"),
        ('{"id": "0", "sql": "S", "seconds": -Infinity}\n', "'seconds' must be a number"),
        ('{"id": "0", "sql": "S", "prompt_tokens": 1.5}\n', "'prompt_tokens' must be a whole number"),
        ('{"id": "0", "sql": "S", "error": {"code": 1}}\n', r"pred.jsonl:1: 'error' must be a string or null"),
        ('{"id": "0", "sql": "S"}\n' + "[" * 100_000 + "\n", r"pred.jsonl:2: JSON nested too deeply"),
        ('{"a":' * 100_000, "JSON nested too deeply"),
    ],
)
def test_malformed_jsonl_values(tmp_path, examples, text, message):
    path = tmp_path / "pred.jsonl"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as info:
        read_predictions(path, examples)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("key", ["1_0", " 1", "+1", "١", "-1", "0" * 5000])
def test_bird_keys_are_plain_digits(tmp_path, examples, key):
    path = tmp_path / "predict_dev.json"
    path.write_text(json.dumps({key: "SELECT 1\t----- bird -----\tdb"}))
    with pytest.raises(DatasetError, match="is not a question index"):
        read_predictions(path, examples)


def test_jsonl_with_a_byte_order_mark_is_still_jsonl(tmp_path, examples):
    # Read as text with the BOM kept, these three lines were taken for Spider's one-SQL-per-line format.
    path = tmp_path / "pred.jsonl"
    lines = [json.dumps({"id": str(i), "sql": f"SELECT {i}"}) for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    assert [read_predictions(path, examples)[str(i)].sql for i in range(3)] == ["SELECT 0", "SELECT 1", "SELECT 2"]


def test_spider_lines_split_at_line_ends_only(tmp_path, examples):
    # U+2028, form feed and NEL are line breaks to str.splitlines, but not to the official evaluator.
    path = tmp_path / "pred.sql"
    path.write_text("SELECT 'a\u2028b'\nSELECT '\x0c'\r\nSELECT '\x85'\n", newline="")
    preds = read_predictions(path, examples)
    assert [preds[str(i)].sql for i in range(3)] == ["SELECT 'a\u2028b'", "SELECT '\x0c'", "SELECT '\x85'"]


def test_invalid_utf8_names_its_line(tmp_path, examples):
    path = tmp_path / "pred.sql"
    path.write_bytes(b"SELECT 1\nSELECT 2\nSELECT '\xff'\n")
    with pytest.raises(DatasetError, match=r"pred.sql:3: not UTF-8 text"):
        read_predictions(path, examples)
