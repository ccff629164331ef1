"""Stage 1 of synthesis: SQL at OmniSQL's complexity levels, kept only when it runs and says something.

    ctx = database_context(db, "shop")                       # schema rendering + a few rows per table
    request = plan_sql_request(ctx, "moderate", 0, seed=0)   # functions, column count, focus: from the seed
    attempt = synthesize_sql(llm, db, ctx, request)          # generate, guard, run, filter
    attempt = dedupe(attempt, kept_templates)                # new template, or rejected as a duplicate

A query is kept when the guard accepts it, it runs within the timeout, its result is within the row cap,
non-empty and not degenerate (:func:`degenerate_reason`), and its template (:func:`sql_template`) is new
among the queries already kept for that database. Every rejection carries one of `REJECTIONS`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from sqlwright.db.base import Database
from sqlwright.db.guard import check_sql
from sqlwright.db.render import quote_table_name, render_schema
from sqlwright.db.result import Result
from sqlwright.db.schema import Schema
from sqlwright.errors import QueryFailed, QueryRefused, QueryTimeout, SqlwrightError
from sqlwright.eval.compare import has_top_level_order_by, normalize_value, sort_key
from sqlwright.llm.base import LLM
from sqlwright.pipeline.bare_names import quote_bare_names
from sqlwright.pipeline.extract import parse_reply
from sqlwright.pipeline.generate import sqlglot_dialect
from sqlwright.synth.prompts import LEVELS, dialect_functions, sql_messages, sql_shared_prefix

log = logging.getLogger(__name__)

# Why a generated query was not kept, in the order the filters apply.
REJECTIONS: tuple[str, ...] = (
    "unparsable",  # the reply holds no SQL, or sqlglot cannot parse it into a template
    "refused",  # the guard refused it (not one read-only statement)
    "error",  # the database raised an error
    "timeout",  # it ran past the time limit
    "too_large",  # more rows than the row cap: its result could not be compared whole
    "empty",  # no rows
    "degenerate",  # only NULLs, or one value repeated in every cell
    "duplicate",  # its template is one already kept for the database
)

SAMPLE_ROWS = 3  # rows shown per table in the prompt
MAX_SAMPLE_TABLES = 40
MAX_SAMPLE_COLUMNS = 12
MAX_CELL_CHARS = 40
FUNCTIONS_PER_PROMPT = 5
MAX_COLUMN_COUNT = 6
COLUMN_COUNT_P = 0.6  # OmniSQL draws the target column count from a geometric distribution (p = 0.6)
DEFAULT_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 400
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_ROWS = 1000  # the ask pipeline's own cap: a verified answer can equal at most this many rows


def item_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from the run's `seed` and an item's identity (database, level, index, stage):
    the same item gets the same seed in every run, whatever ran before it."""
    text = "\0".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


# --- the database, as the prompt shows it ----------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseContext:
    """What the prompts show of one database: its schema rendering and a few rows of each table."""

    name: str
    dialect: str
    schema: Schema
    schema_text: str
    rows_text: str


