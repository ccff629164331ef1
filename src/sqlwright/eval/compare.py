"""Comparison rules: is a predicted execution result the same answer as the gold one?

Each benchmark defines "the same" differently; each rule here follows its owner's definition:

- ``spider``: Spider's test-suite execution match (taoyds/test-suite-sql-eval ``eval_exec_match`` and
  ``result_eq``): rows as multisets, any column permutation, equal column count, two empty results
  equal whatever their columns; row order matters when the gold text contains ``order by`` anywhere
  (the official test, subqueries and literals included). Before execution both queries are rewritten
  as the official script does (``> =`` joined, only the first statement kept and DISTINCT removed
  unless ``keep_distinct``, ``YEAR(CURDATE())`` replaced by 2020).
- ``bird``: BIRD's EX: ``set(pred_rows) == set(gold_rows)``; order and duplicates ignored, column order
  matters. Soft-F1 is BIRD mini-dev's cell-overlap F1 over de-duplicated rows.
- ``sqleval``: Defog SQL-Eval, as its code (``compare_query_results`` in defog-ai/sql-eval, with
  pandas >= 2.2) judges: the gold may hold ``;``-separated alternatives and one ``{a,b}`` column set per
  alternative (expanded into every non-empty subset); a prediction is right if, for any expansion, its
  values equal the gold's at once (numpy broadcasting included), or after normalising both (duplicate
  rows dropped, columns sorted by name, rows sorted: by all columns, or for ordered questions by what
  a regex reads in each query's ORDER BY), or if every gold column appears among the predicted columns
  with the same values (pandas' tolerance for floats, exact for integers). Defog's quirks are kept
  and named in the verdict's note where one decided it (see :func:`sqleval_judge`).
- ``sqleval-strict``: the same rule without the quirks (``--sqleval-strict``): rows tied on the gold's
  ORDER BY keys may come in any order, no broadcasting, repeated column names allowed (see
  :func:`sqleval_strict_match`).

Values are normalised once, in :func:`normalize_value`, before any rule sees them (and before gold
results are cached), so every rule compares the same plain Python values.

Rules are registered in a small registry (:data:`RULES`, :func:`register_rule`, :func:`get_rule`) and
dispatched by :func:`judge` and :func:`compare`; nothing else branches on rule names.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import difflib
import functools
import itertools
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from sqlwright.db.result import Result
from sqlwright.errors import ConfigError

# pandas' defaults for assert_series_equal / assert_frame_equal where they compare with a tolerance
# (``math.isclose(a, b, rel_tol=PANDAS_RTOL, abs_tol=PANDAS_ATOL)``).
PANDAS_RTOL = 1e-5
PANDAS_ATOL = 1e-8


# --- values ------------------------------------------------------------------------------------
def normalize_value(value: object) -> object:
    """One cell as a plain, hashable, JSON-safe Python value.

    Decimal becomes float (drivers disagree on NUMERIC), dates and times become their ``str()`` form
    (what SQLite stores them as), bytes and memoryviews become lower-case hex, UUIDs and anything else
    unusual become ``str``. None, bool, int, float and str pass unchanged.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, memoryview):
        return value.tobytes().hex()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, _dt.datetime | _dt.date | _dt.time | _dt.timedelta | uuid.UUID):
        return str(value)
    return str(value)


_PLAIN_TYPES = frozenset({type(None), bool, int, float, str})


def normalize_rows(rows: Sequence[Sequence[object]]) -> tuple[tuple, ...]:
    """Every cell of `rows` through :func:`normalize_value`."""
    if {type(v) for row in rows for v in row} <= _PLAIN_TYPES:  # e.g. any SQLite result without BLOBs
        return tuple(row if type(row) is tuple else tuple(row) for row in rows)
    return tuple(tuple(normalize_value(v) for v in row) for row in rows)


def normalize_result(result: Result) -> Result:
    """A copy of `result` whose cells are normalised (columns, flags and timing kept)."""
    return Result(
        columns=tuple(str(c) for c in result.columns),
        rows=normalize_rows(result.rows),
        truncated=result.truncated,
        seconds=result.seconds,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sort_key(value: object) -> tuple:
    """A total order over mixed cells: numbers, then strings, then other values, NULLs last
    (pandas' ``sort_values`` puts missing values last)."""
    if _is_missing(value):
        return (3, 0)
    if _is_number(value) or isinstance(value, bool):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, str(value))


def _row_key(row: Sequence[object]) -> tuple:
    return tuple(sort_key(v) for v in row)


# --- SQL facts -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def has_top_level_order_by(sql: str, dialect: str | None = None) -> bool:
    """Whether the outermost query of `sql` has an ORDER BY (ORDER BY inside subqueries, CTEs or
    window functions does not order the result). Falls back to a word search if sqlglot cannot parse."""
    if "order" not in sql.lower():  # no ORDER keyword at all: nothing to parse
        return False
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (ParseError, TokenError, ValueError, RecursionError):
        return re.search(r"\border\s+by\b", sql, re.IGNORECASE) is not None
    return isinstance(tree, exp.Query) and tree.args.get("order") is not None


_CURDATE_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


@functools.lru_cache(maxsize=8192)
def spider_prepare(sql: str, *, keep_distinct: bool = False) -> str:
    """Rewrite a query as Spider's test-suite evaluation (``eval_exec_match``) does before running it.

    Joins ``> =``, ``< =``, ``! =`` (``postprocess``); unless `keep_distinct` (the official flag, off
    by default) applies ``remove_distinct``, which tokenises with sqlparse, keeps only the *first*
    statement (``sqlparse.parse(s)[0]``: text after a top-level ``;`` is dropped, so a prediction
    holding two statements is judged on its first) and drops every DISTINCT token; and replaces
    ``YEAR(CURDATE())`` and the spaces after it by ``2020`` (``replace_cur_year``).
    """
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    if not keep_distinct:
        sql = _first_statement_without_distinct(sql)
    return _CURDATE_YEAR.sub("2020", sql)


