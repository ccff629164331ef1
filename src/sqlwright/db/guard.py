"""The guard: the second wall of the safety model (the first is the read-only connection).

`check_sql` parses a statement with sqlglot in the database's dialect and accepts exactly one
read-only query (SELECT, WITH ... SELECT, UNION / INTERSECT / EXCEPT, VALUES). Everything else is
refused with a `QueryRefused` whose message says why: writes, DDL, PRAGMA, ATTACH, COPY, SET,
transactions, several statements, data-modifying CTEs, SELECT INTO, locking reads, and calls to
functions that touch files, the server, sessions, sequences or the clock (pg_read_file, lo_import,
load_extension, sleep, read_csv, nextval, ...). Because the check runs on the parse tree, comments
and letter case cannot hide anything from it.

The guard fails closed: a statement it cannot check completely (too long, too deeply nested for the
parser, not valid text, or anything the parser chokes on) is refused, never passed through and never
allowed to raise anything but `QueryRefused`.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import cache, lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

from sqlwright.db.dialects import get_dialect
from sqlwright.errors import QueryRefused, SqlwrightError


class _QuietFallbacks(logging.Filter):
    """sqlglot warns each time it parses an unknown statement as a Command; the guard refuses those
    anyway, so the warning is noise in every evaluation log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_QuietFallbacks())

# sqlglot's tokenizer and parser are pure Python: 10-40 s per MB of dense tokens on a busy core. Longer
# text is refused before parsing so that the guard answers in bounded time (a few seconds at worst);
# benchmark gold queries and model output are a few KB.
MAX_STATEMENT_CHARS = 100_000
# Only statements this short are remembered by the check's cache (8192 entries x 2 copies of the text).
_CACHED_STATEMENT_CHARS = 4_096

# The whitespace every server skips between tokens (see _check_between_tokens).
_SERVER_WHITESPACE = frozenset(" \t\n\r\x0b\x0c")

# Statement kinds that may form the whole statement.
_ALLOWED_ROOTS: tuple[type[exp.Expression], ...] = (exp.Query, exp.Values)


def _node_types(*names: str) -> dict[type, str]:
    return {getattr(exp, n): n for n in names if hasattr(exp, n)}


# Statements that are not queries but read-only; named in the refusal so the user knows what was seen.
_NAMED_STATEMENTS = {"Describe", "Show", "Summarize", "Explain", "Pivot"}

# Node types refused anywhere in the tree, with the words used in the refusal.
_REFUSED_NODES: dict[type, str] = {
    cls: label
    for cls, label in {
        **_node_types("Insert", "Update", "Delete", "Merge", "TruncateTable", "LoadData"),
        **_node_types("Create", "Drop", "Alter", "Comment", "Analyze", "Grant", "Revoke"),
        **_node_types("Pragma", "Attach", "Detach", "Copy", "Set", "Use", "Kill", "Install", "Export"),
        **_node_types("Transaction", "Commit", "Rollback", "Command", "Cache", "Uncache", "Refresh"),
        **_node_types("Into", "Lock", "Declare", "Execute"),
    }.items()
}

_NODE_REASONS = {
    "Insert": "writes data (INSERT)",
    "Update": "writes data (UPDATE)",
    "Delete": "writes data (DELETE)",
    "Merge": "writes data (MERGE)",
    "TruncateTable": "writes data (TRUNCATE)",
    "LoadData": "loads a file (LOAD DATA)",
    "Create": "changes the schema (CREATE)",
    "Drop": "changes the schema (DROP)",
    "Alter": "changes the schema (ALTER)",
    "Comment": "changes the schema (COMMENT)",
    "Analyze": "is a maintenance command (ANALYZE)",
    "Grant": "changes privileges (GRANT)",
    "Revoke": "changes privileges (REVOKE)",
    "Pragma": "is a PRAGMA",
    "Attach": "attaches a database file (ATTACH)",
    "Detach": "detaches a database (DETACH)",
    "Copy": "copies data to or from files or programs (COPY)",
    "Set": "changes session settings (SET)",
    "Use": "switches database (USE)",
    "Kill": "kills a session (KILL)",
    "Install": "installs an extension (INSTALL)",
    "Export": "exports data (EXPORT)",
    "Transaction": "controls transactions",
    "Commit": "controls transactions (COMMIT)",
    "Rollback": "controls transactions (ROLLBACK)",
    "Command": "is not a query",
    "Cache": "is not a query (CACHE)",
    "Uncache": "is not a query (UNCACHE)",
    "Refresh": "is not a query (REFRESH)",
    "Into": "writes its result somewhere (SELECT ... INTO)",
    "Lock": "takes row locks (FOR UPDATE / FOR SHARE)",
    "Declare": "declares variables or cursors",
    "Execute": "executes a prepared statement or dynamic SQL",
}