def _cell(value: object) -> str:
    text = "NULL" if value is None else str(normalize_value(value))
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def sample_rows_text(db: Database, schema: Schema, *, rows: int = SAMPLE_ROWS, timeout: float = 5.0) -> str:
    """Up to `rows` rows of each table (of the first MAX_SAMPLE_TABLES), as `a | b | c` lines under the
    table's name, read through the guard with a row cap. A table that cannot be read is left out."""
    blocks: list[str] = []
    for table in schema.tables[:MAX_SAMPLE_TABLES]:
        name = quote_table_name(table, schema.dialect)
        try:
            result = db.execute(f"SELECT * FROM {name} LIMIT {rows}", timeout=timeout, max_rows=rows)
        except SqlwrightError as exc:
            log.debug("no sample rows of %s: %s", table.name, exc)
            continue
        if not result.rows:
            continue
        columns = list(result.columns[:MAX_SAMPLE_COLUMNS])
        more = " | …" if len(result.columns) > MAX_SAMPLE_COLUMNS else ""
        lines = [f"# {name}", " | ".join(columns) + more]
        lines += [" | ".join(_cell(v) for v in row[:MAX_SAMPLE_COLUMNS]) + more for row in result.rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def database_context(db: Database, name: str, *, rows: int = SAMPLE_ROWS) -> DatabaseContext:
    """The prompt material of `db` (introspected once; sample rows read with a row cap)."""
    schema = db.schema()
    return DatabaseContext(name, db.dialect, schema, render_schema(schema), sample_rows_text(db, schema, rows=rows))


# --- one request ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SqlRequest:
    """What one generated query is asked to be. Everything random in it comes from `seed`."""

    database: str
    level: str
    index: int
    seed: int  # the item's seed (also the model's sampling seed)
    functions: tuple[str, ...]
    column_count: int
    focus_table: str | None

    @property
    def id(self) -> str:
        return item_id(self.database, self.level, self.index)


def item_id(database: str, level: str, index: int) -> str:
    """The id of the `index`-th query at `level` for `database`: the key of every stage's record."""
    return f"{database}/{level}/{index}"


def plan_sql_request(ctx: DatabaseContext, level: str, index: int, *, seed: int) -> SqlRequest:
    """The request for the `index`-th query at `level`: a few of the dialect's functions, a target column
    count (geometric, as OmniSQL draws it) and a table to build around (spreads queries over the schema),
    all drawn from the item's seed."""
    if level not in LEVELS:
        raise ValueError(f"unknown complexity level {level!r}")
    own = item_seed(seed, ctx.name, level, index)
    rng = random.Random(own)
    functions = dialect_functions(ctx.dialect)
    chosen = tuple(rng.sample(functions, k=min(FUNCTIONS_PER_PROMPT, len(functions))))
    columns = 1
    while columns < MAX_COLUMN_COUNT and rng.random() > COLUMN_COUNT_P:
        columns += 1
    tables = [quote_table_name(t, ctx.dialect) for t in ctx.schema.tables]
    focus = rng.choice(tables) if tables else None
    return SqlRequest(ctx.name, level, index, own, chosen, columns, focus)


# --- generation -------------------------------------------------------------------------------------------
def shared_prefix(llm: LLM, prefix: str) -> dict:
    """`shared_prefix=prefix` for a backend that keeps prompt states (the embedded one: every item of a
    database then skips the prefill of its schema and rows), nothing for others."""
    return {"shared_prefix": prefix} if getattr(llm, "supports_shared_prefix", False) else {}


@dataclass(frozen=True)
class SqlDraft:
    sql: str | None  # None: the reply holds no SQL
    reply: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def generate_sql(llm: LLM, ctx: DatabaseContext, request: SqlRequest, *,
                 temperature: float = DEFAULT_TEMPERATURE, max_tokens: int = DEFAULT_MAX_TOKENS) -> SqlDraft:
    """Ask the model for the query `request` describes (one sample at `temperature`, seeded by the item)."""
    messages = sql_messages(dialect=ctx.dialect, schema_text=ctx.schema_text, rows_text=ctx.rows_text,
                            level=request.level, functions=request.functions,
                            column_count=request.column_count, focus_table=request.focus_table)
    start = time.perf_counter()
    [completion] = llm.complete(messages, n=1, temperature=temperature, max_tokens=max_tokens, seed=request.seed,
                                **shared_prefix(llm, sql_shared_prefix(schema_text=ctx.schema_text,
                                                                       rows_text=ctx.rows_text)))
    return SqlDraft(parse_reply(completion.text).sql, completion.text, completion.prompt_tokens,
                    completion.completion_tokens, time.perf_counter() - start)


# --- filters ----------------------------------------------------------------------------------------------
def degenerate_reason(rows: Sequence[Sequence[object]]) -> str | None:
    """"empty" when there is no row (or no column); "degenerate" when every cell is NULL, or when there are
    at least two cells and all of them hold one and the same value (`SELECT 1 FROM t`, a constant repeated
    down a column and across columns; 1 and 1.0 are the same value, True and 1 are not); None otherwise.
    A single non-NULL cell (a count, a maximum) is an answer, not a degenerate one."""
    cells = [normalize_value(v) for row in rows for v in row]
    if not cells:
        return "empty"
    if all(v is None for v in cells):
        return "degenerate"
    first = cells[0]
    if len(cells) > 1 and all(v == first and isinstance(v, bool) == isinstance(first, bool) for v in cells):
        return "degenerate"
    return None


def _placeholder(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal | exp.Boolean):
        return exp.Placeholder()
    return node


def _collapse(node: exp.Expression) -> exp.Expression:
    """After literals became placeholders: `-?` is `?`, and `IN (?, ?, ?)` is `IN (?)` (the number of
    constants in a list does not make another query)."""
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Placeholder):
        return exp.Placeholder()
    if isinstance(node, exp.In) and node.expressions and all(isinstance(e, exp.Placeholder) for e in node.expressions):
        node.set("expressions", [exp.Placeholder()])
    return node


def sql_template(sql: str, dialect: str) -> str:
    """`sql` with every literal (number, string, boolean) replaced by a placeholder, unquoted identifiers
    normalised as `dialect` reads them, and keywords, spacing and comments as sqlglot renders them in
    `dialect`. Two queries that differ only in their constants have the same template.
    Raises ValueError when sqlglot cannot parse `sql`."""
    glot = sqlglot_dialect(dialect)
    try:
        tree = sqlglot.parse_one(sql, read=glot)
        tree = normalize_identifiers(tree.transform(_placeholder).transform(_collapse), dialect=glot)
        return tree.sql(dialect=glot, normalize=True, comments=False)
    except (SqlglotError, ValueError, KeyError, RecursionError) as exc:
        raise ValueError(f"cannot parse the query as {dialect}: {type(exc).__name__}") from exc