def _first_statement_without_distinct(sql: str) -> str:
    if ";" not in sql and "distinct" not in sql.lower():
        return sql
    try:
        tokens = sqlglot.tokenize(sql, read="sqlite")
    except (TokenError, ValueError):
        return re.sub(r"\bdistinct\b", "", sql, flags=re.IGNORECASE)
    # Cut DISTINCT keyword tokens out of the text by position, so that string literals, quoted names
    # and comments stay intact, and stop after the first semicolon outside parentheses (kept, as
    # sqlparse's statement splitter does).
    out, pos, depth = [], 0, 0
    for tok in tokens:
        if tok.token_type is TokenType.DISTINCT:
            out.append(sql[pos : tok.start])
            pos = tok.end + 1
        elif tok.token_type is TokenType.L_PAREN:
            depth += 1
        elif tok.token_type is TokenType.R_PAREN:
            depth -= 1
        elif tok.token_type is TokenType.SEMICOLON and depth <= 0:
            out.append(sql[pos : tok.end + 1])
            return "".join(out)
    out.append(sql[pos:])
    return "".join(out)


# --- Spider ----------------------------------------------------------------------------------------
def _column(rows: Sequence[tuple], i: int) -> list:
    return [row[i] for row in rows]


def _official_cell_key(value: object) -> str:
    return str(value) + str(type(value))


def _unorder_row(row: tuple) -> tuple:
    return tuple(sorted(row, key=_official_cell_key))


def spider_quick_rej(gold_rows: Sequence[tuple], pred_rows: Sequence[tuple], order_matters: bool) -> bool:
    """The official ``quick_rej`` pre-check: each row's cells sorted by ``str(v) + str(type(v))``, then
    the lists of sorted rows equal (`order_matters`) or their sets equal.

    A necessary condition for a match, except that it keys cells by their text: ``1`` and ``1.0`` are
    equal values but sort differently among a row's other cells, so a row holding an int where the
    other result holds the equal float can be rejected here — and the official verdict is then 0.
    """
    g = [_unorder_row(row) for row in gold_rows]
    p = [_unorder_row(row) for row in pred_rows]
    return g == p if order_matters else set(g) == set(p)


def spider_match(gold: Result, pred: Result, order_matters: bool) -> bool:
    """Spider test-suite ``result_eq``: is there a column permutation of `pred` under which its rows
    equal `gold`'s as a multiset (as a list when `order_matters`)?

    Two empty results match whatever their columns; otherwise the row counts and column counts must be
    equal, and the official ``quick_rej`` must pass (see :func:`spider_quick_rej`). The search only
    tries pred column j for gold column i when their value multisets (value lists, when ordered) are
    equal, and prunes partial assignments by projected-row multisets: it finds a permutation exactly
    when the official enumeration does (whose row sampling for more than 3 columns only prunes
    permutations that cannot match), without enumerating them.
    """
    g_rows, p_rows = gold.rows, pred.rows
    if not g_rows and not p_rows:
        return True
    if len(g_rows) != len(p_rows):
        return False
    n = len(g_rows[0])
    if len(p_rows[0]) != n:
        return False
    if n == 0:
        return True
    if not _permutation_exists(g_rows, p_rows, n, order_matters):
        return False
    # Given a permutation, quick_rej can only fail when equal numbers of different types (1 and 1.0)
    # share rows with other cells: only then do the official text keys of equal cells differ.
    if n > 1 and _mixed_number_types(g_rows, p_rows):
        return spider_quick_rej(g_rows, p_rows, order_matters)
    return True


_NOT_NUMBERS = frozenset({str, bytes, type(None)})


def _mixed_number_types(*results: Sequence[tuple]) -> bool:
    types = {type(v) for rows in results for row in rows for v in row}
    return len(types - _NOT_NUMBERS) > 1


def _permutation_exists(g_rows: Sequence[tuple], p_rows: Sequence[tuple], n: int, order_matters: bool) -> bool:
    if order_matters:
        if list(g_rows) == list(p_rows):  # the columns in the gold's order: the usual case
            return True
        # Rows equal in order iff every gold column equals, as a list, a distinct pred column; equal
        # pred columns are interchangeable, so a greedy assignment is exact.
        free = list(range(n))
        for i in range(n):
            g_col = _column(g_rows, i)
            j = next((j for j in free if _column(p_rows, j) == g_col), None)
            if j is None:
                return False
            free.remove(j)
        return True
    if Counter(g_rows) == Counter(p_rows):
        return True
    g_counts = [Counter(_column(g_rows, i)) for i in range(n)]
    p_counts = [Counter(_column(p_rows, j)) for j in range(n)]
    options = [[j for j in range(n) if p_counts[j] == g_counts[i]] for i in range(n)]
    if any(not o for o in options):
        return False

    def search(i: int, perm: list[int]) -> bool:
        if i == n:
            return True
        for j in options[i]:
            if j in perm:
                continue
            cand = perm + [j]
            g_proj = Counter(tuple(row[k] for k in range(i + 1)) for row in g_rows)
            p_proj = Counter(tuple(row[k] for k in cand) for row in p_rows)
            if g_proj == p_proj and search(i + 1, cand):
                return True
        return False

    return search(0, [])


# --- BIRD ------------------------------------------------------------------------------------------
def bird_match(gold: Result, pred: Result) -> bool:
    """BIRD EX: the sets of row tuples are equal (order and duplicates ignored, column order matters)."""
    return set(gold.rows) == set(pred.rows)


def _row_overlap(pred_row: tuple, gold_row: tuple) -> tuple[float, float, float]:
    width = len(gold_row)
    if width == 0:
        return 0.0, 0.0, 0.0
    if pred_row == gold_row:  # every cell matched (the loops below would find the same)
        return 1.0, 0.0, 0.0
    matches = sum(1 for v in pred_row if v in gold_row)
    pred_only = len(pred_row) - matches
    gold_only = sum(1 for v in gold_row if v not in pred_row)
    return matches / width, pred_only / width, gold_only / width