# Functions refused by name (lower case): file, network, server, session, sequence, lock and sleep.
REFUSED_FUNCTIONS: frozenset[str] = frozenset(
    {
        # PostgreSQL: files, large objects, server administration, settings, sequences, xids
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_file_write",
        "pg_file_rename", "pg_file_unlink", "pg_logdir_ls", "lo_import", "lo_export", "lo_from_bytea",
        "lo_put", "lo_get", "lo_create", "lo_creat", "lo_unlink", "lo_open", "lo_write", "lo_truncate",
        "lowrite", "loread", "lo_close", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
        "pg_rotate_logfile", "pg_switch_wal", "pg_create_restore_point", "pg_promote",
        "pg_logical_emit_message", "pg_notify", "pg_backup_start", "pg_backup_stop", "pg_start_backup",
        "pg_stop_backup", "pg_import_system_collations", "pg_create_logical_replication_slot",
        "pg_create_physical_replication_slot", "pg_drop_replication_slot", "pg_replication_origin_create",
        "pg_export_snapshot", "pg_current_xact_id", "txid_current", "txid_current_if_assigned",
        "pg_current_xact_id_if_assigned", "set_config", "nextval", "setval", "currval", "lastval",
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
        "cursor_to_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
        "schema_to_xml", "schema_to_xml_and_xmlschema", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
        "pg_advisory_lock", "pg_advisory_xact_lock", "pg_try_advisory_lock", "pg_try_advisory_xact_lock",
        "pg_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_all",
        # SQLite
        "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "fsdir", "zipfile",
        "sqlite_dbpage", "sqlar_compress", "sqlar_uncompress",
        # MySQL / MariaDB
        "sleep", "benchmark", "load_file", "sys_exec", "sys_eval", "get_lock", "release_lock",
        "release_all_locks", "is_free_lock", "is_used_lock", "master_pos_wait", "source_pos_wait",
        "master_gtid_wait", "wait_for_executed_gtid_set",
        # DuckDB: file readers and scanners, environment, dynamic SQL
        "glob", "sniff_csv", "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata",
        "parquet_kv_metadata", "iceberg_scan", "iceberg_metadata", "delta_scan", "sqlite_scan",
        "sqlite_attach", "postgres_scan", "postgres_attach", "postgres_query", "postgres_execute",
        "mysql_query", "mysql_execute", "getenv", "query", "query_table", "read_text", "read_blob",
        "csv_scan", "install_extension",
    }
)
# Families refused by prefix.
REFUSED_FUNCTION_PREFIXES: tuple[str, ...] = (
    "dblink", "pg_sleep", "pg_read", "pg_ls_", "pg_file", "lo_", "pg_advisory", "pg_try_advisory",
    "read_csv", "read_parquet", "read_json", "read_ndjson", "read_xlsx", "pg_stat_reset",
    "pg_replication", "pg_create_", "pg_drop_", "sys_", "http_",
)

# DuckDB reads files named in FROM ('data.csv', "s3://..."): a table name that looks like a path.
_PATHLIKE_TABLE = re.compile(r"[/\\:*?]|\.(csv|tsv|parquet|json|jsonl|ndjson|txt|gz|zst|xlsx|db|duckdb|sqlite3?)$", re.I)


