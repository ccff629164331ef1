"""Shared by the synthesis tests: a small SQLite database, and a fake model that plays every synthesis role
(SQL writer, question writer, pipeline answerer, chain-of-thought solver) from a fixed pool of pairs, the
same reply for the same item whatever the order it is asked in (so runs can be compared)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlwright.llm.base import Completion

SCHEMA = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER);
CREATE TABLE singer_in_concert (
  concert_id INTEGER NOT NULL REFERENCES concert (concert_id),
  singer_id INTEGER NOT NULL REFERENCES singer (singer_id),
  PRIMARY KEY (concert_id, singer_id)
);
CREATE TABLE nums (n INTEGER PRIMARY KEY);
INSERT INTO singer VALUES (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),
  (3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41), (5, 'John Nizinik', 'France', 43),
  (6, 'Tribal King', 'United States', 25);
INSERT INTO concert VALUES (1, 'Auditions', 2014), (2, 'Super bootcamp', 2014), (3, 'Home Visits', 2015);
INSERT INTO singer_in_concert VALUES (1, 2), (1, 3), (2, 5), (3, 1), (3, 2), (3, 4);
"""
NUMS = 1000  # nums x nums x nums is a product no engine finishes within a fraction of a second


def make_db(path: Path) -> Path:
    """The test database at `path` (created once)."""
    if not path.exists():
        con = sqlite3.connect(path)
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO nums VALUES (?)", [(i,) for i in range(NUMS)])
        con.commit()
        con.close()
    return path


@dataclass(frozen=True)
class Pair:
    sql: str  # what the fake writes when asked for a query
    question: str  # what it writes when asked for that query's question
    answer: str  # what it answers (as the pipeline, or in a chain of thought) when asked that question


POOL: tuple[Pair, ...] = (
    Pair("SELECT name FROM singer WHERE age > 40", "Which singers are older than 40?",
         "SELECT name FROM singer WHERE age > 40"),
    Pair("SELECT count(*) FROM singer WHERE country = 'France'", "How many singers come from France?",
         "SELECT count(*) FROM singer WHERE country = 'France'"),
    Pair("SELECT c.concert_name, count(*) FROM concert AS c JOIN singer_in_concert AS s "
         "ON s.concert_id = c.concert_id GROUP BY c.concert_name",
         "How many singers performed at each concert?",
         # the same answer, columns the other way round: Spider's rule accepts any column order
         "SELECT count(*), c.concert_name FROM concert AS c JOIN singer_in_concert AS s "
         "ON s.concert_id = c.concert_id GROUP BY c.concert_name"),
    Pair("SELECT name FROM singer WHERE age > 30 ORDER BY age DESC",
         "List the singers older than 30, oldest first.",
         "SELECT name FROM singer WHERE age > 30 ORDER BY age ASC"),  # wrong order: not verified
    Pair("SELECT name FROM singer WHERE age > 50", "Who is older than 50?",
         "SELECT name FROM singer WHERE age > 50"),  # the template of the first pair: a duplicate
    Pair("SELECT name FROM singer WHERE age > 500", "Which singers are older than 500?",
         "SELECT name FROM singer WHERE age > 500"),  # empty
    Pair("DELETE FROM singer", "Remove every singer.", "DELETE FROM singer"),  # refused
    Pair("SELECT nope FROM singer", "What is the nope of the singers?", "SELECT nope FROM singer"),  # error
    Pair("SELECT 1 FROM singer", "Give me a one for every singer.", "SELECT 1 FROM singer"),  # degenerate
    Pair("SELECT country, avg(age) FROM singer GROUP BY country HAVING count(*) > 1",
         "What is the average age in each country with more than one singer?",
         "-- UNANSWERABLE: I cannot tell"),  # the pipeline abstains
    Pair("SELECT concert_name FROM concert WHERE year = 2014", "Which concerts took place in 2014?",
         "SELECT concert_name FROM concert WHERE year = 2014"),
)


def _template(sql: str) -> str:
    from sqlwright.synth.sql import sql_template

    try:
        return sql_template(sql, "sqlite")
    except ValueError:
        return sql


class FakeModel:
    """Plays each synthesis role by recognising the prompt. `calls` records (kind, key) per call: the item's
    seed for SQL, explanations, questions and chains of thought, the question for the pipeline. With `hang_at`, the call
    of that number touches `marker` and never returns (a process to kill mid-run)."""

    name = "fake"
    supports_n = True
    supports_logprobs = False

    def __init__(self, pool: tuple[Pair, ...] = POOL, *, concurrent: bool = False, hang_at: int | None = None,
                 marker: Path | None = None, delay: float = 0.0) -> None:
        self.pool = pool
        self.supports_concurrency = concurrent
        self.hang_at, self.marker, self.delay = hang_at, marker, delay
        self.calls: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.by_template = {_template(p.sql): p for p in reversed(pool)}  # the first of a template wins

    def _pair_for_question(self, text: str) -> Pair | None:
        return next((p for p in self.pool if p.question in text), None)

    def _route(self, system: str, user: str, n: int, seed: int | None) -> tuple[str, object, list[str]]:
        if "realistic analysis queries" in system:
            pair = self.pool[(seed or 0) % len(self.pool)]
            return "sql", seed, [f"```sql\n{pair.sql}\n```"] * n
        if "explains queries" in system:
            sql = re.search(r"```sql\n(.*?)\n```", user, re.S).group(1)
            pair = next((p for p in self.pool if p.sql == sql), None) or self.by_template.get(_template(sql))
            number = self.pool.index(pair) if pair else -1
            return "explain", seed, [f"It returns the data of pair number {number}."] * n
        if "descriptions of data" in system:
            found = re.search(r"pair number (-?\d+)", user)
            number = int(found.group(1)) if found else -1
            question = self.pool[number].question if number >= 0 else "What does this return, please?"
            if "Multi-turn dialogue style" in user:
                question = f"User: I have a question.\nAssistant: Go ahead.\nUser: {question}"
            knowledge = "\nKnowledge: nothing special" if "'Knowledge: '" in user else ""
            return "question", seed, [question + knowledge] * n
        question = user.rsplit("Question:\n", 1)[-1]
        pair = self._pair_for_question(question)
        answer = pair.answer if pair else "-- UNANSWERABLE: unknown question"
        block = answer if answer.startswith("--") else f"```sql\n{answer}\n```"
        if "think step by step" in system:
            return "cot", seed, [f"First find the rows, then the columns.\n{block}"] * n
        return "ask", question, [block] * n

    def complete(self, messages, *, n: int = 1, temperature: float = 0.0, max_tokens: int = 512,
                 stop=None, seed: int | None = None, **_: object) -> list[Completion]:
        kind, key, replies = self._route(messages[0]["content"], messages[-1]["content"], n, seed)
        with self.lock:
            self.calls.append((kind, key))
            number = len(self.calls)
        if self.hang_at is not None and number >= self.hang_at:
            if self.marker is not None:
                self.marker.write_text(str(number))
            time.sleep(3600)
        if self.delay:
            time.sleep(self.delay)
        prompt = sum(len(m["content"]) for m in messages) // 4
        return [Completion(r, prompt, max(1, len(r) // 4), None, "stop", 0.0) for r in replies]

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)