def soft_f1(gold: Result, pred: Result) -> float:
    """BIRD mini-dev Soft-F1: rows de-duplicated (first occurrence kept), paired by position; within a
    pair, a predicted cell counts as matched when it occurs anywhere in the gold row; unpaired rows
    count fully as false positives or negatives. Both empty: 1.0."""
    if not gold.rows and not pred.rows:
        return 1.0
    g_rows = list(dict.fromkeys(gold.rows))
    p_rows = list(dict.fromkeys(pred.rows))
    tp = fp = fn = 0.0
    for i, g_row in enumerate(g_rows):
        if i >= len(p_rows):
            fn += 1
            continue
        match, pred_only, gold_only = _row_overlap(p_rows[i], g_row)
        tp, fp, fn = tp + match, fp + pred_only, fn + gold_only
    fp += max(0, len(p_rows) - len(g_rows))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


# --- Defog SQL-Eval --------------------------------------------------------------------------------
def expand_sqleval_gold(gold_sql: str) -> list[str]:
    """The queries a SQL-Eval gold stands for, as Defog's ``get_all_minimal_queries`` builds them.

    The text is split on ``;`` (alternatives); in each alternative the first ``{a,b,...}`` is replaced
    by every non-empty combination of its comma-separated items (in their order, joined by ``", "``),
    and a ``GROUP BY {}`` after it by ``GROUP BY`` the same combination.
    """
    queries: list[str] = []
    for part in gold_sql.split(";"):
        query = part.strip()
        if not query:
            continue
        start = query.find("{")
        end = query.find("}", start + 1) if start != -1 else -1
        if start == -1 or end == -1:
            queries.append(query)
            continue
        options = [o.strip() for o in query[start + 1 : end].split(",")]
        left, right = query[:start], query[end + 1 :]
        for r in range(1, len(options) + 1):
            for combo in itertools.combinations(options, r):
                columns = ", ".join(combo)
                queries.append(left + columns + right.replace("GROUP BY {}", f"GROUP BY {columns}"))
    return queries


_ORDER_WORDS = re.compile(r"\b(order|sort|arrange)\b", re.IGNORECASE)


def sqleval_ordered(question: str, category: str | None = None, gold_sql: str | None = None) -> bool:
    """Whether row order matters for a SQL-Eval question: its category is ``order_by`` or the question
    says order/sort/arrange (Defog's rule). Datasets without categories fall back to the gold SQL's
    top-level ORDER BY."""
    if category == "order_by" or _ORDER_WORDS.search(question or ""):
        return True
    if category is None and gold_sql:
        return has_top_level_order_by(gold_sql.split(";")[0].replace("{", "").replace("}", ""))
    return False


@dataclass(frozen=True)
class Judgement:
    """A rule's verdict on one prediction, with a note when something worth naming decided it (e.g.
    one of Defog SQL-Eval's quirks)."""

    correct: bool
    note: str | None = None


# Notes of the default SQL-Eval rule: where one of Defog's quirks, or an error in its code, decided.
NOTE_DESCENDING_DEFAULT = "defog-quirk: descending-default order"
NOTE_EMPTY_BROADCAST = "defog-quirk: empty vs one-row broadcast"
NOTE_BROADCAST = "defog-quirk: one-row or one-column broadcast"
NOTE_DUPLICATE_COLUMNS = "defog-error: duplicate column names"
NOTE_PERCENT = "defog-error: % outside a LIKE pattern"
SQLEVAL_NOTES = (NOTE_DESCENDING_DEFAULT, NOTE_EMPTY_BROADCAST, NOTE_BROADCAST, NOTE_DUPLICATE_COLUMNS, NOTE_PERCENT)

# What Defog's ``compare_df`` fills missing cells with before its final comparison.
_DEFOG_FILL = -99999
# The column kinds a result takes in pandas (``read_sql_query`` builds the frame with
# ``DataFrame.from_records(coerce_float=True)``): int64, bool, float64 (also for integers with NULLs
# and for NUMERIC's Decimals), and object for everything else (text, dates, all-NULL columns).
_INT, _BOOL, _FLOAT, _OBJECT = "int", "bool", "float", "object"
_EXACT_KINDS = frozenset({_INT, _BOOL})


def pandas_kind(values: Sequence[object]) -> str:
    """The pandas dtype (as one of int/bool/float/object) of a result column holding `values`."""
    present = [v for v in values if not _is_missing(v)]
    if not present:
        return _FLOAT if any(isinstance(v, float) for v in values) else _OBJECT
    if all(type(v) is bool for v in present):
        return _BOOL if len(present) == len(values) else _OBJECT
    if all(_is_number(v) for v in present):
        whole = len(present) == len(values) and all(isinstance(v, int) for v in present)
        return _INT if whole else _FLOAT
    return _OBJECT


def pandas_close(actual: object, expected: object) -> bool:
    """pandas' ``assert_almost_equal`` on two cells with its default tolerance: missing equals missing
    (NULL, NaN), text compares exactly, numbers by ``math.isclose(rel_tol=1e-5, abs_tol=1e-8)``."""
    if _is_missing(actual) or _is_missing(expected):
        return _is_missing(actual) and _is_missing(expected)
    if isinstance(actual, str) or isinstance(expected, str) or actual == expected:
        return actual == expected
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return math.isclose(actual, expected, rel_tol=PANDAS_RTOL, abs_tol=PANDAS_ATOL)
    return False


def _exactly_equal(actual: object, expected: object) -> bool:
    """numpy's ``array_equivalent`` on two cells (pandas' exact comparison of integer columns)."""
    if _is_missing(actual) or _is_missing(expected):
        return _is_missing(actual) and _is_missing(expected)
    return actual == expected


