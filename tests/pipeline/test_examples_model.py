"""Taught examples and notes change what the real embedded model writes (0.5B by default)."""

from __future__ import annotations

import pytest

import sqlwright

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_a_taught_example_is_retrieved_and_followed(real_llm, tmp_path) -> None:
    with sqlwright.connect("sample", llm=real_llm, state_dir=tmp_path / "state") as conn:
        greedy = {"candidates": 1, "repair_rounds": 0}
        before = conn.ask("Which customers are key accounts?", **greedy)
        assert "3, 7, 11" not in (before.sql or "")  # a convention no model can guess
        taught = conn.teach("Which customers count as key accounts?",
                            "SELECT name FROM customers WHERE customer_id IN (3, 7, 11)")
        conn.teach("How many orders are there?", "SELECT count(*) FROM orders")
        after = conn.ask("Which customers are key accounts?", **greedy)
        assert after.examples[-1].id == taught.id  # the nearest example sits next to the question
        assert after.examples[-1].similarity > after.examples[0].similarity
        assert "3, 7, 11" in after.sql.replace("(3,7,11)", "(3, 7, 11)")
        assert len(after.rows) == 3
        off = conn.ask("Which customers are key accounts?", examples=0, **greedy)
        assert off.examples == () and off.sql == before.sql


def test_a_note_is_shown_and_used(real_llm, tmp_path) -> None:
    with sqlwright.connect("sample", llm=real_llm, state_dir=tmp_path / "state") as conn:
        conn.add_note("A key account is a customer whose loyalty_tier is 'platinum'.")
        answer = conn.ask("List the names of the key accounts.", candidates=1, repair_rounds=0)
        assert [n.text for n in answer.notes] == ["A key account is a customer whose loyalty_tier is 'platinum'."]
        assert "platinum" in answer.sql.lower()
