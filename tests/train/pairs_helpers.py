"""A small shop database, questions about it, and scripted model replies for the `train pairs` tests."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from sqlwright.llm.mock import ScriptedLLM

SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), amount REAL);
INSERT INTO customers VALUES (1, 'Ann', 'Paris'), (2, 'Bob', 'Lyon'), (3, 'Cy', 'Paris'), (4, 'Di', 'Nice');
INSERT INTO orders VALUES (1, 1, 10.0), (2, 1, 25.5), (3, 2, 7.0), (4, 3, 12.0), (5, 4, 3.0), (6, 4, 9.5);
"""

# (id, question, gold, evidence). "empty" returns no rows: no label, and no model call.
QUESTIONS = [
    ("count", "How many customers are there?", "SELECT count(*) FROM customers", None),
    ("paris", "Which customers live in Paris?", "SELECT name FROM customers WHERE city = 'Paris'",
     "Paris is a city"),
    ("empty", "Which customers live in Tokyo?", "SELECT name FROM customers WHERE city = 'Tokyo'", None),
    ("spend", "How much did each customer spend?",
     "SELECT c.name, sum(o.amount) FROM customers AS c JOIN orders AS o ON o.customer_id = c.id GROUP BY c.name",
     None),
]

# The k = 3 replies of the model for each question that is a label, in the order questions come.
REPLIES = {
    "count": [
        "```sql\nSELECT COUNT(*) FROM customers;\n```",  # right (another spelling)
        "```sql\nSELECT count(*) FROM orders\n```",  # runs, wrong result
        "```sql\nSELECT count(nope) FROM customers\n```",  # fails
    ],
    "paris": [
        "```sql\nSELECT name FROM customers WHERE city = 'Lyon'\n```",  # wrong
        "```sql\nSELECT name FROM customers WHERE city = 'Paris'\n```",  # right
        "-- UNANSWERABLE: no idea",  # abstains
    ],
    "spend": [
        # right under Spider's rule (any column order), wrong under BIRD's (column order matters)
        "```sql\nSELECT sum(o.amount), c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.id "
        "GROUP BY c.name\n```",
        "I cannot write SQL for that.",  # no SQL at all
        "```sql\nSELECT c.name, sum(o.amount) FROM customers AS c JOIN orders AS o ON o.customer_id = c.id "
        "GROUP BY c.name\n```",  # right everywhere
    ],
}

# A weak model's replies for SENSE (k = 3): mostly wrong.
WEAK_REPLIES = {
    "count": ["```sql\nSELECT count(*) FROM orders\n```", "```sql\nSELECT 4\n```",
              "```sql\nSELECT count(*) FROM customer\n```"],
    "paris": ["```sql\nSELECT name FROM customers\n```", "```sql\nSELECT city FROM customers\n```",
              "```sql\nSELECT name FROM customers WHERE city = 'Paris'\n```"],
    "spend": ["```sql\nSELECT name FROM customers\n```", "```sql\nSELECT sum(amount) FROM orders\n```",
              "```sql\nSELECT 1\n```"],
}

LABELLED = [q for q, *_ in QUESTIONS if q in REPLIES]


def make_db(path: Path) -> Path:
    if not path.exists():
        con = sqlite3.connect(path)
        con.executescript(SCHEMA)
        con.commit()
        con.close()
    return path


def write_jsonl_dataset(path: Path, db: Path, questions=QUESTIONS) -> Path:
    """The questions as an evaluation JSONL (kind jsonl: question, db, sql, evidence)."""
    lines = [json.dumps({"id": qid, "question": q, "db": str(db), "sql": gold, "evidence": ev,
                         "difficulty": "easy"}) for qid, q, gold, ev in questions]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_synth_dataset(path: Path, questions=QUESTIONS, *, database: str = "shop", verified: bool = True,
                        cot: str | None = None) -> Path:
    """The questions as a synthesis JSONL (synth/dataset.py's fields)."""
    lines = [json.dumps({"id": f"shop/simple/{i}", "database": database, "dialect": "sqlite", "question": q,
                         "evidence": ev, "style": "formal", "sql": gold, "complexity": "simple",
                         "result_hash": "x", "verified": verified, "reason": None, "cot": cot,
                         "provenance": {"model": "m"}}) for i, (_qid, q, gold, ev) in enumerate(questions)]
    path.write_text("\n".join(lines) + "\n")
    return path


def replies(table: dict[str, list[str]] = REPLIES) -> list[str]:
    return [r for qid in LABELLED for r in table[qid]]


class HangingLLM(ScriptedLLM):
    """A ScriptedLLM that, at its call number `hang_at` (1-based), touches `marker` and never returns."""

    def __init__(self, replies, *, hang_at: int, marker: Path) -> None:
        super().__init__(replies)
        self.hang_at = hang_at
        self.marker = marker

    def complete(self, messages, **kwargs):
        if len(self.requests) + 1 == self.hang_at:
            self.marker.touch()
            while True:
                time.sleep(1)
        return super().complete(messages, **kwargs)
