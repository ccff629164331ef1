"""sqlwright as an MCP server (the official `mcp` SDK 2.x, `MCPServer`): the ask pipeline and the guarded SQL
runner offered to AI agents as tools, and each database's schema as a resource.

    server = build_mcp_server(DatabaseSet.open(["sample"], settings), settings)
    run_stdio(server)                                   # `sqlwright mcp sample`
    run_http(server, host="127.0.0.1", port=8000, token=None, allow_hosts=())   # `… --http`

Tools: `ask` (a question in English -> SQL and its rows), `generate_sql` (the SQL and its confidence),
`run_sql` (SQL the agent wrote), `validate_sql`, `search_schema`, `describe_table`, `list_databases`, and
`add_example` only when the server is started with it. Every tool but add_example is read-only and says
so (readOnlyHint). SQL from any source goes through the same two walls as the model's (the read-only
connection and the guard), with the same timeout and row cap; a refusal is a tool error with the reason.

The model loads on the first `ask` or `generate_sql`, so the SQL tools work without one, and a model that
cannot load is a tool error, not a dead server. Tools run on the SDK's worker threads; one lock per
database and one for the model keep each used by one thread at a time. A question the client cancels (or
abandons by going away) stops the model at its next token.
"""

# No `from __future__ import annotations`: the SDK reads each tool's signature when it is registered, and
# the tools' argument types are built at run time (the database names go into their descriptions).

import difflib
import functools
import inspect
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

import sqlwright
from sqlwright.config import Settings
from sqlwright.db import Database, Schema, check_sql, database_key, render_schema, schema_fingerprint
from sqlwright.db.base import MAX_ROWS_LIMIT
from sqlwright.errors import (
    ConfigError,
    ExampleRejected,
    QueryFailed,
    QueryRefused,
    SqlwrightError,
    StateStoreError,
    UserError,
)
from sqlwright.llm import LLM, load_llm
from sqlwright.llm.base import raise_if_stopped
from sqlwright.pipeline import Answer, AskOptions, Engine
from sqlwright.pipeline.ask import checked_question, require_tables
from sqlwright.serve.databases import DatabaseSet
from sqlwright.serve.security import RequestGuard, allowed_host_names, check_bind
from sqlwright.store import StateStore, open_state_store
from sqlwright.store.jsonsafe import json_safe

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TOOL_ROWS = 100  # rows a tool returns unless asked for more: an agent's context is small
MAX_SEARCH_MATCHES = 100
MCP_PATH = "/mcp"

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)
ADDS_EXAMPLE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                               open_world_hint=False)


# --- what the tools return (structured content; the SDK derives each tool's output schema) ----------
class QueryResult(BaseModel):
    db: str
    sql: str
    columns: list[str]
    rows: list[list[Any]]
    row_count: int = Field(description="Rows returned here (at most max_rows).")
    truncated: bool = Field(description="True when the query had more rows than were returned.")
    seconds: float


class AskResult(BaseModel):
    db: str
    question: str
    sql: str | None = Field(description="The SQL that answers the question (None when it abstained).")
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    confidence: float = Field(description="Share of the SQL candidates that agreed on this result (0-1).")
    abstained: bool = Field(description="True when sqlwright declined to answer; `reason` says why.")
    reason: str | None


class GeneratedSql(BaseModel):
    db: str
    question: str
    sql: str | None
    confidence: float
    abstained: bool
    reason: str | None


class Validation(BaseModel):
    db: str
    valid: bool = Field(description="True when the statement would be run: one read-only query.")
    sql: str | None = Field(description="The statement as it would run (trailing ';' and comments trimmed).")
    reason: str | None = Field(description="Why it is refused (None when valid).")


class SchemaMatch(BaseModel):
    table: str
    column: str | None = Field(description="None when the table itself matched.")
    type: str | None
    matched: Literal["name", "comment", "sample value"]
    text: str = Field(description="The text that matched.")


