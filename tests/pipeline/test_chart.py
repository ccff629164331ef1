"""The chart chosen by code from a result's column types and shape, and its SVG drawing."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sqlwright.db import open_database
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine
from sqlwright.pipeline.chart import MAX_BARS, MAX_SERIES, ChartSpec, chart_spec, column_type, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def spec_dict(columns, rows, **kwargs) -> dict | None:
    spec = chart_spec(columns, rows, **kwargs)
    if spec is None:
        return None
    data = spec.to_dict()
    json.dumps(data, allow_nan=False)  # the spec is plain JSON: data inline, no code, no expressions
    return data


# --- no chart ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("columns", "rows"), [
    (("n",), [(5,)]),  # one cell
    (("country", "n"), [("France", 3)]),  # one row
    (("country", "n"), []),  # no rows
    (("n",), [(1,), (2,), (3,)]),  # one column of numbers
    (("name", "country"), [("Ann", "France"), ("Bob", "Japan")]),  # only text
    (("country", "n"), [(None, None), (None, None)]),  # nothing but NULLs
])
def test_no_chart_for_one_row_one_cell_or_nothing_to_measure(columns, rows) -> None:
    assert chart_spec(columns, rows) is None


def test_long_data_with_several_rows_per_category_gets_no_chart() -> None:
    rows = [("France", "2014", 3), ("France", "2015", 4), ("Japan", "2014", 1)]
    assert chart_spec(("country", "year", "n"), rows) is None  # years repeat: a series the spec cannot show
    assert chart_spec(("country", "n"), [("France", 3), ("France", 4)]) is None


# --- bar -----------------------------------------------------------------------------------------------
def test_category_and_number_is_a_bar_chart_in_the_results_order() -> None:
    rows = [("Netherlands", 3), ("France", 10), ("Japan", None)]
    spec = spec_dict(("country", "singers"), rows)
    assert spec == {"kind": "bar", "x": {"field": "country", "type": "nominal"},
                    "y": [{"field": "singers", "type": "quantitative"}],
                    "data": [["Netherlands", 3], ["France", 10], ["Japan", None]],
                    "truncated": False, "title": "singers by country"}


def test_more_than_fifty_bars_keep_the_top_fifty_flagged_truncated() -> None:
    rows = [(f"c{i:03d}", i) for i in range(120)]
    spec = spec_dict(("category", "amount"), rows)
    assert spec["kind"] == "bar" and spec["truncated"] is True
    assert len(spec["data"]) == MAX_BARS
    assert [d[1] for d in spec["data"]] == list(range(119, 119 - MAX_BARS, -1))  # the largest, descending


def test_ids_and_booleans_are_categories_and_number_columns_are_capped() -> None:
    assert spec_dict(("singer_id", "age"), [(1, 30), (2, 40)])["kind"] == "bar"
    assert spec_dict(("active", "n"), [(True, 3), (False, 4)])["x"]["type"] == "nominal"
    many = ("k", *(f"m{i}" for i in range(8)))
    spec = spec_dict(many, [("a", *range(8)), ("b", *range(8))])
    assert [f["field"] for f in spec["y"]] == [f"m{i}" for i in range(MAX_SERIES)]
    assert spec["data"][0] == ["a", 0, 1, 2, 3, 4]


def test_decimals_and_non_finite_numbers() -> None:
    rows = [("a", decimal.Decimal("2.50")), ("b", float("nan")), ("c", decimal.Decimal("7"))]
    assert spec_dict(("k", "v"), rows)["data"] == [["a", 2.5], ["b", None], ["c", 7.0]]


# --- line ----------------------------------------------------------------------------------------------
def test_iso_date_text_and_a_number_is_a_line_sorted_by_x() -> None:
    rows = [("2024-03-01", 5), ("2024-01-01", 3), ("2024-02-01T10:00:00Z", 4), (None, 9)]
    spec = spec_dict(("when", "orders"), rows)
    assert spec["kind"] == "line" and spec["x"] == {"field": "when", "type": "temporal"}
    assert spec["data"] == [["2024-01-01", 3], ["2024-02-01T10:00:00Z", 4], ["2024-03-01", 5]]


def test_date_objects_whole_years_and_year_text_are_temporal() -> None:
    spec = spec_dict(("day", "n"), [(dt.date(2024, 5, 2), 2), (dt.date(2024, 5, 1), 1)])
    assert spec["kind"] == "line" and spec["data"] == [["2024-05-01", 1], ["2024-05-02", 2]]
    spec = spec_dict(("year", "concerts"), [(2015, 1), (2014, 2)])
    assert spec["kind"] == "line" and spec["data"] == [[2014, 2], [2015, 1]]
    assert spec_dict(("order_year", "n"), [("2015", 1), ("2014", 2)])["kind"] == "line"
    # The same numbers under another name are measures: two numbers make points.
    assert spec_dict(("stadium_capacity", "concerts"), [(2015, 1), (2014, 2)])["kind"] == "point"
    assert column_type("created_at", ["2024-01-01 10:00", "2024-01-02 11:30:05.5"]) == "temporal"
    assert column_type("code", ["2024", "2025"]) == "nominal"  # four digits alone are not a date
    assert column_type("clock", [dt.time(10, 0), dt.time(11, 0)]) == "temporal"


def test_a_long_line_is_thinned_evenly_to_max_points() -> None:
    rows = [(dt.date(2020, 1, 1) + dt.timedelta(days=i), i) for i in range(1000)]
    spec = spec_dict(("day", "n"), rows, max_points=100)
    assert spec["truncated"] is True and len(spec["data"]) == 100
    assert spec["data"][0] == ["2020-01-01", 0] and spec["data"][-1][1] == 999
    assert [d[1] for d in spec["data"]] == sorted(d[1] for d in spec["data"])


def test_a_result_cut_at_its_row_cap_flags_the_chart() -> None:
    assert spec_dict(("k", "v"), [("a", 1), ("b", 2)], truncated=True)["truncated"] is True


# --- point ---------------------------------------------------------------------------------------------
def test_two_numbers_are_points() -> None:
    spec = spec_dict(("age", "salary", "bonus"), [(30, 100.0, 1), (40, 90.5, 2), (None, 1.0, 3)])
    assert spec["kind"] == "point" and spec["x"] == {"field": "age", "type": "quantitative"}
    assert [f["field"] for f in spec["y"]] == ["salary", "bonus"] and spec["title"] == "salary, bonus vs age"
    assert spec["data"] == [[30, 100.0, 1], [40, 90.5, 2]]  # a point without x cannot be placed


# --- drawing -------------------------------------------------------------------------------------------
def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def test_svg_escapes_every_text_from_the_data() -> None:
    hostile = '<script>alert("x")</script>'
    spec = chart_spec((f"{hostile} & co", "n"), [(hostile, 3), ("a\" onload=\"x", 4)])
    svg = render_svg(spec)
    assert "<script" not in svg and "&lt;script&gt;" in svg and 'onload="' not in svg
    root = _parse(svg)
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert any(label and hostile in label for label in labels)  # shown as text, intact
    assert not [e for e in root.iter() if e.tag in (f"{SVG}script", f"{SVG}foreignObject")]


@pytest.mark.parametrize(("columns", "rows", "mark"), [
    (("country", "a", "b"), [("France", 3, 1), ("Japan", -2, 5)], "rect"),
    (("day", "n"), [("2024-01-01", 3), ("2024-01-05", 4), ("2024-02-01", 1)], "polyline"),
    (("month", "n"), [("2024-01", 3), ("2024-02", 4)], "polyline"),
    (("x", "y"), [(1.5, 3), (2, 4), (2, 4)], "circle"),
])
def test_each_kind_draws_its_marks(columns, rows, mark) -> None:
    spec = chart_spec(columns, rows)
    assert spec is not None
    for form in (spec, spec.to_dict()):  # the spec or its dict, as Answer.chart holds it
        root = _parse(render_svg(form))
        assert list(root.iter(f"{SVG}{mark}"))


def test_svg_of_a_truncated_chart_says_so() -> None:
    spec = chart_spec(("k", "v"), [(f"c{i}", i) for i in range(60)])
    assert "part of the data" in render_svg(spec)


# --- in the pipeline -----------------------------------------------------------------------------------
def test_the_answer_carries_its_chart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE singer (name TEXT, country TEXT);"
                      "INSERT INTO singer VALUES ('a', 'France'), ('b', 'France'), ('c', 'Japan');")
    con.commit()
    con.close()
    llm = ScriptedLLM(["```sql\nSELECT country, count(*) AS singers FROM singer GROUP BY country\n```",
                       "```sql\nSELECT count(*) FROM singer\n```"])
    engine = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path)
    with open_database(f"sqlite:///{path}") as db:
        answer = engine.ask(db, "How many singers per country?")
        single = engine.ask(db, "How many singers?")
    assert answer.chart == ChartSpec.to_dict(chart_spec(answer.columns, answer.rows))
    assert answer.chart["kind"] == "bar" and answer.chart["data"] == [["France", 2], ["Japan", 1]]
    assert answer.to_dict()["chart"] == answer.chart
    assert single.chart is None and single.to_dict()["chart"] is None