@cache
def _refused_label(node_type: type) -> str | None:
    """The refusal label of a node type, matching subclasses of refused types too (cached per type)."""
    return next((_REFUSED_NODES[c] for c in node_type.__mro__ if c in _REFUSED_NODES), None)


def _first_line(text: str) -> str:
    return " ".join(text.split())


def _check_text(sql: str) -> None:
    """Refuse text the drivers cannot send as it was checked: a NUL ends a C string early in some client
    libraries (the server would run less than the guard saw), and a lone surrogate cannot be encoded."""
    if "\x00" in sql:
        raise QueryRefused("Refused: the statement contains a NUL character.")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryRefused(
            f"Refused: the statement is not valid Unicode text (a lone surrogate at position {exc.start})."
        ) from exc


def _where(sql: str, index: int) -> str:
    line = sql.count("\n", 0, index) + 1
    column = index - sql.rfind("\n", 0, index)
    return f"line {line}, column {column}"


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, '')}".strip()


def _check_between_tokens(sql: str, tokens: list[Token], tokenizer: type[Tokenizer], dialect: str) -> None:
    """Refuse text that sqlglot skips but the database reads, so that the server never runs anything the
    guard did not see. Between tokens only ASCII whitespace and the dialect's own comments may stand:
    sqlglot also skips any character Python calls a space (U+00A0, U+3000, ...), which the servers read
    as part of a name, and template comments ({# ... #}), which they read as SQL; and it passes over
    characters it does not know (a backtick in PostgreSQL or DuckDB, where DuckDB quotes names with it).
    MySQL starts a `--` comment only before an ASCII space or control character, sqlglot before any space.
    """
    comments = {
        c if isinstance(c, str) else c[0]: None if isinstance(c, str) else c[1] for c in tokenizer.COMMENTS
    }
    openers = sorted(comments, key=len, reverse=True)
    line_ends = "\n" if tokenizer.COMMENTS_TERMINATE_AT_NEWLINE_ONLY else "\n\r"
    position = 0
    for token in [*tokens, None]:
        gap_end = len(sql) if token is None else token.start
        i = position
        while i < gap_end:
            char = sql[i]
            if char in _SERVER_WHITESPACE:
                i += 1
                continue
            opener = next((o for o in openers if sql.startswith(o, i)), None)
            if opener is None and char.isspace():
                raise QueryRefused(
                    f"Refused: {_describe(char)} at {_where(sql, i)} is not a space in {dialect}, which may "
                    "read it as part of a name; use an ordinary space."
                )
            if opener is None:
                raise QueryRefused(
                    f"Refused: {sql[i : i + 2]!r} at {_where(sql, i)} starts no comment in {dialect}; the "
                    "guard cannot check what would run."
                )
            after = sql[i + len(opener) : i + len(opener) + 1]
            if opener == "--" and tokenizer.DASH_COMMENT_REQUIRES_BOUNDARY and after and ord(after) > 127:
                raise QueryRefused(
                    f"Refused: '--' followed by {_describe(after)} at {_where(sql, i)} is not a comment in "
                    f"{dialect}; put an ordinary space after '--'."
                )
            closer = comments[opener]
            if closer is None:  # a line comment
                i = min([gap_end] + [j for j in (sql.find(e, i, gap_end) for e in line_ends) if j != -1])
            else:
                i = _block_comment_end(sql, i, opener, closer, tokenizer.NESTED_COMMENTS, gap_end)
        if token is not None:
            if token.start < position or token.end < token.start:  # spans out of order: nothing to rely on
                raise QueryRefused(f"Refused: the statement could not be checked as {dialect} (token spans).")
            if token.token_type == TokenType.UNKNOWN:
                raise QueryRefused(
                    f"Refused: unexpected {token.text!r} at {_where(sql, token.start)}; {dialect} may read "
                    "it differently from the guard."
                )
            position = token.end + 1