class SchemaSearch(BaseModel):
    db: str
    term: str
    matches: list[SchemaMatch]
    truncated: bool


class ColumnInfo(BaseModel):
    name: str
    type: str
    nullable: bool
    primary_key: bool
    comment: str | None
    samples: list[Any]


class ForeignKeyInfo(BaseModel):
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


class TableInfo(BaseModel):
    db: str
    name: str
    comment: str | None
    row_count: int | None
    primary_key: list[str]
    columns: list[ColumnInfo]
    foreign_keys: list[ForeignKeyInfo]
    text: str = Field(description="The table as the model sees it in its prompt.")


class DatabaseInfo(BaseModel):
    name: str
    dialect: str
    tables: list[str]


class DatabaseList(BaseModel):
    databases: list[DatabaseInfo]


class ExampleInfo(BaseModel):
    db: str
    id: int
    question: str
    sql: str


def _rows(rows: Iterable[Iterable[object]], limit: int) -> list[list[Any]]:
    return [[json_safe(v) for v in row] for row, _ in zip(rows, range(limit), strict=False)]


class SqlwrightTools:
    """What the MCP tools do, apart from the protocol. Each method raises sqlwright's own errors (a refusal,
    an unknown database, a model that cannot load), which the tools turn into tool errors. The model
    answers one question at a time; a database serves one call at a time (a question holds it while the
    model works, since its candidates run between model calls)."""

    def __init__(self, databases: DatabaseSet, settings: Settings, *, llm: LLM | None = None,
                 options: AskOptions | None = None, llm_loader: Callable[[], LLM] | None = None) -> None:
        self.databases = databases
        self.settings = settings
        self.options = options
        self._llm = llm
        self._llm_loader = llm_loader or (lambda: load_llm(settings.model, settings))
        self._engine: Engine | None = None
        self._store: StateStore | None = None
        self._model_lock = threading.Lock()  # the Engine (one model) answers one question at a time
        self._store_lock = threading.Lock()
        self._db_locks = {name: threading.Lock() for name in databases.names}

    # --- plumbing --------------------------------------------------------------------------------
    def _database(self, db: str | None) -> tuple[str, Database]:
        database = self.databases.get(db or None)
        return (db or self.databases.names[0]), database

    def _max_rows(self, max_rows: int) -> int:
        return max(1, min(max_rows, self.settings.max_rows))

    def store(self) -> StateStore:
        """The state store (examples and notes), opened on first use."""
        with self._store_lock:
            if self._store is None:
                self._store = open_state_store(self.settings)
            return self._store

    def _examples_store(self) -> StateStore | None:
        try:
            return self.store()
        except StateStoreError as exc:  # the examples are an aid: answer without them
            log.warning("answering without stored examples: %s", exc)
            return None

    def engine(self) -> Engine:
        """The Engine, its model loaded on first use (call with the model lock held). A model that cannot
        load raises its error each time it is asked for, so a fixed setup works without a restart."""
        if self._engine is None:
            llm = self._llm if self._llm is not None else self._llm_loader()
            self._engine = Engine(llm, self.options, cache_dir=self.settings.cache_dir,
                                  max_question_chars=self.settings.max_question_chars,
                                  store=self._examples_store())
        return self._engine

    def _answer(self, question: str, db: str | None, evidence: str | None,
                cancel: Callable[[], bool] | None) -> tuple[str, Answer]:
        name, database = self._database(db)
        # What the caller got wrong is refused before the model loads.
        question, evidence = checked_question(question, evidence, self.settings.max_question_chars)
        with self._db_locks[name]:
            require_tables(database.schema(), database.url)
        with self._model_lock:
            raise_if_stopped(cancel)  # given up while it waited for the model
            engine = self.engine()
            with self._db_locks[name]:
                return name, engine.ask(database, question, evidence=evidence, cancel=cancel)

    def _schema(self, name: str, database: Database) -> Schema:
        with self._db_locks[name]:
            return database.schema()

    # --- the tools -------------------------------------------------------------------------------
    def ask(self, question: str, db: str | None = None, evidence: str | None = None,
            max_rows: int = DEFAULT_TOOL_ROWS, cancel: Callable[[], bool] | None = None) -> AskResult:
        """`cancel` is polled while the model works; when it returns True, Cancelled is raised."""
        name, answer = self._answer(question, db, evidence, cancel)
        limit = self._max_rows(max_rows)
        return AskResult(db=name, question=answer.question, sql=answer.sql, columns=list(answer.columns),
                         rows=_rows(answer.rows, limit), row_count=min(len(answer.rows), limit),
                         truncated=answer.truncated or len(answer.rows) > limit,
                         confidence=answer.confidence, abstained=answer.abstained, reason=answer.reason)

    def generate_sql(self, question: str, db: str | None = None, evidence: str | None = None,
                     cancel: Callable[[], bool] | None = None) -> GeneratedSql:
        name, answer = self._answer(question, db, evidence, cancel)
        return GeneratedSql(db=name, question=answer.question, sql=answer.sql, confidence=answer.confidence,
                            abstained=answer.abstained, reason=answer.reason)

    def run_sql(self, sql: str, db: str | None = None, max_rows: int = DEFAULT_TOOL_ROWS) -> QueryResult:
        name, database = self._database(db)
        limit = self._max_rows(max_rows)
        with self._db_locks[name]:
            result = database.execute(sql, timeout=self.settings.timeout, max_rows=limit)
        return QueryResult(db=name, sql=sql, columns=list(result.columns), rows=_rows(result.rows, limit),
                           row_count=min(len(result.rows), limit), truncated=result.truncated,
                           seconds=round(result.seconds, 4))

    def validate_sql(self, sql: str, db: str | None = None) -> Validation:
        name, database = self._database(db)
        try:
            checked = check_sql(sql, database.dialect)
        except QueryRefused as exc:
            return Validation(db=name, valid=False, sql=None, reason=str(exc))
        return Validation(db=name, valid=True, sql=checked, reason=None)

    def search_schema(self, term: str, db: str | None = None) -> SchemaSearch:
        name, database = self._database(db)
        needle = term.strip().lower()
        if not needle:
            raise ConfigError("give a term to search for: part of a table or column name, a comment or a value")
        matches: list[SchemaMatch] = []

        def add(table: str, column: str | None, type_: str | None, matched: str, text: object) -> None:
            matches.append(SchemaMatch(table=table, column=column, type=type_, matched=matched, text=str(text)))

        for table in self._schema(name, database).tables:
            if needle in table.name.lower():
                add(table.name, None, None, "name", table.name)
            elif table.comment and needle in table.comment.lower():
                add(table.name, None, None, "comment", table.comment)
            for column in table.columns:
                if needle in column.name.lower():
                    add(table.name, column.name, column.type, "name", column.name)
                elif column.comment and needle in column.comment.lower():
                    add(table.name, column.name, column.type, "comment", column.comment)
                else:
                    value = next((s for s in column.samples if needle in str(s).lower()), None)
                    if value is not None:
                        add(table.name, column.name, column.type, "sample value", json_safe(value))
        return SchemaSearch(db=name, term=term, matches=matches[:MAX_SEARCH_MATCHES],
                            truncated=len(matches) > MAX_SEARCH_MATCHES)

    def describe_table(self, table: str, db: str | None = None) -> TableInfo:
        name, database = self._database(db)
        schema = self._schema(name, database)
        found = schema.table(table.strip())
        if found is None:
            raise UserError(_unknown_table(table, name, [t.name for t in schema.tables]))
        return TableInfo(
            db=name, name=found.name, comment=found.comment, row_count=found.row_count,
            primary_key=list(found.primary_key),
            columns=[ColumnInfo(name=c.name, type=c.type, nullable=c.nullable, primary_key=c.primary_key,
                                comment=c.comment, samples=[json_safe(s) for s in c.samples])
                     for c in found.columns],
            foreign_keys=[ForeignKeyInfo(columns=list(fk.columns), ref_table=fk.ref_table,
                                         ref_columns=list(fk.ref_columns)) for fk in found.foreign_keys],
            text=render_schema(schema.subset({found.name: None})),
        )

    def list_databases(self) -> DatabaseList:
        infos = []
        for name, database in self.databases.items():
            infos.append(DatabaseInfo(name=name, dialect=database.dialect,
                                      tables=[t.name for t in self._schema(name, database).tables]))
        return DatabaseList(databases=infos)

    def schema_text(self, db: str) -> str:
        """A database's schema as the model sees it (the `schema://{db}` resource)."""
        name, database = self._database(db)
        return render_schema(require_tables(self._schema(name, database), database.url))

    def add_example(self, question: str, sql: str, db: str | None = None) -> ExampleInfo:
        """Store a question with the SQL that answers it; the SQL must pass the guard and run."""
        name, database = self._database(db)
        question, _ = checked_question(question, None, self.settings.max_question_chars)
        with self._db_locks[name]:
            try:
                checked = check_sql(sql, database.dialect)
                database.execute(checked, timeout=self.settings.timeout, max_rows=1)
            except QueryRefused as exc:
                raise ExampleRejected(f"the SQL is refused: {exc}") from exc
            except QueryFailed as exc:
                raise ExampleRejected(f"the SQL does not run: {exc}") from exc
            key, fingerprint = database_key(database), schema_fingerprint(database.schema())
        stored = self.store().add_example(key, fingerprint, question, checked, source="taught")
        return ExampleInfo(db=name, id=stored.id, question=stored.question, sql=stored.sql)

    def close(self) -> None:
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None
        self.databases.close()


