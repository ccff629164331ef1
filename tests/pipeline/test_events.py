"""Progress events of `ask` (order, JSON-safe data, a failing callback) and cancelling a question."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import sqlite3
import uuid
from pathlib import Path

import pytest

from sqlwright.db import open_database
from sqlwright.errors import Cancelled, SqlwrightError
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.pipeline import AskOptions, Engine
from sqlwright.pipeline.events import EVENT_KINDS, json_safe


def fenced(sql: str) -> str:
    return f"```sql\n{sql}\n```"


@pytest.fixture()
def shop(tmp_path: Path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, picture BLOB);"
        "INSERT INTO item VALUES (1, 'pen', 1.5, x'00ff'), (2, 'book', 12.0, NULL), (3, 'lamp', 30.0, x'01');"
    )
    con.commit()
    con.close()
    with open_database(f"sqlite:///{path}") as db:
        yield db


def strict_json(data: object) -> str:
    return json.dumps(data, allow_nan=False)  # what a browser's JSON.parse accepts


def test_events_come_in_order_with_json_safe_data(shop, tmp_path: Path) -> None:
    # Greedy and the sample fail, so a repair runs; then the vote, the summary and the answer.
    llm = ScriptedLLM([fenced("SELECT nme FROM item"), fenced("SELECT nam FROM item"),
                       fenced("SELECT name, price, picture FROM item ORDER BY id"), "Three items are sold."])
    engine = Engine(llm, AskOptions(candidates=2, early_stop=False, values=False), cache_dir=tmp_path)
    events: list[tuple[str, dict]] = []
    answer = engine.ask(shop, "List the items.", summarize=True, on_event=lambda k, d: events.append((k, d)))
    kinds = [k for k, _ in events]
    assert kinds == ["schema", "examples", "candidate", "candidate", "repair", "vote", "summary", "answer"]
    assert [kinds.index(k) for k in dict.fromkeys(kinds)] == sorted(kinds.index(k) for k in dict.fromkeys(kinds))
    assert set(kinds) == set(EVENT_KINDS)
    data = dict(events)
    assert data["schema"]["tables"] == ["item"] and data["schema"]["tokens"] > 0
    assert data["examples"] == {"examples": [], "notes": []}
    greedy = events[2][1]
    assert greedy["origin"] == "greedy" and greedy["ok"] is False and "no such column" in greedy["error"]
    assert greedy["row_count"] is None and greedy["sql"] == "SELECT nme FROM item"
    assert data["repair"]["ok"] is True and data["repair"]["row_count"] == 3
    assert data["repair"]["origin"].startswith("repair-of-")
    assert data["vote"]["confidence"] == answer.confidence and data["vote"]["groups"] == [1]
    assert data["summary"] == {"summary": "Three items are sold."}
    # The answer event is the Answer's dict, made JSON-safe: the blob as hex.
    assert data["answer"]["sql"] == answer.sql and data["answer"]["summary"] == answer.summary
    assert data["answer"]["rows"][0] == ["pen", 1.5, "00ff"]
    assert answer.rows[0][2] == b"\x00\xff"  # the Answer itself keeps the database's values
    for kind, payload in events:
        assert isinstance(payload, dict), kind
        json.loads(strict_json(payload))


def test_json_safe_converts_what_json_cannot_hold() -> None:
    value = {"d": dt.date(2024, 5, 1), "t": dt.datetime(2024, 5, 1, 12, 30), "dec": decimal.Decimal("2.50"),
             "whole": decimal.Decimal("12"), "nan": float("nan"), "inf": float("-inf"), "b": b"\x01\x02",
             "u": uuid.UUID(int=1), "tuple": (1, (2, None)), "dur": dt.timedelta(minutes=1), 3: {"x"},
             "obj": object}
    safe = json_safe(value)
    strict_json(safe)
    assert safe["d"] == "2024-05-01" and safe["t"] == "2024-05-01T12:30:00"
    assert safe["dec"] == 2.5 and safe["whole"] == 12 and isinstance(safe["whole"], int)
    assert safe["nan"] == "NaN" and safe["inf"] == "-Infinity" and safe["b"] == "0102"
    assert safe["tuple"] == [1, [2, None]] and safe["dur"] == 60.0 and safe["3"] == ["x"]
    assert safe["u"] == "00000000-0000-0000-0000-000000000001" and safe["obj"] == str(object)


def test_a_failing_callback_does_not_cost_the_answer(shop, tmp_path: Path, caplog) -> None:
    calls: list[str] = []

    def broken(kind: str, data: dict) -> None:
        calls.append(kind)
        raise RuntimeError("the consumer has a bug")

    llm = ScriptedLLM([fenced("SELECT count(*) FROM item")])
    with caplog.at_level(logging.WARNING, logger="sqlwright.pipeline.events"):
        answer = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(shop, "How many items?", on_event=broken)
    assert answer.rows == ((3,),) and not answer.abstained
    assert calls == ["schema", "examples", "candidate", "vote", "answer"]  # called for each, despite failing
    failures = [r for r in caplog.records if "on_event callback failed" in r.getMessage()]
    assert len(failures) == len(calls) and "the consumer has a bug" in str(failures[0].exc_info[1])


def test_a_callback_that_raises_cancelled_stops_the_question(shop, tmp_path: Path) -> None:
    def stop_at_candidate(kind: str, data: dict) -> None:
        if kind == "candidate":
            raise Cancelled("client gone")

    llm = ScriptedLLM([fenced("SELECT count(*) FROM item")] * 3)
    with pytest.raises(Cancelled):
        Engine(llm, AskOptions(candidates=3, values=False), cache_dir=tmp_path).ask(
            shop, "How many items?", on_event=stop_at_candidate)
    assert len(llm.requests) == 1


# --- cancel ----------------------------------------------------------------------------------------
def test_cancel_before_any_model_work(shop, tmp_path: Path) -> None:
    llm = ScriptedLLM([fenced("SELECT 1")])
    with pytest.raises(Cancelled) as caught:
        Engine(llm, AskOptions.greedy(), cache_dir=tmp_path).ask(shop, "How many items?", cancel=lambda: True)
    assert isinstance(caught.value, SqlwrightError) and llm.requests == []


def test_cancel_is_polled_between_model_calls(shop, tmp_path: Path) -> None:
    # Three candidates that disagree would need two calls (greedy, then samples): the cancel after the first
    # call stops the question before the second.
    llm = ScriptedLLM([fenced("SELECT 1"), fenced("SELECT 2"), fenced("SELECT 3")])
    engine = Engine(llm, AskOptions(candidates=3, values=False, early_stop=False), cache_dir=tmp_path)
    with pytest.raises(Cancelled):
        engine.ask(shop, "How many items?", cancel=lambda: llm.remaining < 3)  # once the greedy reply is out
    assert len(llm.requests) == 1 and llm.remaining == 2


def test_cancel_reaches_the_backend_during_a_call(shop, tmp_path: Path) -> None:
    # The scripted model checks should_stop before each reply of a call: a cancel that comes after the first
    # reply of the samples' call stops it there.
    llm = ScriptedLLM([fenced("SELECT 1"), fenced("SELECT 2"), fenced("SELECT 3"), fenced("SELECT 4")])
    handed_out = []

    def cancel() -> bool:
        handed_out.append(llm.remaining)
        return llm.remaining <= 2  # the greedy reply and one sample were handed out

    engine = Engine(llm, AskOptions(candidates=4, values=False, early_stop=False), cache_dir=tmp_path)
    with pytest.raises(Cancelled):
        engine.ask(shop, "How many items?", cancel=cancel)
    assert len(llm.requests) == 2 and llm.requests[1]["n"] == 3 and llm.remaining == 2


def test_cancel_stops_repairs_and_the_summary(shop, tmp_path: Path) -> None:
    llm = ScriptedLLM([fenced("SELECT nme FROM item"), fenced("SELECT name FROM item")])
    engine = Engine(llm, AskOptions(candidates=1, values=False), cache_dir=tmp_path)
    with pytest.raises(Cancelled):
        engine.ask(shop, "List the items.", cancel=lambda: llm.remaining < 2)
    assert len(llm.requests) == 1 and llm.remaining == 1  # the failing greedy SQL was not sent to repair
    # Cancelled once the vote is in: the summary is not asked for.
    voted: list[bool] = []
    llm = ScriptedLLM([fenced("SELECT name FROM item"), "Pens, books and lamps."])
    engine = Engine(llm, AskOptions.greedy(), cache_dir=tmp_path)
    with pytest.raises(Cancelled):
        engine.ask(shop, "List the items.", summarize=True, cancel=lambda: bool(voted),
                   on_event=lambda kind, data: voted.append(True) if kind == "vote" else None)
    assert len(llm.requests) == 1 and llm.remaining == 1


def test_the_scripted_model_checks_should_stop_before_each_reply() -> None:
    llm = ScriptedLLM(["a", "b", "c"])
    polls = []

    def should_stop() -> bool:
        polls.append(llm.remaining)
        return len(polls) > 1

    with pytest.raises(Cancelled):
        llm.complete([{"role": "user", "content": "hi"}], n=3, should_stop=should_stop)
    assert polls == [3, 2] and llm.remaining == 2
    assert [c.text for c in llm.complete([{"role": "user", "content": "hi"}], n=2, should_stop=lambda: False)] == [
        "b", "c"]
