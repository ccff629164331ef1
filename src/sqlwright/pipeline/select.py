"""Choose among executed candidates by voting on their execution results (self-consistency).

Candidates are grouped by a normalised form of their result:
- rows are compared as a multiset (order ignored) unless the SQL has a top-level ORDER BY and more
  than one row, in which case the row sequence is compared (so an ORDER BY candidate and one without
  never share a group when their row order could matter);
- column names are ignored, and so is column order (columns are put in a canonical order);
- floats are rounded to 6 decimals and integral floats equal integers (3.0 == 3); Decimal counts as
  float, dates and times as their ISO text.

The largest group wins. Ties: the higher mean token log-probability of the group's members, then the
simplest SQL (the shortest normalised text in the group). The group's representative is its simplest
SQL, then the most probable.

Who votes: a candidate that was repaired (some candidate has origin ``repair-of-<i>``) is replaced by
its repair and does not vote; every other candidate does, including failed ones and ones whose model
said "unanswerable". Confidence = winning group size / number of voters. Counting failures in the
denominator is deliberate: 1 success out of 4 tries is weak evidence, and abstention thresholds should
see it. Candidates not drawn because the vote was already decided (draw.py) count in the denominator too,
as votes against the winner: the confidence is then a lower bound of what drawing them would have given.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections import Counter
from dataclasses import dataclass, replace

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlwright.pipeline.generate import normalize_sql, sqlglot_dialect
from sqlwright.pipeline.types import Candidate

FLOAT_DECIMALS = 6
_REPAIR_ORIGIN = re.compile(r"^repair-of-(\d+)$")


def repaired_from(origin: str) -> int | None:
    """The index of the candidate a repair candidate was made from (origin ``repair-of-<i>``), or None."""
    match = _REPAIR_ORIGIN.match(origin)
    return int(match.group(1)) if match else None


def voters(candidates: list[Candidate] | tuple[Candidate, ...]) -> list[int]:
    """Indices of the candidates that vote: all except those superseded by a repair."""
    superseded = {p for c in candidates if (p := repaired_from(c.origin)) is not None}
    return [i for i in range(len(candidates)) if i not in superseded]


def has_top_level_order_by(sql: str, dialect: str) -> bool:
    """Whether the outermost query of `sql` orders its rows (ORDER BY inside subqueries or CTEs does
    not count). Unparsable SQL: a textual check for ORDER BY after the last closing parenthesis."""
    try:
        tree = sqlglot.parse_one(sql, read=sqlglot_dialect(dialect))
    except (SqlglotError, ValueError, RecursionError):  # RecursionError: nesting deeper than sqlglot parses
        tail = sql.rsplit(")", 1)[-1]
        return re.search(r"\border\s+by\b", tail, re.I) is not None
    return isinstance(tree, exp.Query) and tree.args.get("order") is not None


def normalize_value(value: object) -> object:
    """A cell in comparable form (see the module docstring)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return value
        rounded = round(value, FLOAT_DECIMALS)
        return int(rounded) if rounded.is_integer() else rounded
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


_TYPE_RANK = {type(None): 0, int: 1, float: 1, str: 2, bytes: 3}


def _sort_key(value: object) -> tuple:
    """Total order over normalised cells of mixed types (None < numbers < text < bytes < others)."""
    rank = _TYPE_RANK.get(type(value), 4)
    if rank == 0:
        return (0, 0)
    if rank == 4:
        return (4, repr(value))
    return (rank, value)


def result_key(candidate: Candidate, dialect: str) -> tuple | None:
    """The normalised execution result that groups `candidate`, or None when it did not execute."""
    if not candidate.ok or candidate.rows is None:
        return None
    rows = [tuple(normalize_value(v) for v in row) for row in candidate.rows]
    width = len(candidate.columns) if candidate.columns else (len(rows[0]) if rows else 0)
    ordered = len(rows) > 1 and has_top_level_order_by(candidate.sql, dialect)
    columns = [tuple(row[j] for row in rows) for j in range(width)]
    if ordered:
        columns.sort(key=lambda col: tuple(_sort_key(v) for v in col))
        canonical = tuple(zip(*columns, strict=True)) if columns else ()
    else:
        columns.sort(key=lambda col: tuple(sorted(_sort_key(v) for v in col)))
        canonical = tuple(sorted(zip(*columns, strict=True), key=lambda r: tuple(_sort_key(v) for v in r)))
    return (width, ordered, canonical)


@dataclass(frozen=True)
class Selection:
    """The vote: candidates with their group assigned, the winner's index and the confidence."""

    candidates: tuple[Candidate, ...]
    winner: int | None  # index into `candidates`; None when no voter executed
    confidence: float
    group_sizes: tuple[int, ...] = ()  # votes per group, group 0 (the winner) first
    voters: int = 0

    @property
    def chosen(self) -> Candidate | None:
        return None if self.winner is None else self.candidates[self.winner]


def _mean_logprob(members: list[Candidate]) -> float:
    values = [c.mean_logprob for c in members if c.mean_logprob is not None]
    return sum(values) / len(values) if values else -math.inf


def vote_by_result(candidates: list[Candidate] | tuple[Candidate, ...], dialect: str = "sqlite", *,
                   undrawn: int = 0) -> Selection:
    """Group executed voters by result; the largest group wins (see the module docstring). `undrawn`
    candidates were skipped by an early stop: they count in the confidence's denominator."""
    voting = voters(candidates)
    groups: dict[tuple, list[int]] = {}
    for i in voting:
        key = result_key(candidates[i], dialect)
        if key is not None:
            groups.setdefault(key, []).append(i)
    lengths = {i: len(normalize_sql(candidates[i].sql, dialect)) for members in groups.values() for i in members}

    def rank(members: list[int]) -> tuple:
        cands = [candidates[i] for i in members]
        return (-len(members), -_mean_logprob(cands), min(lengths[i] for i in members), members[0])

    ordered_groups = sorted(groups.values(), key=rank)
    group_of = {i: g for g, members in enumerate(ordered_groups) for i in members}
    out = tuple(replace(c, group=group_of.get(i)) for i, c in enumerate(candidates))
    if not ordered_groups:
        return Selection(out, None, 0.0, (), len(voting))
    best = ordered_groups[0]
    winner = min(best, key=lambda i: (lengths[i], -_mean_logprob([candidates[i]]), i))
    confidence = len(best) / (len(voting) + undrawn)
    return Selection(out, winner, confidence, tuple(len(m) for m in ordered_groups), len(voting))


def group_counts(candidates: list[Candidate] | tuple[Candidate, ...], dialect: str) -> Counter:
    """Votes per result key among the voters (used to tell whether repairs could change the vote)."""
    counts: Counter = Counter()
    for i in voters(candidates):
        key = result_key(candidates[i], dialect)
        if key is not None:
            counts[key] += 1
    return counts
