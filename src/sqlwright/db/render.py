"""Schema rendering for prompts: a compact M-Schema-like text (`render_schema`) and plain DDL
(`render_ddl`). Both are deterministic: the same Schema always renders to the same text."""

from __future__ import annotations

import datetime as _dt
import decimal
import re
from collections.abc import Iterable

import sqlglot

from sqlwright.db.dialects import Dialect, get_dialect
from sqlwright.db.schema import Column, Schema, Table

DEFAULT_MAX_SAMPLE_CHARS = 40
_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Words reserved in at least one supported dialect (SQL:2016 core and SQLite/PostgreSQL/MySQL
# reserved words); a column called `order` must be quoted everywhere.
_RESERVED = frozenset(
    ["ADD", "ALL", "ALTER", "ANALYZE", "AND", "ANY", "ARRAY", "AS", "ASC", "ASYMMETRIC", "BETWEEN", "BOTH", "BY", "CASE", "CAST", "CHECK", "COLLATE", "COLUMN", "CONSTRAINT", "CREATE", "CROSS", "CURRENT_DATE", "CURRENT_ROLE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER", "DATABASE", "DEFAULT", "DEFERRABLE", "DELETE", "DESC", "DISTINCT", "DO", "DROP", "ELSE", "END", "ESCAPE", "EXCEPT", "EXISTS", "FALSE", "FETCH", "FILTER", "FOR", "FOREIGN", "FROM", "FULL", "GRANT", "GROUP", "GROUPS", "HAVING", "IF", "IGNORE", "IN", "INDEX", "INNER", "INSERT", "INTERSECT", "INTERVAL", "INTO", "IS", "ISNULL", "JOIN", "KEY", "KEYS", "LATERAL", "LEADING", "LEFT", "LIKE", "LIMIT", "LOCALTIME", "LOCALTIMESTAMP", "NATURAL", "NOT", "NOTNULL", "NULL", "OFFSET", "ON", "ONLY", "OR", "ORDER", "OUTER", "OVER", "OVERLAPS", "PARTITION", "PLACING", "PRIMARY", "RANGE", "REFERENCES", "REPLACE", "RETURNING", "RIGHT", "ROW", "ROWS", "SELECT", "SESSION_USER", "SET", "SOME", "SYMMETRIC", "TABLE", "TABLESAMPLE", "THEN", "TO", "TRAILING", "TRUE", "UNION", "UNIQUE", "UPDATE", "USER", "USING", "VALUES", "VARIADIC", "WHEN", "WHERE", "WINDOW", "WITH"]
)


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


def _render_column(column: Column, samples: bool, max_chars: int) -> str:
    parts = [f"{column.name}:{column.type}" if column.type else column.name]
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
    then the foreign keys as `table.column=ref_table.ref_column`. `tables` limits the output to
    those tables (by name, case-insensitive); `samples=False` leaves the example values out."""
    chosen = _select_tables(schema, tables)
    lines: list[str] = []
    if schema.name:
        lines.append(f"【DB_ID】 {schema.name}")
    if schema.description:
        lines.append(" ".join(schema.description.split()))
    lines.append("【Schema】")
    for table in chosen:
        header = f"# Table: {table.name}{_row_label(table.row_count)}"
        if table.comment:
            header += ", " + " ".join(table.comment.split())
        lines.append(header)
        lines.append("[")
        lines.extend(_render_column(c, samples, max_sample_chars) + "," for c in table.columns)
        lines.append("]")
    names = {t.name.lower() for t in chosen}
    fk_lines = [
        f"{table.name}.{col}={fk.ref_table}.{ref}"
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
        tokenizer = sqlglot.Dialect.get_or_raise(spec.sqlglot).tokenizer_class
        self.keywords = {k.upper() for k in tokenizer.KEYWORDS if " " not in k} | _RESERVED

    def ident(self, name: str) -> str:
        if _SIMPLE_NAME.match(name) and name.upper() not in self.keywords:
            return name
        return self.spec.quote(name)

    def table_name(self, table: Table) -> str:
        if table.schema and table.name.startswith(table.schema + "."):
            return self.ident(table.schema) + "." + self.ident(table.name[len(table.schema) + 1 :])
        return self.ident(table.name)

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