def strict_values_close(actual: object, expected: object) -> bool:
    """The strict rule's cell equality: NULL equals NULL, integers (on either side) compare exactly,
    two floats within pandas' default tolerance (floating-point arithmetic is not exact), anything else
    by equality."""
    if _is_missing(actual) or _is_missing(expected):
        return _is_missing(actual) and _is_missing(expected)
    if isinstance(actual, float) and isinstance(expected, float):
        return math.isclose(actual, expected, rel_tol=PANDAS_RTOL, abs_tol=PANDAS_ATOL)
    return actual == expected


@dataclass(frozen=True)
class _Frame:
    """A result as the pandas frame Defog's code sees: column names (duplicates allowed), one pandas
    kind per column, rows."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    rows: tuple[tuple, ...]

    @classmethod
    def of(cls, result: Result) -> _Frame:
        width = len(result.columns)
        kinds = tuple(pandas_kind(_column(result.rows, i)) if result.rows else _OBJECT for i in range(width))
        return cls(tuple(result.columns), kinds, tuple(result.rows))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.columns)

    def take(self, indexes: Sequence[int], rows: Sequence[tuple] | None = None) -> _Frame:
        rows = self.rows if rows is None else rows
        return _Frame(tuple(self.columns[i] for i in indexes), tuple(self.kinds[i] for i in indexes),
                      tuple(tuple(row[i] for i in indexes) for row in rows))

    def renamed(self, columns: Sequence[str]) -> _Frame:
        return _Frame(tuple(columns), self.kinds, self.rows)


class _DefogError(Exception):
    """What Defog's code raises on a result (its runner then counts the prediction wrong)."""


@dataclass
class _DefogRun:
    """How to run the emulation (the quirks can be switched off to see whether one decided a verdict)
    and what happened on the way."""

    descending_default: bool = True  # False: an ORDER BY without ASC/DESC read for its real direction
    broadcast: bool = True  # False: the first comparison only between results of the same shape
    used_default_direction: bool = False
    broadcast_note: str | None = None


def deduplicate_names(columns: Sequence[str]) -> tuple[str, ...]:
    """Defog's renaming of repeated column names: every occurrence of a repeated name becomes
    ``<name>_<position>``."""
    counts = Counter(columns)
    return tuple(f"{c}_{i}" if counts[c] > 1 else c for i, c in enumerate(columns))


# Defog's ``normalize_table`` finds the ORDER BY of a query with these two expressions: from the first
# "ORDER BY" (any case, one space) the text up to the first ';', ',', ')' or the end (a newline first
# stops it: the match fails there); the words of that text are read as column names and a direction.
_DEFOG_ORDER_CLAUSE = re.compile(r"ORDER BY[\s\S]*", re.IGNORECASE)
_DEFOG_ORDER_SEGMENT = re.compile(r"(?<=ORDER BY)(.*?)(?=;|,|\)|$)", re.IGNORECASE)
_DEFOG_NOT_COLUMNS = frozenset({"desc", "asc", "nulls", "last", "first", "limit"})


@dataclass(frozen=True)
class DefogOrderBy:
    """What Defog's regular expressions read in a query's first ORDER BY."""

    columns: tuple[str, ...]  # words taken for column names (only those in the result are used)
    ascending: bool | None  # None: neither ASC nor DESC seen (Defog then sorts descending)
    real_ascending: bool  # the direction of the first ORDER BY key as SQL defines it


def defog_order_by(sql: str) -> DefogOrderBy | None:
    """The ORDER BY that Defog's ``normalize_table`` reads in `sql`; None when its text has none."""
    clause = _DEFOG_ORDER_CLAUSE.search(sql)
    if clause is None:
        return None
    segments = _DEFOG_ORDER_SEGMENT.findall(clause.group(0))
    words = [w.strip().rsplit(".", 1)[-1] for w in (segments[0].split() if segments else [])]
    upper = {w.upper() for w in words}
    ascending = False if "DESC" in upper else True if "ASC" in upper else None
    names = (w.strip().replace(",", "").replace("(", "") for w in words)
    columns = tuple(n for n in names if n.lower() not in _DEFOG_NOT_COLUMNS)
    return DefogOrderBy(columns, ascending, _first_key_ascending(clause.group(0)))


_KEY_ENDS = frozenset({TokenType.COMMA, TokenType.SEMICOLON, TokenType.LIMIT, TokenType.OFFSET,
                       TokenType.FETCH})


def _first_key_ascending(clause: str) -> bool:
    """Whether the first key of an ORDER BY clause (text starting at ORDER BY) sorts ascending."""
    try:
        tokens = sqlglot.tokenize(clause)
    except (TokenError, ValueError):
        return re.match(r"ORDER BY[^,;]*?\bDESC\b", clause, re.IGNORECASE) is None
    depth = 0
    start = 1 if tokens and tokens[0].token_type is TokenType.ORDER_BY else 2  # after ORDER BY
    for tok in tokens[start:]:
        if tok.token_type is TokenType.L_PAREN:
            depth += 1
        elif tok.token_type is TokenType.R_PAREN:
            depth -= 1
            if depth < 0:
                break
        elif depth == 0 and (tok.token_type in _KEY_ENDS):
            break
        elif depth == 0 and tok.token_type is TokenType.DESC:
            return False
    return True


def _sort_rows(rows: list[tuple], keys: Sequence[int], ascending: bool) -> list[tuple]:
    """pandas' ``sort_values(by=keys, ascending=...)``: lexicographic, missing values last whatever
    the direction (stable sorts from the last key to the first)."""
    for k in reversed(keys):
        if ascending:
            rows.sort(key=lambda row, k=k: (_is_missing(row[k]), sort_key(row[k])))
        else:
            rows.sort(key=lambda row, k=k: (not _is_missing(row[k]), sort_key(row[k])), reverse=True)
    return rows


