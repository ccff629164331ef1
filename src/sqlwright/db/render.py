"""Schema rendering for prompts: a compact M-Schema-like text (`render_schema`) and plain DDL
(`render_ddl`). Both are deterministic: the same Schema always renders to the same text."""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import NormalizationStrategy

from sqlwright.db.dialects import Dialect, get_dialect
from sqlwright.db.schema import Column, Schema, Table
from sqlwright.errors import UnsupportedDatabase

DEFAULT_MAX_SAMPLE_CHARS = 40
# Words reserved in SQLite or PostgreSQL (and the SQL:2016 core), for the dialects whose sqlglot generator
# declares no RESERVED_KEYWORDS (sqlglot knows MySQL's and DuckDB's, not these two). Over-quoting is
# harmless; tests/db/test_schema_render.py checks these lists against each engine's own keyword list.
_RESERVED = frozenset(
    ["ADD", "ALL", "ALTER", "ANALYSE", "ANALYZE", "AND", "ANY", "ARRAY", "AS", "ASC", "ASYMMETRIC", "AUTHORIZATION", "AUTOINCREMENT", "BETWEEN", "BINARY", "BOTH", "BY", "CASE", "CAST", "CHECK", "COLLATE", "COLLATION", "COLUMN", "COMMIT", "CONCURRENTLY", "CONSTRAINT", "CREATE", "CROSS", "CURRENT_CATALOG", "CURRENT_DATE", "CURRENT_ROLE", "CURRENT_SCHEMA", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER", "DATABASE", "DEFAULT", "DEFERRABLE", "DELETE", "DESC", "DISTINCT", "DO", "DROP", "ELSE", "END", "ESCAPE", "EXCEPT", "EXISTS", "FALSE", "FETCH", "FILTER", "FOR", "FOREIGN", "FREEZE", "FROM", "FULL", "GRANT", "GROUP", "GROUPS", "HAVING", "IF", "IGNORE", "ILIKE", "IN", "INDEX", "INITIALLY", "INNER", "INSERT", "INTERSECT", "INTERVAL", "INTO", "IS", "ISNULL", "JOIN", "KEY", "KEYS", "LATERAL", "LEADING", "LEFT", "LIKE", "LIMIT", "LOCALTIME", "LOCALTIMESTAMP", "NATURAL", "NOT", "NOTHING", "NOTNULL", "NULL", "OFFSET", "ON", "ONLY", "OR", "ORDER", "OUTER", "OVER", "OVERLAPS", "PARTITION", "PLACING", "PRIMARY", "RAISE", "RANGE", "REFERENCES", "REPLACE", "RETURNING", "RIGHT", "ROW", "ROWS", "SELECT", "SESSION_USER", "SET", "SIMILAR", "SOME", "SYMMETRIC", "SYSTEM_USER", "TABLE", "TABLESAMPLE", "THEN", "TO", "TRAILING", "TRANSACTION", "TRUE", "UNION", "UNIQUE", "UPDATE", "USER", "USING", "VALUES", "VARIADIC", "VERBOSE", "WHEN", "WHERE", "WINDOW", "WITH"]
)

# Reserved by MariaDB beyond the MySQL words sqlglot's MySQL generator declares (the mysql dialect is both).
_MARIADB_RESERVED = frozenset(
    ["CURRENT_ROLE", "DELETE_DOMAIN_ID", "DO_DOMAIN_IDS", "IGNORE_DOMAIN_IDS", "MASTER_DEMOTE_TO_REPLICA", "MASTER_DEMOTE_TO_SLAVE", "OFFSET", "PAGE_CHECKSUM", "PARSE_VCOL_EXPR", "PORTION", "REF_SYSTEM_ID", "RETURNING", "SQL_BUFFER_RESULT", "SQL_CACHE", "SQL_NO_CACHE", "STATS_AUTO_RECALC", "STATS_PERSISTENT", "STATS_SAMPLE_PAGES"]
)
_RESERVED_BEYOND_SQLGLOT = {"mysql": _MARIADB_RESERVED}


@dataclass(frozen=True)
class _IdentifierRules:
    """How one dialect reads an unquoted name: which words it reserves, whether it folds case."""

    spec: type[Dialect]
    sqlglot: sqlglot.Dialect
    reserved: frozenset[str]  # lower case
    folds_case: bool  # unquoted names are lower-cased (PostgreSQL) or upper-cased


@functools.cache
def _identifier_rules(dialect: str) -> _IdentifierRules:
    try:
        spec = get_dialect(dialect)
    except UnsupportedDatabase:  # a schema built by hand for an unknown engine: ANSI rules
        spec = Dialect
    sg = sqlglot.Dialect.get_or_raise(spec.sqlglot or None)
    words = (sg.generator_class.RESERVED_KEYWORDS or _RESERVED) | _RESERVED_BEYOND_SQLGLOT.get(spec.name, set())
    reserved = frozenset(w.lower() for w in words)
    folds = sg.normalization_strategy in (NormalizationStrategy.LOWERCASE, NormalizationStrategy.UPPERCASE)
    return _IdentifierRules(spec, sg, reserved, folds)


@functools.lru_cache(maxsize=65536)  # schema linking renders the same names many times over
def quote_identifier(name: str, dialect: str) -> str:
    """`name` as a query in `dialect` must write it: unchanged when the dialect reads it as written
    unquoted, otherwise quoted in the dialect's quotes ("…" or `…`, the quote doubled inside).

    Quoted are names sqlglot would quote (spaces, punctuation, a leading digit, a word its generator
    knows as reserved in the dialect), reserved words of the dialect, and names a case-folding dialect
    would change (`Name` on PostgreSQL, which reads unquoted `Name` as `name`)."""
    rules = _identifier_rules(dialect)
    sqlglot_keeps_it = exp.to_identifier(name).sql(dialect=rules.sqlglot, identify=False) == name
    folded = rules.folds_case and rules.sqlglot.case_sensitive(name)
    if sqlglot_keeps_it and name.lower() not in rules.reserved and not folded:
        return name
    return rules.spec.quote(name)


def quote_table_name(table: Table, dialect: str) -> str:
    """The table's name as a query in `dialect` writes it; a namespace prefix (`sales.orders`, from
    `Table.schema`) is quoted apart from the name."""
    if table.schema and table.name.startswith(table.schema + "."):
        return quote_identifier(table.schema, dialect) + "." + quote_identifier(
            table.name[len(table.schema) + 1 :], dialect
        )
    return quote_identifier(table.name, dialect)


def quote_column_ref(schema: Schema, table: str, column: str) -> str:
    """`table.column` as a query on `schema` writes it, each part quoted where its dialect needs it
    (`table`, the exact name of one of `schema`'s tables, for its namespace; another is one name)."""
    found = next((t for t in schema.tables if t.name == table), None)
    name = quote_table_name(found, schema.dialect) if found is not None else quote_identifier(table, schema.dialect)
    return f"{name}.{quote_identifier(column, schema.dialect)}"


def _format_sample(value: object, max_chars: int) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    text = value.isoformat(sep=" ") if isinstance(value, _dt.datetime) else str(value)
    if len(text) > max_chars:
        text = text[: max(1, max_chars - 1)] + "…"
    return "'" + text.replace("'", "\\'") + "'"


def _row_label(count: int | None) -> str:
    if count is None:
        return ""
    return f" ({count} row)" if count == 1 else f" ({count} rows)"


def _select_tables(schema: Schema, tables: Iterable[str] | None) -> list[Table]:
    if tables is None:
        return list(schema.tables)
    wanted = {t.lower() for t in tables}
    return [t for t in schema.tables if t.name.lower() in wanted]


def _render_column(column: Column, dialect: str, samples: bool, max_chars: int) -> str:
    name = quote_identifier(column.name, dialect)
    parts = [f"{name}:{column.type}" if column.type else name]
    if column.primary_key:
        parts.append("Primary Key")
    if column.comment:
        parts.append(" ".join(column.comment.split()))
    if samples and column.samples:
        parts.append("Examples: [" + ", ".join(_format_sample(v, max_chars) for v in column.samples) + "]")
    return "(" + ", ".join(parts) + ")"


def render_schema(
    schema: Schema,
    *,
    samples: bool = True,
    max_sample_chars: int = DEFAULT_MAX_SAMPLE_CHARS,
    tables: Iterable[str] | None = None,
) -> str:
    """The schema as compact M-Schema-like text for prompts: one `# Table:` block per table with its
    row count and comment, one `(name:TYPE, Primary Key, comment, Examples: [...])` line per column,
    then the foreign keys as `table.column=ref_table.ref_column`. Names are written as a query in the
    schema's dialect must write them (`quote_identifier`), so plain names appear as they are. `tables`
    limits the output to those tables (by name, case-insensitive); `samples=False` leaves the example
    values out."""
    chosen = _select_tables(schema, tables)
    lines: list[str] = []
    if schema.name:
        lines.append(f"【DB_ID】 {schema.name}")
    if schema.description:
        lines.append(" ".join(schema.description.split()))
    lines.append("【Schema】")
    for table in chosen:
        header = f"# Table: {quote_table_name(table, schema.dialect)}{_row_label(table.row_count)}"
        if table.comment:
            header += ", " + " ".join(table.comment.split())
        lines.append(header)
        lines.append("[")
        lines.extend(_render_column(c, schema.dialect, samples, max_sample_chars) + "," for c in table.columns)
        lines.append("]")
    names = {t.name.lower() for t in chosen}
    fk_lines = [
        f"{quote_column_ref(schema, table.name, col)}={quote_column_ref(schema, fk.ref_table, ref)}"
        for table in chosen
        for fk in table.foreign_keys
        if fk.ref_table.lower() in names
        for col, ref in zip(fk.columns, fk.ref_columns, strict=False)
    ]
    if fk_lines:
        lines.append("【Foreign keys】")
        lines.extend(fk_lines)
    return "\n".join(lines)


class _DDLWriter:
    """Writes CREATE TABLE statements for one dialect."""

    def __init__(self, spec: type[Dialect]) -> None:
        self.spec = spec

    def ident(self, name: str) -> str:
        return quote_identifier(name, self.spec.name)

    def table_name(self, table: Table) -> str:
        return quote_table_name(table, self.spec.name)

    def ref_name(self, name: str, schema: Schema) -> str:
        ref = schema.table(name)
        return self.table_name(ref) if ref is not None else self.ident(name)

    def literal(self, text: str) -> str:
        text = " ".join(text.split()).replace("'", "''")
        if self.spec.comment_style == "inline":  # MySQL strings also treat backslash as an escape
            text = text.replace("\\", "\\\\")
        return f"'{text}'"

    def create(self, table: Table, schema: Schema) -> str:
        inline = self.spec.comment_style == "inline"
        body: list[str] = []
        for c in table.columns:
            line = self.ident(c.name) + (f" {c.type}" if c.type else "")
            if not c.nullable and not c.primary_key:
                line += " NOT NULL"
            if inline and c.comment:
                line += f" COMMENT {self.literal(c.comment)}"
            body.append(line)
        if table.primary_key:
            body.append("PRIMARY KEY (" + ", ".join(self.ident(c) for c in table.primary_key) + ")")
        for fk in table.foreign_keys:
            body.append(
                "FOREIGN KEY (" + ", ".join(self.ident(c) for c in fk.columns) + ") REFERENCES "
                + self.ref_name(fk.ref_table, schema)
                + " (" + ", ".join(self.ident(c) for c in fk.ref_columns) + ")"
            )
        lines = [f"CREATE TABLE {self.table_name(table)} ("]
        if self.spec.comment_style == "sql_comment":
            # No COMMENT syntax: keep descriptions as SQL comments so the model still sees them.
            comments = {c.name: c.comment for c in table.columns if c.comment}
            for i, item in enumerate(body):
                sep = "," if i < len(body) - 1 else ""
                name = table.columns[i].name if i < len(table.columns) else None
                note = f" -- {' '.join(comments[name].split())}" if name in comments else ""
                lines.append(f"  {item}{sep}{note}")
        else:
            lines.extend(f"  {item}," for item in body[:-1])
            lines.append(f"  {body[-1]}" if body else "")
        closing = ")"
        if inline and table.comment:
            closing += f" COMMENT={self.literal(table.comment)}"
        lines.append(closing + ";")
        text = "\n".join(lines)
        if self.spec.comment_style == "sql_comment" and table.comment:
            text = f"-- {' '.join(table.comment.split())}\n{text}"
        if self.spec.comment_style == "comment_on":
            name = self.table_name(table)
            if table.comment:
                text += f"\nCOMMENT ON TABLE {name} IS {self.literal(table.comment)};"
            for c in table.columns:
                if c.comment:
                    text += f"\nCOMMENT ON COLUMN {name}.{self.ident(c.name)} IS {self.literal(c.comment)};"
        return text


def render_ddl(schema: Schema, *, tables: Iterable[str] | None = None) -> str:
    """The schema as plain CREATE TABLE statements in its dialect (with primary and foreign keys, and
    comments in the dialect's own syntax), one blank line between tables."""
    writer = _DDLWriter(get_dialect(schema.dialect))
    return "\n\n".join(writer.create(t, schema) for t in _select_tables(schema, tables))