def _block_comment_end(sql: str, start: int, opener: str, closer: str, nested: bool, limit: int) -> int:
    """The index just past the block comment opened at `start` (nested comments as sqlglot counts them)."""
    depth, i = 1, start + len(opener)
    while i < limit:
        if sql.startswith(closer, i):
            depth -= 1
            i += len(closer)
            if not depth:
                return i
        elif nested and sql.startswith(opener, i):
            depth += 1
            i += len(opener)
        else:
            i += 1
    return limit


def _function_names(node: exp.Func) -> list[str]:
    if isinstance(node, exp.Anonymous):
        this = node.this  # a quoted name ("pg_read_file"(...)) is an Identifier
        return [(this.name if isinstance(this, exp.Identifier) else str(this)).lower()]
    return [n.lower() for n in type(node).sql_names()]


def _refused_function(name: str) -> bool:
    return name in REFUSED_FUNCTIONS or name.startswith(REFUSED_FUNCTION_PREFIXES)


@lru_cache(maxsize=16)
def _sqlglot_dialect(dialect: str) -> tuple[sqlglot.Dialect, bool, bool]:
    """The sqlglot dialect for a registered dialect name, and its guard flags."""
    spec = get_dialect(dialect)
    return sqlglot.Dialect.get_or_raise(spec.sqlglot), spec.executable_comments, spec.file_table_scans


def check_sql(sql: str, dialect: str) -> str:
    """Accept exactly one read-only statement in `dialect` and return it, trimmed of trailing `;`,
    whitespace and trailing comments. Raise QueryRefused (one line, with the reason) otherwise."""
    if sql and len(sql) > MAX_STATEMENT_CHARS:
        raise QueryRefused(
            f"Refused: the statement is {len(sql):,} characters long; "
            f"at most {MAX_STATEMENT_CHARS:,} are checked."
        )
    if sql and len(sql) > _CACHED_STATEMENT_CHARS:
        return _check_sql_failing_closed(sql, dialect)
    return _cached_check_sql(sql, dialect)


@lru_cache(maxsize=8192)  # evaluations run the same statements again and again; refusals are not cached
def _cached_check_sql(sql: str, dialect: str) -> str:
    return _check_sql_failing_closed(sql, dialect)


def _check_sql_failing_closed(sql: str, dialect: str) -> str:
    """`_check_sql`, with any failure of sqlglot (or of the checks over its tree) turned into a refusal:
    a statement the guard could not inspect completely must not run, and must not crash the caller."""
    try:
        return _check_sql(sql, dialect)
    except SqlwrightError:
        raise
    except RecursionError as exc:  # sqlglot's parser recurses a few dozen Python frames per nesting level
        raise QueryRefused("Refused: the statement is too deeply nested to check.") from exc
    except Exception as exc:  # a sqlglot bug on odd input; fail closed rather than pass it through
        raise QueryRefused(
            f"Refused: the statement could not be parsed as {dialect} ({type(exc).__name__})."
        ) from exc


