"""Fuzzing the guard with Hypothesis: random text, token soup, and mutated statements (the hostile corpus,
ordinary reads, and one statement per expression kind sqlglot knows) with comments everywhere, deep
nesting, huge literals, odd Unicode and stacked statements, in every dialect.

Three properties. The guard either accepts or raises a `SqlwrightError` (a refusal), nothing else, whatever
the input. Whatever it accepts, run through `Database.execute` on the real database of that dialect, fails
(if at all) with a `SqlwrightError` and leaves the database unchanged: the checksum of its catalog and of
every table's rows (DuckDB: the file's bytes) is the same afterwards. And the database never runs what the
guard did not see: a function the guard refuses is made observable (a tripwire), hidden in statements
behind comment, quote and space tricks, and must never fire after the guard accepted.

The runs are derandomized (the same examples on every run) and bounded to a few seconds per test.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from functools import cache

import pytest
import sqlglot
from hostile_sql import HOSTILE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from sqlwright.db import check_sql
from sqlwright.db.guard import MAX_STATEMENT_CHARS
from sqlwright.errors import SqlwrightError

DIALECTS = ("sqlite", "postgres", "mysql", "duckdb")

FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays stable, a failure reproduces
    database=None,  # nothing saved under .hypothesis/ in the repository
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large
    ],
    print_blob=False,
)

# Reads of the test schema (tests/conftest.py) valid in every dialect: mutated, many stay valid and run.
READS = [
    "SELECT * FROM singer",
    "SELECT name, age FROM singer WHERE age > 30 ORDER BY age DESC LIMIT 3",
    "SELECT country, count(*) AS n FROM singer GROUP BY country HAVING count(*) > 1",
    "WITH t AS (SELECT age FROM singer) SELECT max(age) AS oldest FROM t",
    "SELECT s.name, c.concert_name FROM singer s JOIN singer_in_concert sc ON s.singer_id = sc.singer_id "
    "JOIN concert c ON c.concert_id = sc.concert_id",
    "SELECT name FROM singer UNION SELECT concert_name FROM concert",
    "SELECT count(*) FROM nums WHERE n % 7 = 0",
    "SELECT CASE WHEN age > 40 THEN 'old' ELSE 'young' END AS band FROM singer",
    "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)",
    "SELECT body, payload FROM notes WHERE id = 1",
    "SELECT 'it''s' AS quote, 1.5 AS num, NULL AS nothing",
    "SELECT (SELECT max(year) FROM concert) - min(age) AS x FROM singer",
]

# Fragments inserted anywhere: statement keywords, writes, quote and comment openers, separators, and
# characters that tokenizers and servers may read differently.
FRAGMENTS = [
    ";", "; ", "(", ")", "'", '"', "`", "[", "]", "$$", "$q$", "--", "-- x\n", "/*", "*/", "/* ; */", "#",
    "# x\n", "/*!", "/*! DROP TABLE singer */", "/*M!", "\\", "\\'", ",", ".", "*", "=", ":=", "::", "@",
    "@@", "?", "%s", "$1", "\n", "\r", "\t", "\x0b", "\x0c", "\x00", "\ufeff", "\u200b", "\u202e", "\u00a0",
    "\u2028", "\uff1b", "é", "\U0001d11e", "\ud800",
    "SELECT", "FROM", "WHERE", "UNION ALL SELECT", "INTO", "INTO OUTFILE '/tmp/sqlwright_fuzz'", "FOR UPDATE",
    "LOCK IN SHARE MODE", "RETURNING *", "AS", "ON", "JOIN", "LIMIT 1", "ORDER BY 1", "GROUP BY 1", "VALUES",
    "INSERT INTO singer VALUES (9, 'x', 'y', 1)", "UPDATE singer SET age = 0", "DELETE FROM singer",
    "DROP TABLE notes", "CREATE TABLE evil (x INT)", "ALTER TABLE singer ADD evil INT", "TRUNCATE singer",
    "PRAGMA query_only = OFF", "ATTACH ':memory:' AS evil", "COPY singer TO '/tmp/sqlwright_fuzz'",
    "SET x = 1", "BEGIN", "COMMIT", "ROLLBACK", "CALL f()", "INSTALL httpfs", "LOAD httpfs", "VACUUM", "EXPLAIN",
    "DESCRIBE singer", "SHOW TABLES", "pg_sleep(5)", "sleep(5)", "readfile('/etc/passwd')",
    "read_csv('/etc/passwd')", "nextval('counter')", "load_extension('x')", "'/etc/passwd.csv'",
    "WITH x AS (DELETE FROM singer RETURNING *)",
]

COMMENTS = {
    "sqlite": ["-- {}\n", "/* {} */"],
    "postgres": ["-- {}\n", "/* {} */", "/* /* {} */ */"],
    "mysql": ["-- {}\n", "/* {} */", "# {}\n", "/*!{} */", "/*M!{} */", "/*+ {} */"],
    "duckdb": ["-- {}\n", "/* {} */"],
}

# Any character, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(), max_size=40)


@cache
def statement_kinds(dialect: str) -> tuple[str, ...]:
    """One statement per expression class sqlglot knows, rendered in `dialect`: each class built with
    its required arguments filled in (a table for statements and clauses, columns for functions and
    conditions, which are put in a SELECT so that they reach the database). Statement words sqlglot
    parses (ALTER, PRAGMA, KILL, ...) are added bare and before a table name."""
    kinds, todo = {}, [exp.Expression]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in kinds:
                kinds[sub] = None
                todo.append(sub)
    out: set[str] = set()
    sqlglot_log = logging.getLogger("sqlglot")
    level = sqlglot_log.level
    sqlglot_log.setLevel(logging.ERROR)  # no "unsupported" warning per class rendered
    try:
        for cls in kinds:
            out.update(_render_kind(cls, dialect))
    finally:
        sqlglot_log.setLevel(level)
    parser = sqlglot.Dialect.get_or_raise(dialect).parser_class
    keywords = {token.name.replace("_", " ") for token in parser.STATEMENT_PARSERS}
    out |= {f"{word} singer" for word in keywords} | keywords
    return tuple(sorted(out))


def _render_kind(cls: type[exp.Expression], dialect: str) -> list[str]:
    """`cls` with its required arguments filled in, as SQL in `dialect` (none if it cannot render alone)."""
    this = exp.column("name") if issubclass(cls, exp.Func | exp.Condition) else exp.to_table("singer")
    filler = {"this": this, "expression": exp.Literal.number(1), "expressions": [exp.column("age")]}
    args = {k: filler.get(k, exp.column("age")) for k, required in cls.arg_types.items() if required}
    try:
        text = cls(**args).sql(dialect=dialect)
    except Exception:  # many classes cannot render alone: they are simply skipped
        return []
    if not text:
        return []
    return [f"SELECT {text} FROM singer" if isinstance(this, exp.Column) else text]


def hostile(dialect: str) -> list[str]:
    return [sql for sql, dialects, _ in HOSTILE if dialect in dialects]


# --- mutations: each takes the `draw` of st.data() or @composite and a statement --------------------------
def _position(draw, sql: str) -> int:
    return draw(st.integers(0, len(sql)))


def _boundary(draw, sql: str) -> int:
    """A position between two tokens, most of the time (so that the statement stays valid)."""
    between = [0, len(sql)] + [i for i, c in enumerate(sql) if c in " ,()"]
    return draw(st.sampled_from(between) | st.integers(0, len(sql)))


def insert_fragment(draw, sql: str, dialect: str) -> str:
    at = _position(draw, sql)
    fragment = draw(st.sampled_from(FRAGMENTS) | ANY_TEXT)
    pad = draw(st.sampled_from(["", " ", "\n"]))
    return sql[:at] + pad + fragment + pad + sql[at:]


def insert_comment(draw, sql: str, dialect: str) -> str:
    at = _boundary(draw, sql)
    body = draw(st.sampled_from(["", ";", "DROP TABLE singer", "*/ SELECT 1 /*", "'", "\n"]) | ANY_TEXT)
    return sql[:at] + draw(st.sampled_from(COMMENTS[dialect])).format(body) + sql[at:]


def comments_for_whitespace(draw, sql: str, dialect: str) -> str:
    comment = draw(st.sampled_from(COMMENTS[dialect])).format(draw(st.sampled_from(["", "x", ";"])))
    return re.sub(r"\s+", lambda _: comment if "\n" in comment else " " + comment + " ", sql)


def delete_slice(draw, sql: str, dialect: str) -> str:
    start = _position(draw, sql)
    return sql[:start] + sql[start + draw(st.integers(1, 12)) :]


def duplicate_slice(draw, sql: str, dialect: str) -> str:
    start = _position(draw, sql)
    end = min(len(sql), start + draw(st.integers(1, 30)))
    return sql[:end] + sql[start:end] + sql[end:]


def flip_case(draw, sql: str, dialect: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(sql))


def stack(draw, sql: str, dialect: str) -> str:
    other = draw(st.sampled_from(READS) | st.sampled_from(hostile(dialect)))
    separator = draw(st.sampled_from([";", "; ", ";\n", " ;-- x\n", "\n", " /* ; */ ", ";;", "\uff1b"]))
    return sql + separator + other


def wrap(draw, sql: str, dialect: str) -> str:
    template = draw(
        st.sampled_from(
            [
                "SELECT * FROM ({}) AS w",
                "({})",
                "WITH w AS ({}) SELECT * FROM w",
                "SELECT count(*) FROM ({}) w",
                "SELECT * FROM singer WHERE EXISTS ({})",
                "SELECT 1 UNION ALL {}",
                "EXPLAIN {}",
            ]
        )
    )
    return template.format(sql)


def nest(draw, sql: str, dialect: str) -> str:
    depth = draw(st.integers(1, 12) | st.integers(40, 400))
    return "SELECT * FROM " * draw(st.booleans()) + "(" * depth + sql + ")" * depth


def huge_literal(draw, sql: str, dialect: str) -> str:
    """A long quoted text as a first selected column (a string, or an identifier in some dialects)."""
    room = MAX_STATEMENT_CHARS - len(sql) - 20
    size = draw(st.integers(0, 200) | st.sampled_from([5_000, room, room + 1_000, 2 * MAX_STATEMENT_CHARS]))
    quote = draw(st.sampled_from(["'", '"', "`", "$$"]))
    # Any text in a short literal; a long one of a single character (dense tokens cost seconds per 100 KB).
    unit = draw(st.sampled_from(["x", "é", ";", "\n"]) | (ANY_TEXT if size <= 200 else st.nothing())) or "x"
    literal = quote + (unit * (size // len(unit) + 1))[: max(size, 0)] + quote
    if re.match(r"\s*select\s", sql, re.I) and draw(st.booleans()):
        return re.sub(r"(?i)^\s*select\s", lambda _: f"SELECT {literal} AS big, ", sql)
    at = _boundary(draw, sql)
    return sql[:at] + f" {literal} " + sql[at:]


# Mutations that keep a valid statement valid (so that it reaches the database), and those that break it.
KEEPING: list[Callable[..., str]] = [
    insert_comment, comments_for_whitespace, flip_case, wrap, nest, huge_literal
]
BREAKING: list[Callable[..., str]] = [insert_fragment, delete_slice, duplicate_slice, stack]


def mutated_sql(draw, dialect: str, *bases: list[str]) -> str:
    """A statement from one of `bases` (each as likely), changed by up to three mutations."""
    sql = draw(st.one_of(*(st.sampled_from(base) for base in bases)))
    for _ in range(draw(st.integers(0, 3))):
        sql = draw(st.sampled_from(KEEPING) | st.sampled_from(BREAKING))(draw, sql, dialect)
    return sql


@st.composite
def token_soup(draw) -> str:
    words = draw(st.lists(st.sampled_from(FRAGMENTS) | ANY_TEXT, max_size=30))
    return draw(st.sampled_from([" ", "", "\n", "/**/"])).join(words)


# --- property 1: the guard only ever accepts or refuses ----------------------------------------------------
def guard(sql: str, dialect: str) -> str | None:
    """The statement the guard accepts, or None when it refuses; any other exception fails the test."""
    try:
        accepted = check_sql(sql, dialect)
    except SqlwrightError as exc:
        assert "\n" not in str(exc), "a refusal is one line"
        return None
    assert isinstance(accepted, str) and accepted.strip()
    return accepted


@settings(FUZZ, max_examples=120)
@given(dialect=st.sampled_from(DIALECTS), sql=ANY_TEXT | token_soup())
def test_guard_answers_any_text(dialect, sql):
    guard(sql, dialect)


@settings(FUZZ, max_examples=150)
@given(data=st.data(), dialect=st.sampled_from(DIALECTS))
def test_guard_answers_any_mutated_statement(data, dialect):
    guard(mutated_sql(data.draw, dialect, READS, hostile(dialect), list(statement_kinds(dialect))), dialect)


# --- property 2: what it accepts runs on the real database, which stays unchanged --------------------------
def run_accepted(opened, sql: str) -> bool:
    """Guard `sql` and run what it accepts; True if it ran (successfully or with a SqlwrightError)."""
    accepted = guard(sql, opened.dialect)
    if accepted is None:
        return False
    with contextlib.suppress(SqlwrightError):  # failing is fine: the property is about what else happens
        opened.execute(sql, timeout=1, max_rows=20)
    return True


def test_every_statement_kind_sqlglot_knows(opened, testdb):
    before = testdb.admin.checksum()
    ran = [sql for sql in statement_kinds(testdb.dialect) if run_accepted(opened, sql)]
    assert len(ran) > 200  # most functions and expressions, inside a SELECT
    assert opened.execute("SELECT count(*) FROM singer").rows == ((5,),)
    assert testdb.admin.checksum() == before


@pytest.fixture
def unchanged(opened, testdb):
    """A function checking that the database is as it was when the test began."""
    before = testdb.admin.checksum()

    def check(sql: str) -> None:
        assert testdb.admin.checksum() == before, f"the database changed after: {sql!r}"

    yield check
    assert opened.execute("SELECT count(*) FROM singer").rows == ((5,),)
    check("(the whole test)")


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_accepted_mutations_run_and_leave_the_database_unchanged(opened, unchanged, data):
    sql = mutated_sql(data.draw, opened.dialect, READS, hostile(opened.dialect))
    if run_accepted(opened, sql):
        unchanged(sql)


# --- property 3: the database never runs what the guard did not see ----------------------------------------
class Tripwire:
    """A call the guard refuses, made observable on the database: if it ever runs after the guard
    accepted a statement, the guard read a comment, a string or a space where the database read SQL."""

    def __init__(self, db) -> None:
        self.db = db
        self.hits: list[object] = []
        if db.dialect in ("sqlite", "duckdb"):  # a Python function under a refused name
            self.call = "readfile('tripwire')"
            if db.dialect == "sqlite":
                db.conn.create_function("readfile", 1, self.hits.append)
            else:
                db.conn.create_function("readfile", self._hit, ["VARCHAR"], "VARCHAR", side_effects=True)
        elif db.dialect == "postgres":  # a session setting, changed only by set_config
            self.call = "set_config('sqlwright.tripwire', 'hit', false)"
        else:  # a named lock, taken only by GET_LOCK and kept by the session after its transaction
            self.call = "GET_LOCK('sqlwright_tripwire', 0)"

    def _hit(self, value: str) -> str:
        self.hits.append(value)
        return value

    def fired(self) -> bool:
        """Whether the call ran since the last look (and re-arm it, so that each example stands alone)."""
        if self.db.dialect == "postgres":
            setting = "'sqlwright.tripwire'"
            reset = f"SELECT current_setting({setting}, true), set_config({setting}, '', false)"
            return self.db.execute(reset, guard=False).rows[0][0] == "hit"
        if self.db.dialect == "mysql":
            reset = "SELECT IS_USED_LOCK('sqlwright_tripwire'), RELEASE_ALL_LOCKS()"
            return self.db.execute(reset, guard=False).rows[0][0] is not None
        hit = bool(self.hits)
        self.hits.clear()
        return hit


# Characters that some tokenizers call a space, a line end or nothing, and others part of a name.
ODD_CHARS = [
    "\xa0", "\u3000", "\u2028", "\x85", "\u200b", "\ufeff", "\x1f", "\x0b", "\x0c", "\r", "\x01", "\x7f",
    "\t", " ",
]
# Statements that hide {T} (the tripwire) from one reader or the other; {W} is an odd character.
SMUGGLERS = [
    "SELECT 1 AS a --{W}, {T} AS t\nFROM (SELECT 1 AS `{W}`) s",
    "SELECT 1 AS a --{W}, {T} AS t\nFROM (SELECT 1 AS \"{W}\") s",
    "SELECT 'a' ||{W}$$, {T} AS t, 1 AS b{W}$$ FROM (SELECT 'x' AS \"{W}$$\") s",
    "SELECT 'a' ||{W}$x$, {T} AS t, 1 AS b{W}$x$ FROM (SELECT 'x' AS \"{W}$x$\") s",
    "SELECT {{#\n x {T}}} AS t, -- #}}\n 1 AS a",
    "SELECT 1 AS a {{#{W}, {T} AS t #}}",
    "SELECT 1 AS a #{W}\n, {T} AS t",
    "SELECT 1 AS a -- x{W}, {T} AS t\n",
    "SELECT 1 AS a /* {W} /* */, {T} AS t /* */",
    "SELECT 1 AS a /*{W}*/, {T} AS t",
    "SELECT `{T}` AS t",
    "SELECT 'a{W}\\', {T} AS t --'",
    "SELECT E'\\'{W}, {T} AS t --'",
    "SELECT 1 AS a{W}, {T} AS t",
    "SELECT name{W}--{W}, {T} AS t\n FROM singer",
]
OPENERS = ["--", "-- ", "#", "/*", "{#", "$$", "'", '"', "`", "[", "E'", "/*!", "/*M!", "\\"]
CLOSERS = ["\n", "\r", "*/", "#}", "$$", "'", '"', "`", "]", ""]


@st.composite
def smuggled(draw, call: str, dialect: str) -> str:
    """A statement trying to hide `call`: a random opener and closer around it (each with odd characters
    next to it), or a known trick, mutated."""
    odd = st.sampled_from(ODD_CHARS)
    if draw(st.booleans()):
        sql = draw(st.sampled_from(SMUGGLERS)).format(W=draw(odd), T=call)
        return draw(st.sampled_from(KEEPING))(draw, sql, dialect)
    opener = draw(st.sampled_from(OPENERS)) + draw(odd | st.just(""))
    closer = draw(odd | st.just("")) + draw(st.sampled_from(CLOSERS))
    return f"SELECT name{draw(odd | st.just(''))}{opener}, {call} AS t{closer} FROM singer"


@pytest.fixture
def tripwire(opened) -> Tripwire:
    return Tripwire(opened)


def test_known_smuggling_tricks_never_reach_the_database(opened, unchanged, tripwire):
    for template in SMUGGLERS:
        for odd in ODD_CHARS:
            sql = template.format(W=odd, T=tripwire.call)
            if run_accepted(opened, sql):
                assert not tripwire.fired(), f"accepted, and the database ran the tripwire: {sql!r}"


@settings(FUZZ, max_examples=50)
@given(data=st.data())
def test_the_database_never_runs_what_the_guard_did_not_see(opened, unchanged, tripwire, data):
    sql = data.draw(smuggled(tripwire.call, opened.dialect))
    if run_accepted(opened, sql):
        assert not tripwire.fired(), f"accepted, and the database ran the tripwire: {sql!r}"
        unchanged(sql)


def test_the_tripwire_fires_when_run_without_the_guard(opened, testdb, tripwire):
    sql = f"SELECT {tripwire.call} AS t"
    assert guard(sql, testdb.dialect) is None
    assert not tripwire.fired()
    opened.execute(sql, guard=False)
    assert tripwire.fired()
    assert not tripwire.fired()  # re-armed
