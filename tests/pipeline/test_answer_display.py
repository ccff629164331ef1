"""An Answer in a notebook (`_repr_html_`) and as a DataFrame (`to_pandas`)."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from sqlwright.db import open_database
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import Answer, AskOptions, Engine
from sqlwright.pipeline.chart import chart_spec
from sqlwright.pipeline.notebook import HTML_ROWS

HOSTILE = '<script>alert("x")</script>'


class Tags(HTMLParser):
    """The tags and text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def test_html_escapes_the_question_sql_cells_summary_and_columns() -> None:
    rows = ((HOSTILE, 1), ("<img src=x onerror=alert(1)>", 2))
    answer = Answer(question=f"What about {HOSTILE}?", sql=f"SELECT '{HOSTILE}' AS \"<b>\"", columns=("<b>", "n"),
                    rows=rows, summary=f"It says {HOSTILE}.", chart=chart_spec(("<b>", "n"), rows).to_dict(),
                    timings={"total": 1.25}, confidence=1.0)
    html = answer._repr_html_()
    parsed = parse(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" in parsed.tags  # only our own <b>
    text = "".join(parsed.text)
    for shown in (f"What about {HOSTILE}?", f"It says {HOSTILE}.", "<img src=x onerror=alert(1)>", "<b>"):
        assert shown in text  # the text is intact, shown as text
    assert "<svg" in html and "confidence 1.00 · 1.2 s" in text


def test_html_shows_at_most_fifty_rows_and_says_so() -> None:
    rows = tuple((i, f"r{i}") for i in range(120))
    html = Answer(question="All?", sql="SELECT * FROM t", columns=("id", "v"), rows=rows)._repr_html_()
    assert html.count("<tr>") == HTML_ROWS + 1  # the header row and 50 rows
    assert ">r49<" in html and ">r50<" not in html
    assert f"showing {HTML_ROWS} of 120 rows" in html
    capped = Answer(question="All?", sql="SELECT * FROM t", columns=("id", "v"), rows=rows[:10], truncated=True)
    assert "the result was cut at 10 rows" in capped._repr_html_()
    small = Answer(question="Few?", sql="SELECT 1", columns=("id",), rows=((None,), (b"\x01",)))._repr_html_()
    assert "showing" not in small and "NULL" in small and ">01<" in small


def test_html_of_an_abstention_shows_the_reason() -> None:
    html = Answer(question="Salary?", sql=None, abstained=True, reason="no <salary> column")._repr_html_()
    assert "No answer:" in html and "no &lt;salary&gt; column" in html
    assert "<table>" not in html and "<pre>" not in html


def test_to_pandas_keeps_columns_and_types() -> None:
    rows = ((1, 2.5, "a", decimal.Decimal("1.10"), dt.datetime(2024, 1, 2, 3, 4), None),
            (2, 3.0, None, decimal.Decimal("2.20"), dt.datetime(2024, 1, 3), 7))
    frame = Answer(question="q", sql="s", columns=("id", "x", "name", "price", "at", "maybe"), rows=rows).to_pandas()
    assert list(frame.columns) == ["id", "x", "name", "price", "at", "maybe"] and len(frame) == 2
    assert frame["id"].dtype == "int64" and frame["x"].dtype == "float64"
    assert frame["price"].dtype == "float64" and frame["price"].tolist() == [1.1, 2.2]  # decimals as floats
    assert pd.api.types.is_datetime64_any_dtype(frame["at"])
    assert pd.api.types.is_string_dtype(frame["name"]) or frame["name"].dtype == object
    assert frame["maybe"].dtype == "float64" and frame["maybe"].isna().tolist() == [True, False]
    empty = Answer(question="q", sql="s", columns=("a", "b")).to_pandas()
    assert list(empty.columns) == ["a", "b"] and empty.empty
    assert Answer(question="q", sql=None, abstained=True).to_pandas().empty


def test_an_answer_from_the_pipeline_in_a_notebook(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE sale (day TEXT, amount REAL);"
                      "INSERT INTO sale VALUES ('2024-01-02', 5), ('2024-01-01', 3), ('2024-01-03', 4);")
    con.commit()
    con.close()
    llm = ScriptedLLM(["```sql\nSELECT day, sum(amount) AS total FROM sale GROUP BY day\n```"])
    with open_database(f"sqlite:///{path}") as db:
        answer = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(db, "Sales per day?")
    html = answer._repr_html_()
    assert "Sales per day?" in html and "GROUP BY day" in html and "<polyline" in html
    frame = answer.to_pandas()
    assert frame["total"].tolist() == [3.0, 5.0, 4.0] and frame["total"].dtype == "float64"
