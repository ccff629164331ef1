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
- ``sqleval``: Defog SQL-Eval: the gold may hold ``;``-separated alternatives and one ``{a,b}`` column
  set per alternative (expanded into every non-empty subset); a prediction is right if, for any
  expansion, it matches exactly after normalising (duplicates dropped, columns sorted by name, rows
  sorted unless the question asks for an order) or if every gold column appears among the predicted
  columns with the same values (pandas' default tolerance for floats).

Values are normalised once, in :func:`normalize_value`, before any rule sees them (and before gold
results are cached), so every rule compares the same plain Python values.

Rules are registered in a small registry (:data:`RULES`, :func:`register_rule`, :func:`get_rule`) and
dispatched by :func:`compare`; nothing else branches on rule names.
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

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from sqlwright.db.result import Result
from sqlwright.errors import ConfigError

# pandas' defaults for assert_series_equal / assert_frame_equal with check_exact=False.
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


def values_close(actual: object, expected: object) -> bool:
    """Equality with pandas' default float tolerance: |a - e| <= atol + rtol * |e|; NULL equals NaN."""
    if _is_missing(actual) or _is_missing(expected):
        return _is_missing(actual) and _is_missing(expected)
    if _is_number(actual) and _is_number(expected):
        if isinstance(actual, int) and isinstance(expected, int):
            return actual == expected
        if math.isinf(actual) or math.isinf(expected):
            return actual == expected
        return abs(actual - expected) <= PANDAS_ATOL + PANDAS_RTOL * abs(expected)
    return actual == expected


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
    except (ParseError, TokenError, ValueError):
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
class _Table:
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]


def _normalize_table(table: _Table, ordered: bool) -> _Table:
    """Defog's ``normalize_table``: drop duplicate rows (first kept), sort columns by name, sort rows
    by all columns left to right unless `ordered`."""
    rows = list(dict.fromkeys(table.rows))
    order = sorted(range(len(table.columns)), key=lambda i: table.columns[i])
    rows = [tuple(row[i] for i in order) for row in rows]
    if not ordered:
        rows.sort(key=_row_key)
    return _Table(tuple(table.columns[i] for i in order), tuple(rows))


def _rows_close(a: Sequence[tuple], b: Sequence[tuple]) -> bool:
    return len(a) == len(b) and all(
        len(ra) == len(rb) and all(values_close(x, y) for x, y in zip(ra, rb, strict=True))
        for ra, rb in zip(a, b, strict=True)
    )


def _sqleval_exact(gold: _Table, pred: _Table, ordered: bool) -> bool:
    if len(gold.columns) == len(pred.columns) and _rows_close(gold.rows, pred.rows):
        return True
    g, p = _normalize_table(gold, ordered), _normalize_table(pred, ordered)
    return len(g.columns) == len(p.columns) and _rows_close(g.rows, p.rows)


def _sqleval_subset(gold: _Table, pred: _Table, ordered: bool) -> bool:
    """Defog's ``subset_df``: each gold column, sorted, equals some not-yet-used predicted column,
    sorted; then the gold and the matched predicted columns (renamed) match after normalising."""
    if not gold.rows or not gold.columns:
        return False
    free = list(range(len(pred.columns)))
    matched: list[int] = []
    for i in range(len(gold.columns)):
        g_col = sorted(_column(gold.rows, i), key=sort_key)
        for j in free:
            p_col = sorted(_column(pred.rows, j), key=sort_key)
            if len(p_col) == len(g_col) and all(
                values_close(pv, gv) for pv, gv in zip(p_col, g_col, strict=True)
            ):
                matched.append(j)
                free.remove(j)
                break
        else:
            return False
    projected = _Table(gold.columns, tuple(tuple(row[j] for j in matched) for row in pred.rows))
    g, p = _normalize_table(gold, ordered), _normalize_table(projected, ordered)
    return _rows_close(g.rows, p.rows)


def sqleval_match(
    gold_variants: Sequence[Result],
    pred: Result,
    question: str,
    gold_sql: str = "",
    *,
    category: str | None = None,
) -> bool:
    """Defog SQL-Eval's verdict: right if any gold expansion matches `pred` exactly (after normalising)
    or is a column subset of it. `gold_variants` are the results of :func:`expand_sqleval_gold`."""
    ordered = sqleval_ordered(question, category, gold_sql)
    p = _Table(pred.columns, pred.rows)
    for gold in gold_variants:
        g = _Table(gold.columns, gold.rows)
        if _sqleval_exact(g, p, ordered) or _sqleval_subset(g, p, ordered):
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


@dataclass(frozen=True)
class ComparisonRule:
    """A benchmark's comparison rule: how to turn the gold SQL into the queries to run, how to rewrite
    any query before it runs, and how to judge a prediction's result against the gold results.

    `match` must accept any of the gold results themselves: the runner counts a prediction whose
    (rewritten) text is a gold query's as right without running or comparing it."""

    name: str
    match: Callable[[Sequence[Result], Result, CompareContext], bool]
    expand_gold: Callable[[str], list[str]] = field(default=lambda sql: [sql])
    prepare: Callable[[str], str] = field(default=lambda sql: sql)
    description: str = ""


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


def _sqleval_rule_match(golds: Sequence[Result], pred: Result, ctx: CompareContext) -> bool:
    return sqleval_match(golds, pred, ctx.question, ctx.gold_sql, category=ctx.category)


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
        description="Defog SQL-Eval: alternatives, {} column subsets, exact-or-subset after normalising",
    )
)


def compare(
    rule: str | ComparisonRule,
    gold: Result | Sequence[Result],
    pred: Result,
    *,
    gold_sql: str = "",
    question: str = "",
    category: str | None = None,
    dialect: str | None = None,
) -> bool:
    """Judge `pred` against the gold result(s) with the named rule. Results are normalised here, so
    callers may pass raw driver values."""
    chosen = get_rule(rule) if isinstance(rule, str) else rule
    golds = [gold] if isinstance(gold, Result) else list(gold)
    ctx = CompareContext(gold_sql=gold_sql, question=question, category=category, dialect=dialect)
    return chosen.match([normalize_result(g) for g in golds], normalize_result(pred), ctx)
