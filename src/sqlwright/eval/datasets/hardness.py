"""Spider's hardness levels (easy / medium / hard / extra), computed over the parsed `sql` dict that
Spider's dev.json carries for every question.

The rules are those of the official Spider evaluator (`Evaluator.eval_hardness` in evaluation.py of
taoyds/spider and taoyds/test-suite-sql-eval), re-implemented here so that our per-level figures are
comparable with published ones. That includes the evaluator's quirks, kept on purpose:

- aggregations are counted in WHERE and HAVING by looking at the first field of each condition, which in
  the parsed form is the condition's NOT flag, not an aggregation id;
- FROM-clause subqueries are not counted as nesting, only subqueries inside conditions and set operations.

The parsed form (from Spider's process_sql.py):
  sql       = {select: [distinct, [(agg_id, val_unit)…]], from: {table_units, conds}, where: cond,
               groupBy: [col_unit…], having: cond, orderBy: [asc|desc, [val_unit…]] or [],
               limit, intersect, union, except}
  cond      = [cond_unit, "and"|"or", cond_unit, …]
  cond_unit = (not_flag, op_id, val_unit, val1, val2)
  val_unit  = (unit_op, col_unit1, col_unit2);  col_unit = (agg_id, col_id, distinct)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")

# Position of LIKE in process_sql.WHERE_OPS: ('not', 'between', '=', '>', '<', '>=', '<=', '!=', 'in',
# 'like', 'is', 'exists').
_LIKE_OP = 9

ParsedSQL = Mapping[str, Any]


def _conditions(sql: ParsedSQL) -> list:
    """Every cond_unit of the FROM, WHERE and HAVING clauses (the and/or tokens sit at odd places)."""
    return list(sql["from"]["conds"][::2]) + list(sql["where"][::2]) + list(sql["having"][::2])


def _connectives(sql: ParsedSQL) -> list:
    return list(sql["from"]["conds"][1::2]) + list(sql["where"][1::2]) + list(sql["having"][1::2])


def _aggregated(units: Iterable[Sequence]) -> int:
    """How many units have a non-zero first field (the aggregation id, or a condition's NOT flag)."""
    return sum(1 for unit in units if unit[0] != 0)


def clause_components(sql: ParsedSQL) -> int:
    """The evaluator's `count_component1`: WHERE, GROUP BY, ORDER BY, LIMIT, each join, each OR, each LIKE."""
    count = sum(1 for key in ("where", "groupBy", "orderBy") if len(sql[key]) > 0)
    if sql["limit"] is not None:
        count += 1
    table_units = sql["from"]["table_units"]
    if table_units:
        count += len(table_units) - 1
    count += sum(1 for token in _connectives(sql) if token == "or")
    count += sum(1 for cond in _conditions(sql) if cond[1] == _LIKE_OP)
    return count


def nested_queries(sql: ParsedSQL) -> list[ParsedSQL]:
    """The evaluator's `get_nestedSQL`: subqueries in conditions, then INTERSECT, EXCEPT, UNION."""
    nested: list[ParsedSQL] = []
    for cond in _conditions(sql):
        nested.extend(value for value in (cond[3], cond[4]) if isinstance(value, dict))
    nested.extend(sql[key] for key in ("intersect", "except", "union") if sql[key] is not None)
    return nested


def other_components(sql: ParsedSQL) -> int:
    """The evaluator's `count_others`: more than one aggregation, more than one selected column, more
    than one WHERE condition, more than one GROUP BY column — one point each."""
    aggregations = _aggregated(sql["select"][1])
    aggregations += _aggregated(sql["where"][::2])
    aggregations += _aggregated(sql["groupBy"])
    if sql["orderBy"]:
        order_units = sql["orderBy"][1]
        aggregations += _aggregated(
            [unit[1] for unit in order_units if unit[1]] + [unit[2] for unit in order_units if unit[2]]
        )
    # The evaluator passes the whole HAVING list, and/or tokens included; a token's first character is
    # never the integer 0, so each connective counts as an aggregation. Kept for identical levels.
    aggregations += _aggregated(sql["having"])
    count = 1 if aggregations > 1 else 0
    if len(sql["select"][1]) > 1:
        count += 1
    if len(sql["where"]) > 1:
        count += 1
    if len(sql["groupBy"]) > 1:
        count += 1
    return count


def spider_hardness(sql: ParsedSQL) -> str:
    """The hardness level of one parsed Spider query: "easy", "medium", "hard" or "extra"."""
    comp1 = clause_components(sql)
    comp2 = len(nested_queries(sql))
    others = other_components(sql)
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (
        (others > 2 and comp1 <= 2 and comp2 == 0)
        or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
        or (comp1 <= 1 and others == 0 and comp2 <= 1)
    ):
        return "hard"
    return "extra"