def _defog_normalize(frame: _Frame, ordered: bool, sql: str | None, run: _DefogRun) -> _Frame:
    """Defog's ``normalize_table``: duplicate rows dropped (first kept), columns sorted by name, then
    rows sorted by every column unless the question is ordered. For an ordered question with the query
    text at hand, rows are sorted by the columns its ORDER BY names, then all the others, in the
    direction its regex reads (descending when it sees neither ASC nor DESC), and those columns moved
    last. Duplicate column names make pandas raise when columns are reordered or rows sorted."""
    rows = list(dict.fromkeys(frame.rows))
    names = list(frame.columns)
    duplicated = len(set(names)) != len(names)
    if duplicated and sorted(names) != names:
        raise _DefogError(NOTE_DUPLICATE_COLUMNS)  # "cannot reindex on an axis with duplicate labels"
    order = sorted(range(len(names)), key=names.__getitem__)
    frame = frame.take(order, rows)
    rows, names = list(frame.rows), list(frame.columns)
    if not ordered:
        if duplicated:
            raise _DefogError(NOTE_DUPLICATE_COLUMNS)  # "The column label ... is not unique"
        frame = _Frame(frame.columns, frame.kinds, tuple(_sort_rows(rows, range(len(names)), True)))
    elif sql:
        order_by = defog_order_by(sql)
        if order_by is not None:
            if duplicated:
                raise _DefogError(NOTE_DUPLICATE_COLUMNS)
            key_names = [c for c in order_by.columns if c in names]
            others = [c for c in names if c not in order_by.columns]
            ascending = order_by.ascending
            if ascending is None:
                run.used_default_direction = True
                ascending = False if run.descending_default else order_by.real_ascending
            index = {name: i for i, name in enumerate(names)}
            rows = _sort_rows(rows, [index[c] for c in key_names + others], ascending)
            frame = frame.take([index[c] for c in others + key_names], rows)
    return frame.renamed(deduplicate_names(frame.columns))


def _broadcast_size(a: int, b: int) -> int | None:
    if a == b:
        return a
    if a == 1:
        return b
    return a if b == 1 else None


def _raw_equal(a: object, a_kind: str, b: object, b_kind: str) -> bool:
    """numpy ``==`` on two cells of the frames' value arrays: NULL is NaN in a float column (never
    equal) and None elsewhere (equal to None)."""
    if _is_missing(a) or _is_missing(b):
        nan = (a_kind == _FLOAT and _is_missing(a)) or (b_kind == _FLOAT and _is_missing(b))
        return not nan and a is None and b is None
    return a == b


def _defog_values_equal(gold: _Frame, pred: _Frame) -> bool | None:
    """``(df_gold.values == df_gen.values).all()`` with numpy's broadcasting: None when the shapes do
    not broadcast (numpy raises; Defog ignores it). A one-row result broadcasts against any number of
    rows, and zero rows against one row give an empty comparison, which is all true."""
    (g_rows, g_cols), (p_rows, p_cols) = gold.shape, pred.shape
    rows, cols = _broadcast_size(g_rows, p_rows), _broadcast_size(g_cols, p_cols)
    if rows is None or cols is None:
        return None
    for i in range(rows):
        g_row, p_row = gold.rows[0 if g_rows == 1 else i], pred.rows[0 if p_rows == 1 else i]
        for j in range(cols):
            gj, pj = (0 if g_cols == 1 else j), (0 if p_cols == 1 else j)
            if not _raw_equal(g_row[gj], gold.kinds[gj], p_row[pj], pred.kinds[pj]):
                return False
    return True


def _filled(value: object) -> object:
    return _DEFOG_FILL if _is_missing(value) else value


def _defog_compare_df(gold: _Frame, pred: _Frame, ordered: bool, gold_sql: str, pred_sql: str,
                      run: _DefogRun) -> bool:
    """Defog's ``compare_df``: the raw values equal (broadcast), or, after normalising both, the same
    shape and equal values once missing cells are filled with -99999. Column names play no part."""
    if (run.broadcast or gold.shape == pred.shape) and _defog_values_equal(gold, pred):
        if gold.shape != pred.shape:
            empty = 0 in (gold.shape[0], pred.shape[0])
            run.broadcast_note = NOTE_EMPTY_BROADCAST if empty else NOTE_BROADCAST
        return True
    g = _defog_normalize(gold, ordered, gold_sql, run)
    p = _defog_normalize(pred, ordered, pred_sql, run)
    if g.shape != p.shape:
        return False
    return all(_filled(a) == _filled(b) for g_row, p_row in zip(g.rows, p.rows, strict=True)
               for a, b in zip(g_row, p_row, strict=True))


def _defog_series_equal(a: Sequence[object], a_kind: str, b: Sequence[object], b_kind: str) -> bool:
    """pandas' ``assert_series_equal(check_dtype=False)`` with its defaults (pandas >= 2.2): exact when
    either column is integer or boolean, else within the default tolerance."""
    if len(a) != len(b):
        return False
    same = _exactly_equal if a_kind in _EXACT_KINDS or b_kind in _EXACT_KINDS else pandas_close
    return all(same(x, y) for x, y in zip(a, b, strict=True))


def _sorted_column(frame: _Frame, i: int) -> list:
    """A column's values as ``Series.sort_values()`` orders them (missing values last)."""
    values = _column(frame.rows, i)
    present = sorted((v for v in values if not _is_missing(v)), key=sort_key)
    return present + [v for v in values if _is_missing(v)]


