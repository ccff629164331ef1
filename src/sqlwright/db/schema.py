"""The schema of a database as plain frozen data: what introspection returns and rendering reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ForeignKey:
    """`columns` of the owning table reference `ref_columns` of `ref_table`."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False
    comment: str | None = None
    samples: tuple[object, ...] = ()  # a few distinct non-null values, bounded query


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    comment: str | None = None
    row_count: int | None = None  # exact for small tables, an estimate where the dialect offers one
    schema: str | None = None  # the namespace (PostgreSQL schema, MySQL database) when not the default

    def column(self, name: str) -> Column | None:
        low = name.lower()
        return next((c for c in self.columns if c.name.lower() == low), None)


@dataclass(frozen=True)
class Schema:
    dialect: str  # registered dialect name: sqlite, postgres, mysql, duckdb
    tables: tuple[Table, ...]
    name: str | None = None  # database name, when known
    description: str | None = field(default=None, compare=False)

    def table(self, name: str) -> Table | None:
        low = name.lower()
        return next((t for t in self.tables if t.name.lower() == low), None)

    def subset(self, keep: dict[str, set[str] | None]) -> Schema:
        """A schema with only the tables in `keep`; for each, only the named columns (None: all).
        Primary-key and foreign-key columns are kept so that joins stay expressible."""
        tables = []
        for t in self.tables:
            cols = keep.get(t.name)
            if t.name not in keep:
                continue
            if cols is None:
                tables.append(t)
                continue
            wanted = {c.lower() for c in cols} | {c.lower() for c in t.primary_key}
            for fk in t.foreign_keys:
                if fk.ref_table in keep:
                    wanted |= {c.lower() for c in fk.columns}
            fks = tuple(fk for fk in t.foreign_keys if fk.ref_table in keep)
            tables.append(
                Table(t.name, tuple(c for c in t.columns if c.name.lower() in wanted), t.primary_key,
                      fks, t.comment, t.row_count, t.schema)
            )
        return Schema(self.dialect, tuple(tables), self.name, self.description)
