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
    RULES,
    bird_match,
    compare,
    expand_sqleval_gold,
    get_rule,
    has_top_level_order_by,
    normalize_value,
    soft_f1,
    spider_match,
    spider_prepare,
    sqleval_match,
)


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
    assert not spider_match(R([(0.1 + 0.2,)]), R([(0.3,)]), False)  # Spider has no float tolerance


def _brute_result_eq(gold, pred, order_matters):
    """Reference: try every column permutation (what result_eq means, without its sampling)."""
    g, p = list(gold.rows), list(pred.rows)
    if not g and not p:
        return True
    if len(g) != len(p) or len(g[0]) != len(p[0]):
        return False
    for perm in itertools.permutations(range(len(g[0]))):
        permuted = [tuple(row[i] for i in perm) for row in p]
        if (g == permuted) if order_matters else (Counter(g) == Counter(permuted)):
            return True
    return False


def test_spider_match_agrees_with_brute_force_on_random_tables():
    rng = random.Random(7)
    for _ in range(400):
        cols, rows = rng.randint(1, 4), rng.randint(0, 5)
        gold = R([tuple(rng.choice([0, 1, None]) for _ in range(cols)) for _ in range(rows)], [f"c{i}" for i in range(cols)])
        pred_rows = [tuple(row[i] for i in rng.sample(range(cols), cols)) for row in gold.rows] if rng.random() < 0.5 else [
            tuple(rng.choice([0, 1, None]) for _ in range(cols)) for _ in range(rows)
        ]
        if rng.random() < 0.5:
            perm = rng.sample(range(cols), cols)
            pred_rows = [tuple(r[i] for i in perm) for r in pred_rows]
        if rng.random() < 0.3:
            rng.shuffle(pred_rows)
        pred = R(pred_rows, [f"c{i}" for i in range(cols)])
        for order in (False, True):
            assert spider_match(gold, pred, order) == _brute_result_eq(gold, pred, order), (gold, pred, order)


def test_top_level_order_by():
    assert has_top_level_order_by("SELECT a FROM t ORDER BY a")
    assert has_top_level_order_by("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1")
    assert not has_top_level_order_by("SELECT * FROM (SELECT a FROM t ORDER BY a LIMIT 3)")
    assert not has_top_level_order_by("SELECT a, rank() OVER (ORDER BY a) FROM t")
    assert has_top_level_order_by("SELEC a FROM t ORDER BY a")  # unparsable: word search


def test_spider_prepare_strips_distinct_like_the_official_script():
    sql = "SELECT DISTINCT name, count(DISTINCT id) FROM t WHERE a > = 1 AND b = 'distinct'"
    out = spider_prepare(sql)
    assert "DISTINCT" not in out and "'distinct'" in out and ">=" in out
    assert spider_prepare(sql, keep_distinct=True).count("DISTINCT") == 2
    assert "2020" in spider_prepare("SELECT * FROM t WHERE y = YEAR(CURDATE())")


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
    assert sqleval_match([gold], pred, "list the names")


def test_sqleval_subset_extra_renamed_columns_pass():
    gold = R([(1,), (2,)], ("id",))
    pred = R([("a", 2, 9.5), ("b", 1, 3.0)], ("name", "customer_id", "x"))
    assert sqleval_match([gold], pred, "which ids")
    assert not sqleval_match([gold], R([("a", 2), ("b", 3)], ("name", "id")), "which ids")


def test_sqleval_order_questions_keep_row_order():
    gold = R([(1, "a"), (2, "b")], ("id", "name"))
    flipped = R([(2, "b"), (1, "a")], ("id", "name"))
    assert sqleval_match([gold], flipped, "what are the names")
    assert not sqleval_match([gold], flipped, "sort the names by id")
    assert not sqleval_match([gold], flipped, "what are the names", category="order_by")
    assert sqleval_match([gold], gold, "sort the names by id")
    # no category at all: the gold's ORDER BY decides
    assert not sqleval_match([gold], flipped, "names", "SELECT id, name FROM t ORDER BY id")


def test_sqleval_float_tolerance_is_pandas_default():
    gold = R([(1.0,), (100000.0,)], ("v",))
    assert sqleval_match([gold], R([(1.000001,), (100000.5,)], ("v",)), "q")
    assert not sqleval_match([gold], R([(1.001,), (100000.0,)], ("v",)), "q")


def test_sqleval_any_alternative_and_empty_gold():
    g1 = R([(1,)], ("a",))
    g2 = R([(1, "x")], ("a", "b"))
    pred = R([("x", 1)], ("b", "a"))
    assert sqleval_match([g1, g2], pred, "q")
    # an empty gold matches only an exactly equal (empty) prediction, never as a subset
    empty = R([], ("a",))
    assert sqleval_match([empty], R([], ("a",)), "q")
    assert not sqleval_match([empty], R([], ("a", "b")), "q")
    assert not sqleval_match([empty], R([(1,)], ("a",)), "q")


def test_sqleval_nulls_and_duplicates_in_subset():
    gold = R([(None,), (1,)], ("a",))
    assert sqleval_match([gold], R([(1, "p"), (None, "q")], ("a", "b")), "q")
    # subset compares each column's sorted values including duplicates
    assert not sqleval_match([R([(1,)], ("a",))], R([(1, "x"), (1, "y")], ("a", "b")), "q")


# --- registry --------------------------------------------------------------------------------------
def test_registry_has_the_three_rules_and_suggests_names():
    assert {"spider", "bird", "sqleval"} <= set(RULES)
    with pytest.raises(ConfigError, match="did you mean 'spider'"):
        get_rule("spyder")


def test_rules_disagree_where_their_owners_do():
    gold, pred = R([(1, "a"), (1, "a")]), R([("a", 1)])
    assert compare("bird", gold, R([(1, "a")]))  # set semantics
    assert not compare("spider", gold, R([(1, "a")]), gold_sql="SELECT x, y FROM t")  # multiset
    assert compare("spider", R([(1, "a")]), pred, gold_sql="SELECT x, y FROM t")  # column permutation
    assert not compare("bird", R([(1, "a")]), pred)