def _defog_subset(gold: _Frame, pred: _Frame, ordered: bool, run: _DefogRun) -> bool:
    """Defog's ``subset_df``: every gold column, sorted, equals a distinct predicted column, sorted
    (first match in column order); then the gold and those predicted columns, renamed, are equal after
    normalising (without the queries' text: an ordered question keeps both row orders as they are)."""
    if not gold.rows or not gold.columns:
        return False
    gold = gold.renamed(deduplicate_names(gold.columns))
    free = list(range(len(pred.columns)))
    matched: list[int] = []
    for i in range(len(gold.columns)):
        g_sorted = _sorted_column(gold, i)
        for j in free:
            if _defog_series_equal(g_sorted, gold.kinds[i], _sorted_column(pred, j), pred.kinds[j]):
                matched.append(j)
                free.remove(j)
                break
        else:
            return False
    # The matched columns are picked from the predicted frame by their de-duplicated names, which a
    # repeated name no longer has: pandas raises KeyError.
    names = deduplicate_names(pred.columns)
    if any(names[j] not in pred.columns for j in matched):
        raise _DefogError(NOTE_DUPLICATE_COLUMNS)
    projected = pred.take([pred.columns.index(names[j]) for j in matched]).renamed(gold.columns)
    g = _defog_normalize(gold, ordered, None, run)
    p = _defog_normalize(projected, ordered, None, run)
    if g.shape != p.shape or g.columns != p.columns:
        return False
    return all(
        _defog_series_equal(_column(g.rows, i), g.kinds[i], _column(p.rows, i), p.kinds[i])
        for i in range(len(g.columns))
    )


# Defog's ``query_postgres_db`` doubles every '%' from the first LIKE to the last quote of a query,
# then hands the text to the driver as a format string (psycopg2 through SQLAlchemy 2.0 with an empty
# parameter set): any other '%' (the modulo operator, a '%' in a literal outside that span) fails.
_DEFOG_LIKE_SPAN = re.compile(r"LIKE[\s\S]*'", re.IGNORECASE)


def defog_percent_error(sql: str) -> bool:
    """Whether Defog's PostgreSQL query function fails on `sql` because of a '%' it does not escape."""
    return "%" in _DEFOG_LIKE_SPAN.sub("", sql).replace("%%", "")


def _defog_verdict(golds: Sequence[Result], pred: Result, ordered: bool, gold_sql: str, pred_sql: str,
                   run: _DefogRun, gold_texts: Sequence[str] = ()) -> bool:
    """Defog's ``compare_query_results`` on executed results: for each gold query in turn, right at
    the first exact match; a subset match is remembered and the next gold tried. Raises _DefogError
    where Defog's code raises (its runner counts the prediction wrong); `gold_texts` (the queries of
    `golds`, on PostgreSQL) to raise where a gold query's '%' makes Defog's query function fail."""
    p = _Frame.of(pred)
    correct = False
    for k, gold in enumerate(golds):
        if k < len(gold_texts) and defog_percent_error(gold_texts[k]):
            raise _DefogError(NOTE_PERCENT)
        g = _Frame.of(gold)
        if _defog_compare_df(g, p, ordered, gold_sql, pred_sql, run):
            return True
        if _defog_subset(g, p, ordered, run):
            correct = True
    return correct


def _defog_verdict_or_error(golds: Sequence[Result], pred: Result, ordered: bool, gold_sql: str,
                            pred_sql: str, run: _DefogRun, gold_texts: Sequence[str]) -> bool:
    try:
        return _defog_verdict(golds, pred, ordered, gold_sql, pred_sql, run, gold_texts)
    except _DefogError:
        return False


def sqleval_judge(
    gold_variants: Sequence[Result],
    pred: Result,
    question: str,
    gold_sql: str = "",
    *,
    category: str | None = None,
    pred_sql: str = "",
    dialect: str | None = None,
) -> Judgement:
    """Defog SQL-Eval's verdict, as its ``compare_query_results`` gives it (with pandas 2.2–2.3, and
    on PostgreSQL with psycopg2 through SQLAlchemy 2.0, the environment of its requirements).

    `gold_variants` are the results of :func:`expand_sqleval_gold` (in its order), `gold_sql` the gold
    text as the dataset holds it and `pred_sql` the predicted query: Defog reads the direction and
    columns of an ordered question's ORDER BY from the texts. Its quirks are reproduced, and the note
    names one where it decided the verdict (the verdict without it would differ): an ORDER BY without
    ASC/DESC sorted descending (:data:`NOTE_DESCENDING_DEFAULT`), and numpy broadcasting in the first
    comparison, which makes an empty result equal to a one-row one (:data:`NOTE_EMPTY_BROADCAST`,
    :data:`NOTE_BROADCAST`). Results with repeated column names make Defog's code raise
    (:data:`NOTE_DUPLICATE_COLUMNS`, wrong) unless their values are equal at once, and so does, on
    PostgreSQL (`dialect`), a query with a '%' outside its LIKE patterns (:data:`NOTE_PERCENT`).
    """
    ordered = sqleval_ordered(question, category, gold_sql)
    gold_texts: list[str] = []
    if dialect == "postgres":
        if defog_percent_error(pred_sql):  # Defog runs the prediction first
            return Judgement(False, NOTE_PERCENT)
        variants = expand_sqleval_gold(gold_sql)
        gold_texts = variants if len(variants) == len(gold_variants) else []
    run = _DefogRun()
    try:
        correct = _defog_verdict(gold_variants, pred, ordered, gold_sql, pred_sql, run, gold_texts)
    except _DefogError as exc:
        return Judgement(False, str(exc))
    notes = []
    if run.used_default_direction:
        real = _DefogRun(descending_default=False)
        if _defog_verdict_or_error(gold_variants, pred, ordered, gold_sql, pred_sql, real, gold_texts) != correct:
            notes.append(NOTE_DESCENDING_DEFAULT)
    if run.broadcast_note:
        without = _DefogRun(broadcast=False)
        if _defog_verdict_or_error(gold_variants, pred, ordered, gold_sql, pred_sql, without, gold_texts) != correct:
            notes.append(run.broadcast_note)
    return Judgement(correct, "; ".join(notes) or None)


def sqleval_match(gold_variants: Sequence[Result], pred: Result, question: str, gold_sql: str = "",
                  **context: Any) -> bool:
    """Defog SQL-Eval's verdict (see :func:`sqleval_judge`, which takes the same `context`) without its note."""
    return sqleval_judge(gold_variants, pred, question, gold_sql, **context).correct