def _unknown_table(table: str, db: str, names: list[str]) -> str:
    close = difflib.get_close_matches(table.lower(), {n.lower(): n for n in names}, n=1, cutoff=0.6)
    hint = ""
    if close:
        hint = f"; did you mean {next(n for n in names if n.lower() == close[0])!r}?"
    shown = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
    return f"no table named {table!r} in {db}{hint} (tables: {shown or 'none'})"


def _tool_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """sqlwright's errors as tool errors: the caller (a model) reads the one-line reason and can fix its
    call; anything else is a crash the SDK reports without its text."""

    def check(kwargs: dict[str, Any]) -> None:
        for name, value in kwargs.items():
            if isinstance(value, str) and name != "sql":  # the guard refuses such SQL with its own reason
                _check_unicode(value, name)

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            check(kwargs)
            try:
                return await fn(*args, **kwargs)
            except SqlwrightError as exc:
                raise ToolError(" ".join(str(exc).split())) from exc

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(kwargs)
        try:
            return fn(*args, **kwargs)
        except SqlwrightError as exc:
            raise ToolError(" ".join(str(exc).split())) from exc

    return wrapper


async def in_thread_until_cancelled(work: Callable[[Callable[[], bool]], T]) -> T:
    """`work(cancel)` on a worker thread. When the request is cancelled (the client cancels it or goes
    away), the caller returns at once and `cancel()` turns True, so the model stops at its next token."""
    stop = threading.Event()
    try:
        return await anyio.to_thread.run_sync(lambda: work(stop.is_set), abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        stop.set()
        raise


def _check_unicode(text: str, what: str) -> None:
    """Refuse text JSON cannot carry back (a lone surrogate, which JSON's \\ud800 escape can deliver): the
    tools echo their arguments, and the reply could not be written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"the {what} is not valid Unicode text (a lone surrogate at position {exc.start})") from None


def _instructions(tools: SqlwrightTools) -> str:
    names = ", ".join(f"{name} ({db.dialect})" for name, db in tools.databases.items())
    return (
        f"sqlwright answers questions about these databases, read-only: {names}. Find tables and columns "
        "with search_schema and describe_table (or read the schema://<db> resource); ask a question in "
        "English with ask (the SQL and its rows) or generate_sql (the SQL only); run your own SQL with "
        "run_sql. Only one read-only query (SELECT) runs; anything else is refused with the reason. "
        "Results are capped (max_rows); `truncated` says when more rows exist."
    )


def build_mcp_server(databases: DatabaseSet, settings: Settings, *, llm: LLM | None = None,
                     options: AskOptions | None = None, allow_examples: bool = False,
                     llm_loader: Callable[[], LLM] | None = None) -> MCPServer:
    """The MCP server over `databases`. `llm` gives a ready model (tests, notebooks); otherwise
    settings.model loads on the first question (or `llm_loader` makes it). `allow_examples` adds the
    add_example tool, which writes to sqlwright's state store (never to the databases)."""
    tools = SqlwrightTools(databases, settings, llm=llm, options=options, llm_loader=llm_loader)
    server: MCPServer = MCPServer("sqlwright", title="sqlwright", version=sqlwright.__version__,
                                  instructions=_instructions(tools), log_level="WARNING")
    server.sqlwright_tools = tools  # type: ignore[attr-defined]  # for closing and for tests
    names = databases.names
    single = len(names) == 1
    db_arg = Annotated[str | None, Field(
        description=f"The database, one of: {', '.join(names)}" + (" (may be omitted)." if single else "."))]
    rows_arg = Annotated[int, Field(ge=1, le=MAX_ROWS_LIMIT, description=(
        f"Rows to return at most (default {DEFAULT_TOOL_ROWS}; the server caps it at {settings.max_rows})."))]
    question_arg = Annotated[str, Field(description="The question, in plain English.")]
    evidence_arg = Annotated[str | None, Field(description="Extra knowledge: definitions, hints.")]
    sql_arg = Annotated[str, Field(description="One read-only SQL statement in the database's dialect.")]

    @_tool_errors
    async def ask(question: question_arg, db: db_arg = None, evidence: evidence_arg = None,
                  max_rows: rows_arg = DEFAULT_TOOL_ROWS) -> AskResult:
        """Answer a question about a database: sqlwright's model writes SQL (several candidates, executed
        read-only and voted on) and returns the SQL, its columns and rows, and its confidence. It may
        abstain (abstained, reason) rather than guess."""
        return await in_thread_until_cancelled(lambda cancel: tools.ask(question, db, evidence, max_rows, cancel))

    @_tool_errors
    async def generate_sql(question: question_arg, db: db_arg = None,
                           evidence: evidence_arg = None) -> GeneratedSql:
        """Write the SQL that answers a question, with its confidence, without returning rows (the
        candidates are still executed read-only to choose among them)."""
        return await in_thread_until_cancelled(lambda cancel: tools.generate_sql(question, db, evidence, cancel))

    @_tool_errors
    def run_sql(sql: sql_arg, db: db_arg = None, max_rows: rows_arg = DEFAULT_TOOL_ROWS) -> QueryResult:
        """Run one read-only SQL query you wrote, with the same guard, timeout and row cap as the model's
        SQL. Anything but a single read-only query (writes, DDL, several statements, file or server
        functions) is refused with the reason."""
        return tools.run_sql(sql, db, max_rows)

    @_tool_errors
    def validate_sql(sql: sql_arg, db: db_arg = None) -> Validation:
        """Check SQL without running it: whether the guard accepts it as one read-only query in the
        database's dialect (it parses), and if not, why."""
        return tools.validate_sql(sql, db)

    @_tool_errors
    def search_schema(term: Annotated[str, Field(description="Part of a table or column name, a comment "
                                                 "or a value.")],
                      db: db_arg = None) -> SchemaSearch:
        """Find the tables and columns whose name, comment or sample values contain a term."""
        return tools.search_schema(term, db)

    @_tool_errors
    def describe_table(table: Annotated[str, Field(description="The table's name.")],
                       db: db_arg = None) -> TableInfo:
        """Describe one table: columns with types, keys, comments and sample values, foreign keys, row count."""
        return tools.describe_table(table, db)

    @_tool_errors
    def list_databases() -> DatabaseList:
        """The databases this server offers, with their dialects and tables."""
        return tools.list_databases()

    for fn in (ask, generate_sql, run_sql, validate_sql, search_schema, describe_table, list_databases):
        server.add_tool(fn, annotations=READ_ONLY)

    if allow_examples:
        @_tool_errors
        def add_example(question: question_arg, sql: sql_arg, db: db_arg = None) -> ExampleInfo:
            """Teach sqlwright: store a question with the SQL that answers it, shown to the model for similar
            questions later. The SQL must pass the guard and run. Writes to sqlwright's own store, never to
            the database."""
            return tools.add_example(question, sql, db)

        server.add_tool(add_example, annotations=ADDS_EXAMPLE)

    for name in names:
        server.add_resource(FunctionResource.from_function(
            fn=_schema_reader(tools, name), uri=f"schema://{name}", name=f"{name} schema",
            title=f"Schema of {name}", mime_type="text/plain",
            description=f"The tables, columns, keys and sample values of {name}, as the model sees them."))
    return server


def _schema_reader(tools: SqlwrightTools, name: str) -> Callable[[], str]:
    def read() -> str:
        try:
            return tools.schema_text(name)
        except SqlwrightError as exc:
            raise ResourceError(" ".join(str(exc).split())) from exc

    return read


def close_mcp_server(server: MCPServer) -> None:
    """Close the databases and the state store behind a server built by build_mcp_server."""
    tools = getattr(server, "sqlwright_tools", None)
    if tools is not None:
        tools.close()


# --- transports ----------------------------------------------------------------------------------------
def run_stdio(server: MCPServer) -> None:
    """Serve over stdin/stdout until the client closes stdin. The SDK points fd 1 at stderr while it
    serves, so stray output (a library's print) cannot corrupt the protocol."""
    server.run("stdio")


def _sdk_security(allowed: tuple[str, ...] | None) -> TransportSecuritySettings:
    """The SDK's own Host and Origin checks, agreeing with RequestGuard's allow-list (which answers first,
    with a clearer message); they add the Origin check a browser's cross-site request would fail."""
    if allowed is None:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [f"[{h}]" if ":" in h else h for h in allowed]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *(f"{h}:*" for h in hosts)],
        allowed_origins=[f"{scheme}://{h}{port}" for h in hosts for scheme in ("http", "https")
                         for port in ("", ":*")],
    )


