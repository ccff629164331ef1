"""Locating a failing query's unknown column or table in the schema, from each database's own error text."""

from __future__ import annotations

import pytest

from sqlwright.db.schema import Column, Schema, Table
from sqlwright.pipeline.error_hints import schema_hint
from sqlwright.pipeline.repair import observation
from sqlwright.pipeline.types import Candidate

SCHEMA = Schema("sqlite", (
    Table("model_list", (Column("ModelId", "INTEGER"), Column("Maker", "INTEGER"), Column("Model", "TEXT"))),
    Table("car_names", (Column("MakeId", "INTEGER"), Column("Model", "TEXT"), Column("Make", "TEXT"))),
    Table("cars_data", (Column("Id", "INTEGER"), Column("Horsepower", "TEXT"), Column("Weight", "INTEGER"))),
))
SQL = "SELECT T1.Weight FROM car_names AS T1 JOIN model_list AS T2 ON T1.Model = T2.Model"


@pytest.mark.parametrize("error", [
    "SQLite error: no such column: Horsepower",
    'PostgreSQL error: column "horsepower" does not exist LINE 1: SELECT horsepower ...',
    "MySQL error: Unknown column 'Horsepower' in 'field list'",
    'DuckDB error: Binder Error: Referenced column "Horsepower" not found in FROM clause! Candidate bindings: "a"',
])
def test_an_unknown_column_is_located_from_each_dialects_error(error: str) -> None:
    hint = schema_hint(error, "SELECT Horsepower FROM model_list", SCHEMA)
    assert hint is not None and "cars_data" in hint and "cars_data.Horsepower" in hint


@pytest.mark.parametrize("error", [
    "SQLite error: no such column: T1.Weight",
    "PostgreSQL error: column t1.weight does not exist",
    "MySQL error: Unknown column 'T1.Weight' in 'where clause'",
    'DuckDB error: Binder Error: Table "T1" does not have a column named "Weight"',
])
def test_a_qualified_column_names_the_aliased_table_and_the_right_one(error: str) -> None:
    hint = schema_hint(error, SQL, SCHEMA)
    assert hint is not None
    assert "t1 is car_names, which has no column" in hint.lower()
    assert "Weight is a column of cars_data (cars_data.Weight)" in hint


def test_a_column_no_table_has_gets_the_nearest_names() -> None:
    hint = schema_hint("SQLite error: no such column: horse_power", "SELECT horse_power FROM cars_data", SCHEMA)
    assert hint == "No table has a column horse_power; similar columns: cars_data.Horsepower."
    assert schema_hint("SQLite error: no such column: zzz", "SELECT zzz FROM cars_data", SCHEMA) == (
        "No table has a column zzz.")


@pytest.mark.parametrize("error", [
    "SQLite error: no such table: car_data",
    'PostgreSQL error: relation "car_data" does not exist',
    "MySQL error: Table 'car_1.car_data' doesn't exist",
    'DuckDB error: Catalog Error: Table with name car_data does not exist! Did you mean "cars_data"?',
])
def test_an_unknown_table_gets_the_nearest_tables(error: str) -> None:
    hint = schema_hint(error, "SELECT * FROM car_data", SCHEMA)
    assert hint is not None and hint.startswith("There is no table car_data; similar tables:")
    assert "cars_data" in hint


def test_an_unknown_alias_lists_the_querys_own() -> None:
    hint = schema_hint('PostgreSQL error: missing FROM-clause entry for table "x"', "SELECT x.Model FROM "
                       "model_list AS m JOIN car_names AS c ON m.Model = c.Model", SCHEMA)
    assert hint == "x is not a table or alias of this query's FROM clause (it has: c, m)."


def test_other_errors_and_no_schema_give_no_hint() -> None:
    assert schema_hint("SQLite error: near \"SELEC\": syntax error", "SELEC 1", SCHEMA) is None
    assert schema_hint("SQLite error: no such column: Horsepower", "SELECT Horsepower FROM t", None) is None
    assert schema_hint("", "SELECT 1", SCHEMA) is None
    # unparsable SQL: the qualifier cannot be resolved, the column is still located
    hint = schema_hint("SQLite error: no such column: T9.Weight", "SELECT T9.Weight FROM ((", SCHEMA)
    assert hint is not None and "is a column of cars_data" in hint


def test_the_repair_observation_carries_the_hint() -> None:
    failed = Candidate("SELECT Horsepower FROM model_list", "greedy",
                       error="SQLite error: no such column: Horsepower")
    said = observation(failed, "Which model has the least horsepower?", SCHEMA)
    assert said.startswith("The query failed with this database error: SQLite error: no such column")
    assert "Horsepower is a column of cars_data" in said
    assert "cars_data" not in observation(failed, "Which model has the least horsepower?")