# --- SQL-Eval, strict ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderKeys:
    """Which result columns a query's ORDER BY sorts by: `columns` for its keys, in order, as far as
    they could be found among the selected columns; `complete` when all were."""

    columns: tuple[int, ...]
    complete: bool


def _projection_index(key: exp.Expression, projections: Sequence[exp.Expression],
                      names: Sequence[str]) -> int | None:
    if isinstance(key, exp.Literal) and key.is_int:
        position = int(key.this)
        return position - 1 if 1 <= position <= len(names) else None
    star = any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star) for p in projections)
    if isinstance(key, exp.Column) and not key.table:
        name = key.name.lower()
        for i, p in enumerate(projections):
            if not star and isinstance(p, exp.Alias) and p.alias.lower() == name:
                return i
        if name in names:
            return names.index(name)
    if star:
        return None
    for i, p in enumerate(projections):
        body = p.unalias()
        if body == key:
            return i
        if (isinstance(body, exp.Column) and isinstance(key, exp.Column) and body.name.lower() == key.name.lower()
                and (not body.table or not key.table or body.table.lower() == key.table.lower())):
            return i
    return None


@functools.lru_cache(maxsize=4096)
def _order_keys(sql: str, columns: tuple[str, ...], dialect: str | None) -> OrderKeys | None:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (ParseError, TokenError, ValueError, RecursionError):
        return OrderKeys((), False)
    if not isinstance(tree, exp.Query):
        return OrderKeys((), False)
    order = tree.args.get("order")
    if order is None:
        return None
    projections = tree.selects
    names = [c.lower() for c in columns]
    found: list[int] = []
    for ordered in order.expressions:
        index = _projection_index(ordered.this, projections, names)
        if index is None:
            return OrderKeys(tuple(found), False)
        found.append(index)
    return OrderKeys(tuple(found), True)


def sqleval_order_keys(sql: str, columns: Sequence[str], dialect: str | None = None) -> OrderKeys | None:
    """The result columns `sql`'s top-level ORDER BY sorts by (by position, output name or the same
    expression as a selected one); None when it has no ORDER BY (its row order is undefined). A query
    that cannot be parsed gives no keys (its order must then be followed exactly)."""
    return _order_keys(sql, tuple(columns), dialect)


def _rows_close(a: Sequence[tuple], b: Sequence[tuple]) -> bool:
    return len(a) == len(b) and all(
        len(ra) == len(rb) and all(strict_values_close(x, y) for x, y in zip(ra, rb, strict=True))
        for ra, rb in zip(a, b, strict=True)
    )


def _same_rows(gold: Sequence[tuple], pred: Sequence[tuple], keys: OrderKeys | None) -> bool:
    """Rows (already de-duplicated) equal as sets when `keys` is None; else in the gold's order, except
    that rows tied on every ORDER BY key may come in any order (ties are undefined in SQL). When some
    key is not among the columns, ties cannot be seen and the order must be the same."""
    if len(gold) != len(pred):
        return False
    if keys is None:
        return _rows_close(sorted(gold, key=_row_key), sorted(pred, key=_row_key))
    if not keys.complete:
        return _rows_close(gold, pred)
    start = 0
    while start < len(gold):
        tie = tuple(gold[start][k] for k in keys.columns)
        end = start + 1
        while end < len(gold) and tuple(gold[end][k] for k in keys.columns) == tie:
            end += 1
        if not _rows_close(sorted(gold[start:end], key=_row_key), sorted(pred[start:end], key=_row_key)):
            return False
        start = end
    return True


def _strict_exact(gold: Result, pred: Result, keys: OrderKeys | None) -> bool:
    if len(gold.columns) != len(pred.columns):
        return False
    g_order = sorted(range(len(gold.columns)), key=lambda i: gold.columns[i])
    p_order = sorted(range(len(pred.columns)), key=lambda i: pred.columns[i])
    g_rows = [tuple(row[i] for i in g_order) for row in dict.fromkeys(gold.rows)]
    p_rows = [tuple(row[i] for i in p_order) for row in dict.fromkeys(pred.rows)]
    if keys is not None:
        keys = OrderKeys(tuple(g_order.index(k) for k in keys.columns), keys.complete)
    return _same_rows(g_rows, p_rows, keys)


def _strict_subset(gold: Result, pred: Result, keys: OrderKeys | None) -> bool:
    if not gold.rows:  # no values to match columns by: any predicted columns, as many at least
        return not pred.rows and len(pred.columns) >= len(gold.columns)
    free = list(range(len(pred.columns)))
    matched: list[int] = []
    for i in range(len(gold.columns)):
        g_sorted = sorted(_column(gold.rows, i), key=sort_key)
        j = next((j for j in free if _rows_close([tuple(g_sorted)],
                                                 [tuple(sorted(_column(pred.rows, j), key=sort_key))])), None)
        if j is None:
            return False
        matched.append(j)
        free.remove(j)
    g_rows = list(dict.fromkeys(gold.rows))
    p_rows = list(dict.fromkeys(tuple(row[j] for j in matched) for row in pred.rows))
    return _same_rows(g_rows, p_rows, keys)