def _check_sql(sql: str, dialect: str) -> str:
    glot, executable_comments, file_table_scans = _sqlglot_dialect(dialect)
    if not sql or not sql.strip():
        raise QueryRefused("Refused: the statement is empty.")
    _check_text(sql)
    try:
        tokens = glot.tokenize(sql)
        statements = [
            s for s in glot.parser().parse(tokens, sql) if s is not None and not isinstance(s, exp.Semicolon)
        ]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        where = f" (line {err.get('line')}, column {err.get('col')})" if err.get("line") else ""
        desc = _parse_error_words(err.get("description") or str(exc))
        raise QueryRefused(f"Refused: could not parse the SQL as {dialect}: {_first_line(desc)}{where}.") from exc
    except TokenError as exc:
        raise QueryRefused(f"Refused: could not parse the SQL as {dialect}: {_first_line(str(exc))}.") from exc

    if not statements:
        raise QueryRefused("Refused: no statement found (only comments or semicolons).")
    if len(statements) > 1:
        raise QueryRefused(f"Refused: {len(statements)} statements given; only one statement is allowed.")

    if executable_comments:
        # MySQL/MariaDB run the text inside /*! ... */ and /*M! ... */ comments.
        for token in tokens:
            for comment in token.comments:
                if comment.lstrip().startswith(("!", "M!")):
                    raise QueryRefused("Refused: MySQL executable comments (/*! ... */) are not allowed.")

    statement = statements[0]
    for node in statement.walk():
        label = _refused_label(type(node))
        if label is not None:
            reason = _NODE_REASONS.get(label, label)
            if label == "Command":  # sqlglot's fallback for statements it does not model: name the keyword
                reason = f"is a {str(node.this).upper()} command, not a query"
            raise QueryRefused(f"Refused: the statement {reason}; only read-only queries run.")
        if isinstance(node, exp.Func):
            for name in _function_names(node):
                if _refused_function(name):
                    raise QueryRefused(
                        f"Refused: function {name}() is not allowed (file, server, session or sleep access)."
                    )
        if (
            file_table_scans
            and isinstance(node, exp.Table)
            and isinstance(node.this, exp.Identifier)
            and _PATHLIKE_TABLE.search(node.name)
        ):
            raise QueryRefused(f"Refused: {node.name!r} looks like a file path; reading files is not allowed.")

    if not isinstance(statement, _ALLOWED_ROOTS):
        kind = type(statement).__name__
        what = f"a {kind.upper()} statement" if kind in _NAMED_STATEMENTS else "not a SELECT query"
        raise QueryRefused(f"Refused: the statement is {what}; only SELECT queries run.")

    # Last, as it matters only for a statement that would run (and sqlglot's token spans are reliable
    # only for what it did not fall back to a Command for).
    _check_between_tokens(sql, tokens, glot.tokenizer_class, dialect)

    # Trim after the statement's last real token: drops trailing ';', whitespace and comments.
    last = next((t for t in reversed(tokens) if t.token_type != sqlglot.TokenType.SEMICOLON), None)
    return sql[: last.end + 1].strip() if last is not None else sql.strip()


_MISSING_PART = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")


def _parse_error_words(description: str) -> str:
    """sqlglot's description of a parse error, without its internals: "Required keyword: 'this' missing
    for <class 'sqlglot.expressions.core.Where'>" becomes "incomplete SQL: WHERE lacks its operand"."""
    match = _MISSING_PART.search(description)
    if match is None:
        return description
    part = "operand" if match.group(1) in ("this", "expression") else match.group(1).replace("_", " ")
    node = match.group(2)
    word = _NODE_WORDS.get(node, node.upper())
    return f"incomplete SQL: {word} lacks its {part}"


_NODE_WORDS = {"Neg": "a minus sign", "Not": "NOT", "Order": "ORDER BY", "Group": "GROUP BY",
               "Paren": "a parenthesis", "Cast": "CAST"}


def split_statements(sql: str, dialect: str) -> list[str]:
    """Split text holding several statements at the `;` that end them (not those inside strings or
    comments), returning each statement's text, trimmed. Raises QueryRefused if it cannot tokenize."""
    glot = _sqlglot_dialect(dialect)[0]
    try:
        tokens = glot.tokenize(sql)
    except TokenError as exc:
        raise QueryRefused(f"Refused: could not parse the SQL as {dialect}: {_first_line(str(exc))}.") from exc
    except Exception as exc:  # a sqlglot bug on odd input: refused like any text it cannot read
        raise QueryRefused(
            f"Refused: the SQL could not be parsed as {dialect} ({type(exc).__name__})."
        ) from exc
    parts: list[str] = []
    start: int | None = None
    end = 0
    for token in tokens:
        if token.token_type == sqlglot.TokenType.SEMICOLON:
            if start is not None:
                parts.append(sql[start : end + 1].strip())
            start = None
            continue
        if start is None:
            start = token.start
        end = token.end
    if start is not None:
        parts.append(sql[start : end + 1].strip())
    return parts