def mcp_http_app(server: MCPServer, *, host: str, token: str | None, allow_hosts: Iterable[str] = ()) -> Any:
    """The streamable HTTP app (at /mcp) behind RequestGuard: bearer token, Host allow-list, body cap."""
    allowed = allowed_host_names(host, allow_hosts)
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=_sdk_security(allowed),
                                     host=host)
    return RequestGuard(app, token=token, allowed_hosts=allowed, public_paths=())


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: a free port), or ConfigError naming the problem in one line."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host in ("", "::") else 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def run_http(server: MCPServer, *, host: str, port: int, token: str | None, allow_hosts: Iterable[str] = (),
             on_ready: Callable[[str], None] | None = None) -> None:
    """Serve streamable HTTP at http://host:port/mcp until interrupted. check_bind first: beyond loopback
    only with a token. `on_ready` gets the URL once the socket listens (port 0 picks a free one)."""
    import uvicorn

    check_bind(host, token)
    app = mcp_http_app(server, host=host, token=token, allow_hosts=allow_hosts)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    if on_ready is not None:
        on_ready(f"http://{shown}:{bound_port}{MCP_PATH}")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


__all__ = [
    "SqlwrightTools",
    "build_mcp_server",
    "close_mcp_server",
    "mcp_http_app",
    "run_http",
    "run_stdio",
]

