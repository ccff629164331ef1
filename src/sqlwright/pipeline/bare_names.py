"""Quote the schema's names that a model's SQL writes without the quotes they need.

The schema rendering shows `"order details"` and `"Unit Price"` quoted, yet small models copy the words
and drop the quotes (`SELECT SUM(Unit Price) FROM order details`), which no engine can read. Such a name
is recognised in the SQL's unquoted text (outside string literals, quoted identifiers and comments) and
quoted as the dialect needs. Reserved words (`select`) and names holding quote characters (`it's`) are
left alone: written bare they cannot be told from SQL. The executor tries the quoted query only when the
model's own fails, so a query that ran is never changed.
"""

from __future__ import annotations

import functools
import re

from sqlwright.db.render import quote_identifier
from sqlwright.db.schema import Schema

_QUOTE_CHARS = "\"'`"
# String literals, quoted identifiers and comments: text in which no bare name is looked for.
_SKIPPED = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`(?:[^`]|``)*`?|--[^\n]*|/\*.*?(?:\*/|\Z)", re.S)


def _fixable(name: str, dialect: str) -> bool:
    """A name that needs quoting and that, written bare, is still recognisable as itself."""
    if any(c in name for c in _QUOTE_CHARS) or not name.strip():
        return False
    if quote_identifier(name, dialect) == name:
        return False
    # a reserved word alone reads as SQL (`SELECT select`); quoting only because of it is not fixable
    return quote_identifier(name.lower(), dialect) == name.lower() or not re.fullmatch(r"\w+", name)


@functools.lru_cache(maxsize=64)
def _matcher(names: tuple[str, ...], dialect: str) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """One pattern matching any of the fixable `names` bare (case-insensitive, any run of spaces between
    words, longest first), and the quoted form of each by its lower-cased, space-normalised text."""
    quoted: dict[str, str] = {}
    alternatives: list[str] = []
    # `name` is a plain column of one table and `"Name"` of another (PostgreSQL): a bare `name` is the former
    plain = {name.lower() for name in names if quote_identifier(name, dialect) == name}
    for name in sorted(set(names), key=len, reverse=True):
        key = " ".join(name.lower().split())
        if not _fixable(name, dialect) or key in quoted or key in plain:
            continue
        quoted[key] = quote_identifier(name, dialect)
        body = r"\s+".join(re.escape(word) for word in name.split())
        start = r"(?<![\w$])" if re.match(r"\w", name) else ""
        end = r"(?![\w$])" if re.search(r"\w$", name) else ""
        alternatives.append(start + body + end)
    if not alternatives:
        return None, quoted
    return re.compile("|".join(alternatives), re.IGNORECASE), quoted


def quote_bare_names(sql: str, schema: Schema) -> str | None:
    """`sql` with the schema's table and column names that need quoting, written bare, quoted in the
    schema's dialect; None when there is none."""
    names = tuple(
        part
        for t in schema.tables
        for part in ((t.name[len(t.schema) + 1 :], t.schema) if t.schema and t.name.startswith(t.schema + ".")
                     else (t.name,))
    ) + tuple(c.name for t in schema.tables for c in t.columns)
    pattern, quoted = _matcher(names, schema.dialect)
    if pattern is None:
        return None
    pieces: list[str] = []
    position = 0
    for skipped in _SKIPPED.finditer(sql):
        pieces.append(_quote_in(sql[position:skipped.start()], pattern, quoted))
        pieces.append(skipped.group())
        position = skipped.end()
    pieces.append(_quote_in(sql[position:], pattern, quoted))
    fixed = "".join(pieces)
    return fixed if fixed != sql else None


def _quote_in(text: str, pattern: re.Pattern[str], quoted: dict[str, str]) -> str:
    return pattern.sub(lambda m: quoted[" ".join(m.group().lower().split())], text)