def sqleval_strict_match(
    gold_variants: Sequence[Result],
    pred: Result,
    question: str,
    gold_sql: str = "",
    *,
    category: str | None = None,
    dialect: str | None = None,
) -> bool:
    """SQL-Eval's rule as it means to be, without Defog's quirks (``--sqleval-strict``).

    Right if, for some gold expansion, the prediction matches exactly (same number of columns, paired
    by sorted names, duplicate rows dropped) or every gold column equals a distinct predicted column
    (their sorted values), the rows of those columns then matching. Differences from the default:
    for ordered questions rows follow the gold's order, rows tied on every ORDER BY key in any order
    (Defog sorts them by its reading of the two texts' ORDER BY instead); no broadcasting (an empty
    result never equals a non-empty one); repeated column names are columns like any other (not an
    error); NULL equals NULL (not -99999); an integer equals only the same number, two floats within
    pandas' default tolerance; an empty gold equals an empty prediction with at least its columns.
    """
    ordered = sqleval_ordered(question, category, gold_sql)
    variants = expand_sqleval_gold(gold_sql) if gold_sql else []
    for k, gold in enumerate(gold_variants):
        keys = None
        if ordered:
            # The runner passes the results of the expansions that ran, in order: when one failed the
            # texts cannot be paired with results, and the order must then be followed exactly.
            sql = variants[k] if len(variants) == len(gold_variants) else None
            keys = sqleval_order_keys(sql, gold.columns, dialect) if sql else OrderKeys((), False)
        if _strict_exact(gold, pred, keys) or _strict_subset(gold, pred, keys):
            return True
    return False


# --- the registry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareContext:
    """What a rule may look at besides the two results."""

    gold_sql: str
    question: str = ""
    category: str | None = None
    dialect: str | None = None
    pred_sql: str = ""  # the predicted query as it ran (Defog SQL-Eval reads its ORDER BY)


@dataclass(frozen=True)
class ComparisonRule:
    """A benchmark's comparison rule: how to turn the gold SQL into the queries to run, how to rewrite
    any query before it runs, and how to judge a prediction's result against the gold results.

    `match` returns a bool, or a :class:`Judgement` when it has a note to add. It must accept any of
    the gold results themselves: the runner counts a prediction whose (rewritten) text is a gold
    query's as right without running or comparing it."""

    name: str
    match: Callable[[Sequence[Result], Result, CompareContext], bool | Judgement]
    expand_gold: Callable[[str], list[str]] = field(default=lambda sql: [sql])
    prepare: Callable[[str], str] = field(default=lambda sql: sql)
    description: str = ""

    def judge(self, golds: Sequence[Result], pred: Result, ctx: CompareContext) -> Judgement:
        """The verdict on `pred`, with the rule's note if it has one."""
        outcome = self.match(golds, pred, ctx)
        return outcome if isinstance(outcome, Judgement) else Judgement(bool(outcome))


RULES: dict[str, ComparisonRule] = {}


def register_rule(rule: ComparisonRule) -> ComparisonRule:
    """Add (or replace) a rule in the registry, by its name."""
    RULES[rule.name] = rule
    return rule


def get_rule(name: str) -> ComparisonRule:
    """The registered rule called `name`; ConfigError with a suggestion otherwise."""
    try:
        return RULES[name]
    except KeyError:
        close = difflib.get_close_matches(name, RULES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown comparison rule {name!r}{hint}; known: {', '.join(sorted(RULES))}"
        ) from None


def spider_order_matters(gold_sql: str) -> bool:
    """The official test: ``'order by' in g_str.lower()`` on the rewritten gold — anywhere in its text
    (a subquery's ``ORDER BY … LIMIT 1`` or a literal counts; ``ORDER  BY`` with two spaces does not)."""
    return "order by" in spider_prepare(gold_sql).lower()


def _spider_rule_match(golds: Sequence[Result], pred: Result, ctx: CompareContext) -> bool:
    order = spider_order_matters(ctx.gold_sql)
    return any(spider_match(g, pred, order) for g in golds)


def _bird_rule_match(golds: Sequence[Result], pred: Result, ctx: CompareContext) -> bool:
    return any(bird_match(g, pred) for g in golds)


def _sqleval_rule_match(golds: Sequence[Result], pred: Result, ctx: CompareContext) -> Judgement:
    return sqleval_judge(golds, pred, ctx.question, ctx.gold_sql, category=ctx.category, pred_sql=ctx.pred_sql,
                         dialect=ctx.dialect)


def _sqleval_strict_rule_match(golds: Sequence[Result], pred: Result, ctx: CompareContext) -> bool:
    return sqleval_strict_match(golds, pred, ctx.question, ctx.gold_sql, category=ctx.category,
                                dialect=ctx.dialect)


register_rule(
    ComparisonRule(
        "spider",
        _spider_rule_match,
        prepare=spider_prepare,
        description="Spider test-suite EX: multisets of rows, any column permutation, 'order by' in gold → ordered",
    )
)
register_rule(
    ComparisonRule("bird", _bird_rule_match, description="BIRD EX: set of rows equal, column order matters")
)
register_rule(
    ComparisonRule(
        "sqleval",
        _sqleval_rule_match,
        expand_gold=expand_sqleval_gold,
        description="Defog SQL-Eval as its code judges: exact-or-subset after normalising, its quirks named",
    )
)
SQLEVAL_STRICT = register_rule(
    ComparisonRule(
        "sqleval-strict",
        _sqleval_strict_rule_match,
        expand_gold=expand_sqleval_gold,
        description="SQL-Eval without Defog's quirks: ORDER BY ties in any order, no broadcasting, exact integers",
    )
).name


def judge(
    rule: str | ComparisonRule,
    gold: Result | Sequence[Result],
    pred: Result,
    *,
    gold_sql: str = "",
    question: str = "",
    category: str | None = None,
    dialect: str | None = None,
    pred_sql: str = "",
) -> Judgement:
    """Judge `pred` against the gold result(s) with the named rule, with the rule's note. Results are
    normalised here, so callers may pass raw driver values."""
    chosen = get_rule(rule) if isinstance(rule, str) else rule
    golds = [gold] if isinstance(gold, Result) else list(gold)
    ctx = CompareContext(gold_sql=gold_sql, question=question, category=category, dialect=dialect,
                         pred_sql=pred_sql)
    return chosen.judge([normalize_result(g) for g in golds], normalize_result(pred), ctx)


def compare(rule: str | ComparisonRule, gold: Result | Sequence[Result], pred: Result, **context: Any) -> bool:
    """Whether `pred` is right against the gold result(s) by the named rule; `context` as for :func:`judge`."""
    return judge(rule, gold, pred, **context).correct
