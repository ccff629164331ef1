"""The comparison rules, corner by corner: duplicates, NULLs, empty results, floats, ORDER BY with ties,
column permutations, SQL-Eval alternatives and {} subsets."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import random
from collections import Counter

import pytest

from sqlwright.db.result import Result
from sqlwright.errors import ConfigError
from sqlwright.eval.compare import (
    NOTE_BROADCAST,
    NOTE_DESCENDING_DEFAULT,
    NOTE_DUPLICATE_COLUMNS,
    NOTE_EMPTY_BROADCAST,
    NOTE_PERCENT,
    RULES,
    DefogOrderBy,
    Judgement,
    OrderKeys,
    bird_match,
    compare,
    defog_order_by,
    defog_percent_error,
    expand_sqleval_gold,
    get_rule,
    has_top_level_order_by,
    judge,
    normalize_value,
    pandas_close,
    pandas_kind,
    soft_f1,
    spider_match,
    spider_order_matters,
    spider_prepare,
    spider_quick_rej,
    sqleval_match,
    sqleval_order_keys,
)

SQLEVAL_RULES = ("sqleval", "sqleval-strict")


def R(rows, columns=None):
    rows = tuple(tuple(r) for r in rows)
    if columns is None:
        width = len(rows[0]) if rows else 1
        columns = tuple(f"c{i}" for i in range(width))
    return Result(columns=tuple(columns), rows=rows)


# --- values ----------------------------------------------------------------------------------------
def test_normalize_value_makes_plain_values():
    assert normalize_value(decimal.Decimal("1.50")) == 1.5
    assert isinstance(normalize_value(decimal.Decimal("2")), float)
    assert normalize_value(dt.date(2024, 1, 2)) == "2024-01-02"
    assert normalize_value(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert normalize_value(b"\x00\xff") == "00ff"
    assert normalize_value(memoryview(b"\x01")) == "01"
    assert normalize_value(None) is None and normalize_value(True) is True and normalize_value(3) == 3


def test_compare_normalises_driver_values():
    gold = R([(decimal.Decimal("1.5"), dt.date(2020, 1, 1))])
    pred = R([(1.5, "2020-01-01")])
    assert compare("bird", gold, pred)
    assert compare("spider", gold, pred, gold_sql="SELECT a, b FROM t")


# --- Spider ----------------------------------------------------------------------------------------
def test_spider_duplicates_are_a_multiset():
    assert spider_match(R([(1,), (1,), (2,)]), R([(2,), (1,), (1,)]), False)
    assert not spider_match(R([(1,), (1,), (2,)]), R([(1,), (2,), (2,)]), False)
    assert not spider_match(R([(1,), (2,)]), R([(1,), (1,), (2,)]), False)


def test_spider_column_permutation_and_count():
    gold = R([(1, "a"), (2, "b")])
    assert spider_match(gold, R([("a", 1), ("b", 2)]), False)
    assert spider_match(gold, R([("b", 2), ("a", 1)]), False)
    assert not spider_match(gold, R([(1, "a", 0), (2, "b", 0)]), False)
    # same column multisets but rows mispaired: no permutation fixes that
    assert not spider_match(gold, R([(1, "b"), (2, "a")]), False)


def test_spider_permutation_with_identical_columns_needs_row_pairing():
    gold = R([(1, 2, 1), (2, 1, 2)])
    assert spider_match(gold, R([(2, 1, 1), (1, 2, 2)]), False)  # columns 2,0,1 / rows pair up
    assert not spider_match(gold, R([(1, 1, 2), (2, 2, 2)]), False)


def test_spider_empty_results_and_nulls():
    assert spider_match(R([], ("a",)), R([], ("x", "y")), False)
    assert not spider_match(R([], ("a",)), R([(None,)]), False)
    assert spider_match(R([(None, 1)]), R([(1, None)]), True)
    assert not spider_match(R([(None,)]), R([(0,)]), False)


def test_spider_order_matters_only_with_order_by():
    gold = R([(1, "a"), (2, "b")])
    flipped = R([(2, "b"), (1, "a")])
    assert spider_match(gold, flipped, False)
    assert not spider_match(gold, flipped, True)
    assert spider_match(gold, R([("a", 1), ("b", 2)]), True)
    assert compare("spider", gold, flipped, gold_sql="SELECT x, y FROM t")
    assert not compare("spider", gold, flipped, gold_sql="SELECT x, y FROM t ORDER BY x")


def test_spider_order_by_with_ties_is_judged_on_the_rows_given():
    # Tied sort keys: a different tie order is a different list, as in the official result_eq.
    gold = R([("x", 1), ("y", 1), ("z", 2)])
    assert spider_match(gold, R([("x", 1), ("y", 1), ("z", 2)]), True)
    assert not spider_match(gold, R([("y", 1), ("x", 1), ("z", 2)]), True)


def test_spider_int_and_float_are_equal_values():
    assert spider_match(R([(1,)]), R([(1.0,)]), False)
    assert spider_match(R([(1, "a"), (2, "b")]), R([("b", 2.0), ("a", 1.0)]), False)
    assert spider_match(R([(3, "x")]), R([(3.0, "x")]), True)
    assert not spider_match(R([(0.1 + 0.2,)]), R([(0.3,)]), False)  # Spider has no float tolerance


def test_spider_quick_rej_keys_cells_by_their_text_as_the_official_does():
    # The official pre-check sorts each row's cells by str(v) + str(type(v)): "1.5<class 'float'>"
    # sorts before "1<class 'int'>" but after "1.0<class 'float'>", so (1, 1.5) and (1.0, 1.5) —
    # equal rows — become different sorted rows, and the official result_eq says "different".
    assert not spider_quick_rej([(1, 1.5)], [(1.0, 1.5)], False)
    assert not spider_match(R([(1, 1.5)]), R([(1.0, 1.5)]), False)
    assert not spider_match(R([(1, 1.5)]), R([(1.5, 1.0)]), True)
    assert spider_match(R([(1, 1.5)]), R([(1.5, 1)]), False)  # same types: a column permutation
    # With the same types on both sides it is only a necessary condition (sets, when unordered).
    assert spider_quick_rej([(1, 2), (1, 2), (3, 4)], [(2, 1), (4, 3), (4, 3)], False)
    assert not spider_match(R([(1, 2), (1, 2), (3, 4)]), R([(2, 1), (4, 3), (4, 3)]), False)
    assert not spider_quick_rej([(1, "a"), (2, "b")], [(2, "b"), (1, "a")], True)


def _brute_result_eq(gold, pred, order_matters):
    """Reference: the official pre-check on rows whose cells are sorted by their text and type, then
    every column permutation tried (what result_eq means, without its sampling)."""
    g, p = list(gold.rows), list(pred.rows)
    if not g and not p:
        return True
    if len(g) != len(p) or len(g[0]) != len(p[0]):
        return False
    g_sorted = [tuple(sorted(row, key=lambda v: f"{v}{type(v)}")) for row in g]
    p_sorted = [tuple(sorted(row, key=lambda v: f"{v}{type(v)}")) for row in p]
    if (g_sorted != p_sorted) if order_matters else (set(g_sorted) != set(p_sorted)):
        return False
    for perm in itertools.permutations(range(len(g[0]))):
        permuted = [tuple(row[i] for i in perm) for row in p]
        if (g == permuted) if order_matters else (Counter(g) == Counter(permuted)):
            return True
    return False


def test_spider_match_agrees_with_brute_force_on_random_tables():
    rng = random.Random(7)
    cells = [0, 1, None, 1.0, 10, 1.5, "1"]
    for _ in range(1500):
        cols, rows = rng.randint(1, 4), rng.randint(0, 5)
        gold = R([tuple(rng.choice(cells) for _ in range(cols)) for _ in range(rows)], [f"c{i}" for i in range(cols)])
        pred_rows = [tuple(row[i] for i in rng.sample(range(cols), cols)) for row in gold.rows] if rng.random() < 0.5 else [
            tuple(rng.choice(cells) for _ in range(cols)) for _ in range(rows)
        ]
        if rng.random() < 0.3:  # equal numbers of the other type (1 -> 1.0, 1.0 -> 1)
            pred_rows = [tuple(float(v) if type(v) is int else int(v) if type(v) is float and v.is_integer() else v
                               for v in row) for row in pred_rows]
        if rng.random() < 0.5:
            perm = rng.sample(range(cols), cols)
            pred_rows = [tuple(r[i] for i in perm) for r in pred_rows]
        if rng.random() < 0.3:
            rng.shuffle(pred_rows)
        pred = R(pred_rows, [f"c{i}" for i in range(cols)])
        for order in (False, True):
            assert spider_match(gold, pred, order) == _brute_result_eq(gold, pred, order), (gold, pred, order)


@pytest.mark.parametrize("rule", ["spider", "bird", "sqleval", "sqleval-strict"])
def test_every_rule_judges_a_result_the_same_as_itself(rule):
    # The runner relies on it: a prediction whose text is the gold's reuses the gold result, is right
    # and has Soft-F1 1.0, without comparing.
    rng = random.Random(3)
    cells = [0, 1, 1.0, 2.5, None, "a", "", -0.0]
    for _ in range(300):
        cols, rows = rng.randint(1, 4), rng.randint(0, 6)
        gold = R([tuple(rng.choice(cells) for _ in range(cols)) for _ in range(rows)], [f"c{i}" for i in range(cols)])
        for gold_sql in ("SELECT * FROM t", "SELECT * FROM t ORDER BY 1"):
            assert compare(rule, gold, gold, gold_sql=gold_sql, question="q", pred_sql=gold_sql), (rule, gold)
        assert soft_f1(gold, gold) == 1.0


def test_top_level_order_by():
    assert has_top_level_order_by("SELECT a FROM t ORDER BY a")
    assert has_top_level_order_by("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1")
    assert not has_top_level_order_by("SELECT * FROM (SELECT a FROM t ORDER BY a LIMIT 3)")
    assert not has_top_level_order_by("SELECT a, rank() OVER (ORDER BY a) FROM t")
    assert has_top_level_order_by("SELEC a FROM t ORDER BY a")  # unparsable: word search


def test_spider_prepare_strips_distinct_like_the_official_script():
    sql = "SELECT DISTINCT name, count(DISTINCT id) FROM t WHERE a > = 1 AND b = 'distinct'"
    out = spider_prepare(sql)
    assert out == "SELECT  name, count( id) FROM t WHERE a >= 1 AND b = 'distinct'"  # text kept, as sqlparse
    assert spider_prepare(sql, keep_distinct=True).count("DISTINCT") == 2
    assert spider_prepare('SELECT "distinct" FROM t -- distinct') == 'SELECT "distinct" FROM t -- distinct'
    # replace_cur_year: the call and the spaces after it become "2020"
    assert spider_prepare("SELECT YEAR(CURDATE()) - age FROM t") == "SELECT 2020- age FROM t"
    assert spider_prepare("SELECT * FROM t WHERE y = year ( curdate ( ) )") == "SELECT * FROM t WHERE y = 2020"


def test_spider_prepare_keeps_the_first_statement_like_sqlparse():
    # remove_distinct returns sqlparse.parse(s)[0]: the official runs only the first statement.
    assert spider_prepare("SELECT a FROM t; SELECT b FROM u") == "SELECT a FROM t;"
    assert spider_prepare("SELECT DISTINCT a FROM t;\nDROP TABLE t;") == "SELECT  a FROM t;"
    assert spider_prepare("SELECT a FROM t WHERE b = 'x;y'") == "SELECT a FROM t WHERE b = 'x;y'"
    # with keep_distinct the official does not call remove_distinct: the text is left whole
    assert spider_prepare("SELECT a FROM t; SELECT b FROM u", keep_distinct=True) == "SELECT a FROM t; SELECT b FROM u"


def test_spider_order_matters_when_the_gold_text_says_order_by():
    # The official test is a substring test on the gold text, not a parse of its outer query.
    assert spider_order_matters("SELECT a FROM t ORDER BY a")
    assert spider_order_matters("SELECT a FROM t WHERE b = (SELECT b FROM u ORDER BY c DESC LIMIT 1)")
    assert spider_order_matters("SELECT a FROM t WHERE note = 'sort order by date'")
    assert not spider_order_matters("SELECT a FROM t ORDER  BY a")  # two spaces: no match
    assert not spider_order_matters("SELECT a FROM t ORDER\nBY a")
    assert not spider_order_matters("SELECT a, b FROM t GROUP BY a")
    gold, flipped = R([(1, "a"), (2, "b")]), R([(2, "b"), (1, "a")])
    sub = "SELECT x, y FROM t WHERE z = (SELECT z FROM u ORDER BY w LIMIT 1)"
    assert not compare("spider", gold, flipped, gold_sql=sub)
    assert compare("spider", gold, flipped, gold_sql="SELECT x, y FROM t ORDER  BY x")


# --- BIRD ------------------------------------------------------------------------------------------
def test_bird_set_semantics():
    assert bird_match(R([(1, "a"), (1, "a"), (2, "b")]), R([(2, "b"), (1, "a")]))
    assert not bird_match(R([(1, "a")]), R([("a", 1)]))  # column order matters
    assert bird_match(R([], ("a",)), R([], ("b", "c")))
    assert not bird_match(R([(None,)]), R([]))
    assert bird_match(R([(None,)]), R([(None,)]))


def test_soft_f1_matches_bird_mini_dev_definition():
    assert soft_f1(R([]), R([])) == 1.0
    assert soft_f1(R([(1, 2)]), R([(1, 2)])) == 1.0
    assert soft_f1(R([(1, 2)]), R([(2, 1)])) == 1.0  # cells matched anywhere in the paired row
    # gold (1,2),(3,4); pred (1,5): row 1 -> match .5, pred-only .5, gold-only .5; row 2 unpaired -> fn 1
    # tp=.5 fp=.5 fn=1.5 -> P=.5 R=.25 -> F1=1/3
    assert soft_f1(R([(1, 2), (3, 4)]), R([(1, 5)])) == pytest.approx(1 / 3)
    # duplicates dropped first; extra predicted rows are false positives
    assert soft_f1(R([(1,)]), R([(1,), (1,), (2,)])) == pytest.approx(2 / 3)
    assert soft_f1(R([(1,)]), R([])) == 0.0


# --- SQL-Eval --------------------------------------------------------------------------------------
def test_expand_sqleval_gold_alternatives_and_subsets():
    gold = "SELECT {a.id, a.name}, count(*) FROM a GROUP BY {};SELECT x FROM y;"
    assert expand_sqleval_gold(gold) == [
        "SELECT a.id, count(*) FROM a GROUP BY a.id",
        "SELECT a.name, count(*) FROM a GROUP BY a.name",
        "SELECT a.id, a.name, count(*) FROM a GROUP BY a.id, a.name",
        "SELECT x FROM y",
    ]
    assert expand_sqleval_gold("SELECT 1") == ["SELECT 1"]
    assert expand_sqleval_gold(" ; SELECT 1 ;") == ["SELECT 1"]


def test_sqleval_exact_after_normalising():
    gold = R([(1, "a"), (2, "b")], ("id", "name"))
    pred = R([("b", 2), ("a", 1), ("a", 1)], ("name", "id"))  # reordered columns and rows, a duplicate
    for rule in SQLEVAL_RULES:
        assert compare(rule, gold, pred, question="list the names")
    assert sqleval_match([gold], pred, "list the names")  # the default rule as a plain function


def test_sqleval_subset_extra_renamed_columns_pass():
    gold = R([(1,), (2,)], ("id",))
    pred = R([("a", 2, 9.5), ("b", 1, 3.0)], ("name", "customer_id", "x"))
    for rule in SQLEVAL_RULES:
        assert compare(rule, gold, pred, question="which ids")
        assert not compare(rule, gold, R([("a", 2), ("b", 3)], ("name", "id")), question="which ids")


def test_sqleval_order_questions_keep_row_order():
    gold = R([(1, "a"), (2, "b")], ("id", "name"))
    flipped = R([(2, "b"), (1, "a")], ("id", "name"))
    for rule in SQLEVAL_RULES:
        assert compare(rule, gold, flipped, question="what are the names")
        assert not compare(rule, gold, flipped, question="sort the names by id")
        assert not compare(rule, gold, flipped, question="what are the names", category="order_by")
        assert compare(rule, gold, gold, question="sort the names by id")
    # no category at all: the gold's ORDER BY decides; the strict rule follows the gold's order
    sql = "SELECT id, name FROM t ORDER BY id"
    assert not compare("sqleval-strict", gold, flipped, question="names", gold_sql=sql, pred_sql=sql + " DESC")


def test_sqleval_float_tolerance_is_pandas_default():
    gold = R([(1.0,), (100000.0,)], ("v",))
    for rule in SQLEVAL_RULES:
        assert compare(rule, gold, R([(1.000001,), (100000.5,)], ("v",)), question="q")
        assert not compare(rule, gold, R([(1.001,), (100000.0,)], ("v",)), question="q")
    # pandas compares with math.isclose (relative to the larger value), not numpy's isclose
    assert pandas_close(1.0, 1.0000099) and not pandas_close(1.0, 1.0000100005)
    assert pandas_close(0.0, 1e-9) and not pandas_close(0.0, 2e-8)


def test_sqleval_any_alternative_and_empty_gold():
    g1 = R([(1,)], ("a",))
    g2 = R([(1, "x")], ("a", "b"))
    pred = R([("x", 1)], ("b", "a"))
    for rule in SQLEVAL_RULES:
        assert compare(rule, [g1, g2], pred, question="q")
    empty = R([], ("a",))
    for rule in SQLEVAL_RULES:
        assert compare(rule, empty, R([], ("a",)), question="q")
        assert not compare(rule, empty, R([(1,), (2,)], ("a",)), question="q")
    # strict: an empty gold equals an empty prediction with at least its columns
    assert compare("sqleval-strict", empty, R([], ("a", "b")), question="q")
    assert not compare("sqleval-strict", R([], ("a", "b")), R([], ("a",)), question="q")


def test_sqleval_nulls_and_duplicates_in_subset():
    gold = R([(None,), (1,)], ("a",))
    for rule in SQLEVAL_RULES:
        assert compare(rule, gold, R([(1, "p"), (None, "q")], ("a", "b")), question="q")
        # subset compares each column's sorted values including duplicates
        assert not compare(rule, R([(1,)], ("a",)), R([(1, "x"), (1, "y")], ("a", "b")), question="q")
    # Defog fills NULLs with -99999 before its final comparison; the strict rule does not
    assert compare("sqleval", R([(None, "a")], ("n", "s")), R([(-99999, "a")], ("n", "s")), question="q")
    assert not compare("sqleval-strict", R([(None, "a")], ("n", "s")), R([(-99999, "a")], ("n", "s")), question="q")


# The five ways sqlwright's SQL-Eval verdicts used to differ from Defog's code (issue #10): each test
# checks the default rule (Defog's behaviour) and the strict one.
TIES_GOLD_SQL = "SELECT name, score FROM t ORDER BY score DESC"


def test_sqleval_ties_in_an_ordered_result_may_come_in_any_order():
    gold = R([("b", 9), ("a", 5), ("c", 5)], ("name", "score"))
    ties_swapped = R([("b", 9), ("c", 5), ("a", 5)], ("name", "score"))
    pred_sql = TIES_GOLD_SQL + ", name DESC"
    ask = {"question": "Rank the players by score", "gold_sql": TIES_GOLD_SQL, "pred_sql": pred_sql,
           "category": "order_by", "dialect": "postgres"}
    # Defog sorts both results by the ORDER BY's columns, then the others: ties do not matter
    assert judge("sqleval", gold, ties_swapped, **ask) == Judgement(True)
    assert compare("sqleval-strict", gold, ties_swapped, **ask)
    # a real change of order is wrong in the strict rule (Defog sorts it away: same texts, same sort)
    wrong_order = R([("a", 5), ("b", 9), ("c", 5)], ("name", "score"))
    assert not compare("sqleval-strict", gold, wrong_order, **ask)
    # ties by keys that are not selected cannot be seen: the strict rule then wants the gold's order
    unseen = {**ask, "gold_sql": "SELECT name FROM t ORDER BY score DESC"}
    names = R([("b",), ("a",), ("c",)], ("name",))
    assert not compare("sqleval-strict", names, R([("b",), ("c",), ("a",)], ("name",)), **unseen)
    assert compare("sqleval-strict", names, names, **unseen)


def test_sqleval_order_keys_found_by_position_alias_and_expression():
    cols = ("name", "n")
    sql = "SELECT c.name, COUNT(*) AS n FROM c GROUP BY c.name ORDER BY n DESC, 1"
    assert sqleval_order_keys(sql, cols, "postgres") == OrderKeys((1, 0), True)
    sql = "SELECT c.name, COUNT(*) FROM c GROUP BY c.name ORDER BY COUNT(*) DESC, c.name"
    assert sqleval_order_keys(sql, ("name", "count"), "postgres") == OrderKeys((1, 0), True)
    sql = "SELECT name FROM c ORDER BY score DESC, name"
    assert sqleval_order_keys(sql, ("name",), "postgres") == OrderKeys((), False)
    assert sqleval_order_keys("SELECT name FROM c", ("name",), "postgres") is None


def test_sqleval_duplicate_column_names():
    gold = R([(1, "a"), (2, "b")], ("id", "name"))
    twice = R([(1, "a", "a"), (2, "b", "b")], ("id", "name", "name"))
    # pandas raises sorting a frame by a repeated column name: an error in Defog's code, so wrong
    assert judge("sqleval", gold, twice, question="list them") == Judgement(False, NOTE_DUPLICATE_COLUMNS)
    assert compare("sqleval-strict", gold, twice, question="list them")
    # unless the raw values are equal at once: one column broadcast against two equal ones
    one = R([("a",), ("b",)], ("name",))
    doubled = R([("a", "a"), ("b", "b")], ("name", "name"))
    assert judge("sqleval", one, doubled, question="q") == Judgement(True, NOTE_BROADCAST)
    assert compare("sqleval-strict", one, doubled, question="q")


def test_sqleval_integers_compare_exactly():
    gold = R([(5,), (7,)], ("n",))
    scaled = R([(5.0000005,), (7.0000007,)], ("n",))
    for rule in SQLEVAL_RULES:
        assert not compare(rule, gold, scaled, question="q")
        assert compare(rule, gold, R([(5.0,), (7.0,)], ("n",)), question="q")  # the same numbers
        assert compare(rule, R([(5.5,)], ("x",)), R([(5.5000005,)], ("x",)), question="q")  # floats: tolerance
    # in pandas an integer column with a NULL is a float column, compared with the tolerance
    with_null = R([(5,), (None,)], ("n",))
    assert compare("sqleval", with_null, R([(5.0000005,), (None,)], ("n",)), question="q")
    assert not compare("sqleval-strict", with_null, R([(5.0000005,), (None,)], ("n",)), question="q")


def test_sqleval_order_direction_defog_reads_descending_by_default():
    gold = R([("a", 1), ("b", 2), ("c", 3)], ("name", "score"))
    reversed_ = R(list(reversed(gold.rows)), ("name", "score"))
    ask = {"question": "Sort the names by score", "category": "order_by",
           "gold_sql": "SELECT name, score FROM t ORDER BY score",
           "pred_sql": "SELECT name, score FROM t ORDER BY score DESC"}
    # Defog's regex sees no ASC in the gold's ORDER BY and sorts it descending, like the prediction
    assert judge("sqleval", gold, reversed_, **ask) == Judgement(True, NOTE_DESCENDING_DEFAULT)
    assert not compare("sqleval-strict", gold, reversed_, **ask)
    # the same rows in the same order are right either way, and no quirk decided it
    same = {**ask, "pred_sql": ask["gold_sql"]}
    assert judge("sqleval", gold, gold, **same) == Judgement(True)
    # the regex reads only the first ORDER BY up to a comma, parenthesis or newline
    assert defog_order_by("SELECT a FROM t ORDER BY a ASC, b DESC").ascending is True
    assert defog_order_by("SELECT a FROM t ORDER BY COUNT(*) DESC").ascending is None
    assert defog_order_by("SELECT a FROM t ORDER BY COUNT(*) DESC").real_ascending is False
    assert defog_order_by("SELECT a FROM t ORDER BY (a) DESC") == DefogOrderBy(("a",), None, False)
    assert defog_order_by("SELECT a FROM t\nORDER BY a DESC\nLIMIT 3").columns == ()
    assert defog_order_by("SELECT a FROM t ORDER  BY a") is None


def test_sqleval_empty_result_against_one_row_broadcasts():
    one_row = R([(3,)], ("count",))
    empty = R([], ("count",))
    for gold, pred in ((one_row, empty), (empty, one_row)):
        assert judge("sqleval", gold, pred, question="How many?") == Judgement(True, NOTE_EMPTY_BROADCAST)
        assert not compare("sqleval-strict", gold, pred, question="How many?")
    # two rows do not broadcast against none
    assert not compare("sqleval", R([(3,), (4,)], ("count",)), empty, question="How many?")


def test_sqleval_percent_outside_like_fails_in_defogs_postgres_queries():
    # Defog escapes '%' only from the first LIKE to the last quote, then psycopg2 formats the text
    assert not defog_percent_error("SELECT name FROM t WHERE name LIKE '%a%' AND x = 'b'")
    assert defog_percent_error("SELECT id % 2 FROM t")
    assert defog_percent_error("SELECT name FROM t WHERE name LIKE '%a%' AND id % 2 = 0")
    gold = R([(0,), (1,)], ("m",))
    ask = {"question": "q", "gold_sql": "SELECT id - 2 * (id / 2) AS m FROM t", "pred_sql": "SELECT id % 2 AS m FROM t"}
    assert judge("sqleval", gold, gold, dialect="postgres", **ask) == Judgement(False, NOTE_PERCENT)
    assert judge("sqleval", gold, gold, dialect="sqlite", **ask) == Judgement(True)
    assert compare("sqleval-strict", gold, gold, dialect="postgres", **ask)


def test_sqleval_pandas_column_kinds_and_results_right_against_themselves():
    # The kinds of columns pandas makes of SQL results (they decide exact or tolerant comparison).
    assert [pandas_kind(v) for v in ([1, 2], [1, None], [1.5], [True], [True, None], ["a"], [None])] == [
        "int", "float", "float", "bool", "object", "object", "object"]
    rng = random.Random(11)
    for _ in range(300):
        cols, rows = rng.randint(1, 3), rng.randint(0, 4)
        cells = [1, 2, 2.5, None, "x", "y"]
        gold = R([tuple(rng.choice(cells) for _ in range(cols)) for _ in range(rows)], [f"c{i}" for i in range(cols)])
        # every rule judges a result right against itself (the runner relies on it)
        for rule in SQLEVAL_RULES:
            assert compare(rule, gold, gold, question="order them", gold_sql="SELECT * FROM t ORDER BY c0",
                           pred_sql="SELECT * FROM t ORDER BY c0"), (rule, gold)


# --- registry --------------------------------------------------------------------------------------
def test_registry_has_the_rules_and_suggests_names():
    assert {"spider", "bird", "sqleval", "sqleval-strict"} <= set(RULES)
    with pytest.raises(ConfigError, match="did you mean 'spider'"):
        get_rule("spyder")


def test_rules_disagree_where_their_owners_do():
    gold, pred = R([(1, "a"), (1, "a")]), R([("a", 1)])
    assert compare("bird", gold, R([(1, "a")]))  # set semantics
    assert not compare("spider", gold, R([(1, "a")]), gold_sql="SELECT x, y FROM t")  # multiset
    assert compare("spider", R([(1, "a")]), pred, gold_sql="SELECT x, y FROM t")  # column permutation
    assert not compare("bird", R([(1, "a")]), pred)
