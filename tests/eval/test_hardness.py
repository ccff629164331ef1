"""Spider hardness levels: the official rules, checked against the official dev distribution."""

from __future__ import annotations

import collections
import json

import pytest

from sqlwright.eval.datasets import HARDNESS_LEVELS, spider_hardness
from sqlwright.eval.datasets.hardness import clause_components, nested_queries, other_components


def _sql(**overrides):
    """A parsed `SELECT col FROM t` in Spider's format, with clauses overridden."""
    base = {
        "from": {"table_units": [["table_unit", 0]], "conds": []},
        "select": [False, [[0, [0, [0, 1, False], None]]]],
        "where": [],
        "groupBy": [],
        "having": [],
        "orderBy": [],
        "limit": None,
        "intersect": None,
        "union": None,
        "except": None,
    }
    base.update(overrides)
    return base


COND = [False, 2, [0, [0, 1, False], None], 1.0, None]  # col = 1
LIKE = [False, 9, [0, [0, 2, False], None], '"%a%"', None]


def test_simple_select_is_easy():
    assert spider_hardness(_sql()) == "easy"


def test_one_where_is_still_easy_two_clauses_medium():
    assert spider_hardness(_sql(where=[COND])) == "easy"
    assert spider_hardness(_sql(where=[COND], limit=1)) == "medium"


def test_components_count_or_and_like():
    sql = _sql(where=[COND, "or", LIKE])
    assert clause_components(sql) == 3  # WHERE, one OR, one LIKE
    assert other_components(sql) == 1  # more than one WHERE condition


def test_set_operation_is_nesting():
    sql = _sql(union=_sql())
    assert nested_queries(sql) == [_sql()]
    assert spider_hardness(sql) == "hard"
    assert spider_hardness(_sql(union=_sql(), limit=1)) == "hard"
    assert spider_hardness(_sql(union=_sql(), where=[COND, "and", COND])) == "extra"


def test_having_connectives_count_as_aggregations_like_the_official_code():
    # count_others passes HAVING whole; the "and" token's first character is != 0, so it counts.
    agg_select = [False, [[3, [0, [0, 0, False], None]]]]
    with_and = _sql(select=agg_select, groupBy=[[0, 1, False]], having=[COND, "and", COND])
    without = _sql(select=agg_select, groupBy=[[0, 1, False]], having=[COND])
    assert other_components(with_and) == 1
    assert other_components(without) == 0


def test_official_dev_distribution(data_dir):
    records = json.loads((data_dir / "spider" / "dev.json").read_text())
    counts = collections.Counter(spider_hardness(record["sql"]) for record in records)
    assert counts == {"easy": 248, "medium": 446, "hard": 174, "extra": 166}
    assert set(counts) == set(HARDNESS_LEVELS)


@pytest.mark.parametrize("index,level", [(0, "easy"), (5, "medium")])
def test_known_dev_questions(data_dir, index, level):
    records = json.loads((data_dir / "spider" / "dev.json").read_text())
    assert spider_hardness(records[index]["sql"]) == level
