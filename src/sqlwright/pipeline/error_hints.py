"""Where a failing query's unknown column or table really is: a sentence for the repair request.

Small models mostly fail by putting a column on the wrong table (``SELECT Horsepower FROM model_list`` when
Horsepower is a column of cars_data), misspelling a table (``car_data``), or using an alias for the wrong
table. The database's error names the culprit; this module finds it in the schema and says where it is, so
the repair can fix the join instead of returning the same query. Error texts of SQLite, PostgreSQL,
MySQL/MariaDB and DuckDB are recognised.
"""

from __future__ import annotations

import difflib
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlwright.db.render import quote_identifier, quote_table_name
from sqlwright.db.schema import Schema, Table
from sqlwright.pipeline.generate import sqlglot_dialect

MAX_NAMED = 3  # tables or columns named in one hint
_QUOTES = "\"'`[]"

_UNKNOWN_COLUMN = [
    re.compile(r"no such column: ([^\s,]+)"),  # SQLite
    re.compile(r'column ("[^"]+"|[^\s]+) does not exist'),  # PostgreSQL: column "x" / "Unit Price" / t.x
    re.compile(r"Unknown column '([^']+)'"),  # MySQL, MariaDB
    re.compile(r'Referenced column "([^"]+)" not found'),  # DuckDB, unqualified
]
_DUCKDB_QUALIFIED_COLUMN = re.compile(r'"([^"]+)" does not have a column named "([^"]+)"')
_UNKNOWN_TABLE = [
    re.compile(r"no such table: ([^\s,]+)"),  # SQLite
    re.compile(r'relation "([^"]+)" does not exist'),  # PostgreSQL
    re.compile(r"Table '([^']+)' doesn't exist"),  # MySQL, MariaDB (db.table)
    re.compile(r"Table with name ([^\s!]+) does not exist"),  # DuckDB
]
_UNKNOWN_ALIAS = [
    re.compile(r'missing FROM-clause entry for table "([^"]+)"'),  # PostgreSQL
    re.compile(r'Referenced table "([^"]+)" not found'),  # DuckDB
]


def _bare(name: str) -> str:
    return name.strip().strip(_QUOTES)


def _split(name: str) -> tuple[str | None, str]:
    """'T1.Weight' -> ('T1', 'Weight'); '"weight"' -> (None, 'weight')."""
    parts = [_bare(p) for p in _bare(name).split(".")]
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


def _aliases(sql: str, dialect: str) -> dict[str, str]:
    """Alias (or table name), lower-cased -> table name, for the tables `sql` reads."""
    try:
        tree = sqlglot.parse_one(sql, read=sqlglot_dialect(dialect))
    except (SqlglotError, ValueError, RecursionError):  # RecursionError: nesting deeper than sqlglot parses
        return {}
    if tree is None:
        return {}
    out: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        if table.name:
            out[table.alias_or_name.lower()] = table.name
    return out


def _names(items: list[str]) -> str:
    return ", ".join(items[:MAX_NAMED])


def _table(table: Table, schema: Schema) -> str:
    """The table's name as the schema rendering shows it (quoted where the dialect needs it)."""
    return quote_table_name(table, schema.dialect)


def _column_ref(table: Table, column: str, schema: Schema) -> str:
    return f"{_table(table, schema)}.{quote_identifier(column, schema.dialect)}"


def _column_hint(qualifier: str | None, column: str, sql: str, schema: Schema) -> str:
    owners = [t for t in schema.tables if t.column(column) is not None]
    said: list[str] = []
    if qualifier is not None:
        table = schema.table(_aliases(sql, schema.dialect).get(qualifier.lower(), qualifier))
        if table is not None and table.column(column) is None:
            name = _table(table, schema)
            named = f"{qualifier} is {name}" if qualifier.lower() != table.name.lower() else name
            said.append(f"In this query {named}, which has no column {column}.")
    if owners:
        # the schema's spelling (PostgreSQL lower-cases the error's), quoted as the rendering shows it
        stored = owners[0].column(column).name  # type: ignore[union-attr]
        exact = [_column_ref(t, t.column(column).name, schema) for t in owners]  # type: ignore[union-attr]
        said.append(f"{quote_identifier(stored, schema.dialect)} is a column of "
                    f"{_names([_table(t, schema) for t in owners])} ({_names(exact)}): read it from there, "
                    "joining that table if the query does not have it yet.")
        return " ".join(said)
    everything = {_column_ref(t, c.name, schema): c.name.lower() for t in schema.tables for c in t.columns}
    close = difflib.get_close_matches(column.lower(), sorted(set(everything.values())), n=MAX_NAMED, cutoff=0.7)
    similar = [full for full, low in everything.items() if low in close]
    if similar:
        said.append(f"No table has a column {column}; similar columns: {_names(similar)}.")
    else:
        said.append(f"No table has a column {column}.")
    return " ".join(said)


def _table_hint(name: str, schema: Schema) -> str | None:
    if schema.table(name) is not None:
        return None
    close = difflib.get_close_matches(name.lower(), [t.name.lower() for t in schema.tables], n=MAX_NAMED,
                                      cutoff=0.6)
    tables = [_table(t, schema) for t in schema.tables if t.name.lower() in close]
    if tables:
        return f"There is no table {name}; similar tables: {_names(tables)}."
    return f"There is no table {name}; use only the tables of the schema above."


def schema_hint(error: str, sql: str, schema: Schema | None) -> str | None:
    """A sentence locating the unknown column or table that `error` names, or None when the error is of
    another kind (or there is no schema to look in)."""
    if schema is None or not error:
        return None
    match = _DUCKDB_QUALIFIED_COLUMN.search(error)
    if match:
        return _column_hint(match.group(1), _bare(match.group(2)), sql, schema)
    for pattern in _UNKNOWN_COLUMN:
        if match := pattern.search(error):
            qualifier, column = _split(match.group(1))
            return _column_hint(qualifier, column, sql, schema)
    for pattern in _UNKNOWN_TABLE:
        if match := pattern.search(error):
            return _table_hint(_split(match.group(1))[1], schema)
    for pattern in _UNKNOWN_ALIAS:
        if match := pattern.search(error):
            known = sorted(set(_aliases(sql, schema.dialect)))
            alias = _bare(match.group(1))
            return (f"{alias} is not a table or alias of this query's FROM clause"
                    + (f" (it has: {', '.join(known)})." if known else "."))
    return None