def _plain(value: object) -> object:
    value = normalize_value(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value.is_integer():  # 3.0 and 3 are the same answer (drivers differ)
            return int(value)
        return round(value, 6)
    return value


def result_hash(rows: Sequence[Sequence[object]], sql: str, dialect: str) -> str:
    """sha256 of the normalised result rows: cells as plain JSON values (floats rounded to 6 decimals,
    integral floats as integers), rows sorted unless `sql` orders its result (top-level ORDER BY)."""
    plain = [[_plain(v) for v in row] for row in rows]
    if not has_top_level_order_by(sql, sqlglot_dialect(dialect)):
        plain.sort(key=lambda row: tuple(sort_key(v) for v in row))
    text = json.dumps(plain, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SqlAttempt:
    """One generated query and what the filters made of it."""

    request: SqlRequest
    draft: SqlDraft
    kept: bool
    reason: str | None = None  # one of REJECTIONS when not kept
    detail: str | None = None  # the error message, for refused / error / timeout
    sql: str | None = None  # the statement as it ran (guard-trimmed; bare names quoted if that made it run)
    template: str | None = None
    columns: tuple[str, ...] = ()
    row_count: int = 0
    result_hash: str | None = None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _run(db: Database, sql: str, timeout: float, max_rows: int) -> tuple[str, Result]:
    """(the statement that ran, its result): `sql`, or `sql` with the bare names quoted when only that runs."""
    try:
        return sql, db.execute(sql, timeout=timeout, max_rows=max_rows)
    except QueryTimeout:
        raise
    except QueryFailed:
        # small models drop the quotes that names with spaces or keywords need; the pipeline retries so too
        quoted = quote_bare_names(sql, db.schema())
        if quoted is None:
            raise
        return quoted, db.execute(quoted, timeout=timeout, max_rows=max_rows)


def check_query(db: Database, sql: str | None, *, timeout: float = DEFAULT_TIMEOUT,
                max_rows: int = DEFAULT_MAX_ROWS) -> tuple[bool, dict]:
    """Run `sql` through every filter but the duplicate one: (kept, fields of a SqlAttempt)."""
    if sql is None:
        return False, {"reason": "unparsable", "detail": "the reply holds no SQL query"}
    try:
        statement = check_sql(sql, db.dialect)
    except QueryRefused as exc:
        return False, {"reason": "refused", "detail": _one_line(exc), "sql": sql}
    try:
        statement, result = _run(db, statement, timeout, max_rows)
    except QueryTimeout as exc:
        return False, {"reason": "timeout", "detail": _one_line(exc), "sql": statement}
    except QueryRefused as exc:  # the bare-name retry was refused (never expected: quoting adds no statement)
        return False, {"reason": "refused", "detail": _one_line(exc), "sql": statement}
    except SqlwrightError as exc:
        return False, {"reason": "error", "detail": _one_line(exc), "sql": statement}
    fields: dict = {"sql": statement, "columns": tuple(str(c) for c in result.columns),
                    "row_count": result.row_count}
    if result.truncated:
        return False, {**fields, "reason": "too_large", "detail": f"more than {max_rows} rows"}
    degenerate = degenerate_reason(result.rows)
    if degenerate is not None:
        return False, {**fields, "reason": degenerate}
    try:
        template = sql_template(statement, db.dialect)
    except ValueError as exc:
        return False, {**fields, "reason": "unparsable", "detail": str(exc)}
    return True, {**fields, "template": template, "result_hash": result_hash(result.rows, statement, db.dialect)}


def synthesize_sql(llm: LLM, db: Database, ctx: DatabaseContext, request: SqlRequest, *,
                   temperature: float = DEFAULT_TEMPERATURE, max_tokens: int = DEFAULT_MAX_TOKENS,
                   timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS) -> SqlAttempt:
    """Generate the query `request` asks for and filter it (all filters but the duplicate one, which
    needs the queries kept before it: see :func:`dedupe`)."""
    draft = generate_sql(llm, ctx, request, temperature=temperature, max_tokens=max_tokens)
    kept, fields = check_query(db, draft.sql, timeout=timeout, max_rows=max_rows)
    return SqlAttempt(request, draft, kept, **fields)


def dedupe(attempt: SqlAttempt, kept_templates: Container[str]) -> SqlAttempt:
    """`attempt`, rejected as a duplicate when its template is among `kept_templates` (those of the
    queries already kept for its database)."""
    if attempt.kept and attempt.template in kept_templates:
        return replace(attempt, kept=False, reason="duplicate", detail=None)
    return attempt
