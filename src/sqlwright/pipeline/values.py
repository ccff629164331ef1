"""Value retrieval: find the database's stored spellings of the values a question mentions.

A question says "cote d'ivoire" while the table stores 'Côte d’Ivoire'; a model that never sees the
stored spelling writes a WHERE clause that matches nothing. `ValueIndex` keeps the distinct short text
values of every text column (bounded per column), cached on disk per database fingerprint, and
`ValueIndex.match` finds those whose normalised form equals, fuzzily resembles or contains a phrase of
the question. The matches are shown to the model beside their columns (`render_value_hints`) and
boost those columns in schema linking.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import os
import re
import sqlite3
import tempfile
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from bm25s.stopwords import STOPWORDS_EN_PLUS
from rapidfuzz import fuzz, process
from sqlglot import exp

from sqlwright.db.base import Database
from sqlwright.db.render import quote_column_ref
from sqlwright.db.schema import Column, Schema, Table
from sqlwright.errors import DatabaseError, SqlwrightError

log = logging.getLogger(__name__)

INDEX_FORMAT = 1  # bump when the cache file layout or what is indexed changes

# Words a question uses to ask rather than to name a value: never a value phrase on their own.
QUESTION_WORDS = frozenset(STOPWORDS_EN_PLUS) | {
    "show", "list", "find", "give", "return", "tell", "display", "get", "many", "much", "number",
    "count", "total", "average", "mean", "sum", "maximum", "minimum", "max", "min", "least", "highest",
    "lowest", "largest", "smallest", "order", "ordered", "sorted", "sort", "descending", "ascending",
    "please", "also", "every", "whose", "name", "names", "ids", "id", "different", "distinct", "all",
    "along", "corresponding", "respectively", "greater", "less", "larger", "smaller", "first",
    "last", "top", "one", "two", "three", "us", "like", "known", "called", "named",
}

_TEXT_TYPE = re.compile(r"char|text|string|clob|citext|enum|^name$|^$", re.IGNORECASE)
_HAS_LETTER = re.compile(r"[^\W\d_]")
_ID_LIKE = re.compile(r"^(?=.*\d)[\w-]{8,}$")  # codes and keys: no spaces, letters mixed with digits
_QUOTES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'", "“": '"', "”": '"'})
_NON_WORD = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """Lower-case, accent-free, punctuation-free form used to compare question phrases with values:
    "Côte d’Ivoire" and "cote d'ivoire" both become "cote d ivoire"."""
    text = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", text.casefold()).strip()


@dataclass(frozen=True)
class ValueMatch:
    """A stored `value` of `table`.`column` that a question phrase matches, with a score in (0, 1]."""

    table: str
    column: str
    value: str
    score: float
    phrase: str = ""  # the (normalised) question words that matched


def render_value_hints(matches: Sequence[ValueMatch], *, per_column: int = 3,
                       schema: Schema | None = None) -> str:
    """One line per matched column, for the prompt: ``country.Name: 'Côte d’Ivoire', 'Chad'``. With the
    database's `schema`, table and column are quoted as its dialect needs (``"order details".item``),
    as the schema rendering shows them."""
    by_column: dict[tuple[str, str], list[str]] = defaultdict(list)
    for m in matches:
        values = by_column[(m.table, m.column)]
        if m.value not in values and len(values) < per_column:
            values.append(m.value)
    lines = []
    for (table, column), values in by_column.items():
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        ref = quote_column_ref(schema, table, column) if schema is not None else f"{table}.{column}"
        lines.append(f"{ref}: {quoted}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Entry:
    table: str
    column: str
    value: str


class ValueIndex:
    """Distinct short text values of a database's text columns, searchable by question phrases."""

    def __init__(self, entries: Iterable[tuple[str, str, str]], *, fingerprint: str = "") -> None:
        self.fingerprint = fingerprint
        self.entries: list[_Entry] = [_Entry(t, c, v) for t, c, v in entries]
        # normalised value -> entry indexes; several columns may store the same spelling
        self._by_norm: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(self.entries):
            norm = normalize_text(e.value)
            if norm:
                self._by_norm[norm].append(i)
        # unique normalised values sorted by length: fuzzy comparison only needs a length window
        self._norms = sorted(self._by_norm, key=len)
        self._norm_lengths = [len(n) for n in self._norms]
        # token -> normalised values of a few tokens containing it, for phrase-inside-value matches
        self._by_token: dict[str, list[str]] = defaultdict(list)
        for norm in self._norms:
            tokens = norm.split()
            if 1 < len(tokens) <= 6:
                for tok in set(tokens):
                    if tok not in QUESTION_WORDS and len(tok) > 2:
                        self._by_token[tok].append(norm)
        self._max_tokens = max((n.count(" ") + 1 for n in self._norms), default=1)

    def __len__(self) -> int:
        return len(self.entries)

    # --- building and caching ----------------------------------------------------------------
    @classmethod
    def for_database(
        cls,
        db: Database,
        cache_dir: Path,
        *,
        max_values_per_column: int = 5000,
        max_value_length: int = 80,
        rebuild: bool = False,
    ) -> ValueIndex:
        """The index of `db`, loaded from ``cache_dir/values/`` when its fingerprint is unchanged,
        otherwise built by querying the database (bounded per column) and saved there."""
        fingerprint = db.fingerprint()
        folder = Path(cache_dir) / "values"
        db_key = hashlib.sha256(db.url.encode()).hexdigest()[:16]
        settings = f"{INDEX_FORMAT}|{max_values_per_column}|{max_value_length}|{fingerprint}"
        path = folder / f"{db_key}-{hashlib.sha256(settings.encode()).hexdigest()[:16]}.sqlite"
        if path.exists() and not rebuild:
            try:
                index = cls.load(path)
            except SqlwrightError as exc:
                log.warning("value index cache %s unreadable (%s); rebuilding", path, exc)
            else:
                if index.fingerprint == fingerprint:
                    return index
        started = time.perf_counter()
        index = cls.build(db, max_values_per_column=max_values_per_column, max_value_length=max_value_length)
        index.fingerprint = fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"{db_key}-*.sqlite"):  # earlier versions of this database
            if stale != path:
                stale.unlink(missing_ok=True)
        index.save(path)
        log.info("indexed %d values of %s in %.1fs", len(index), db.url, time.perf_counter() - started)
        return index

    @classmethod
    def build(
        cls, db: Database, *, max_values_per_column: int = 5000, max_value_length: int = 80,
        scan_rows: int = 200_000, timeout: float = 10.0,
    ) -> ValueIndex:
        """Query every text column of `db` for up to `max_values_per_column` distinct values
        (scanning at most `scan_rows` rows of a big table), skipping long texts and id-like codes."""
        entries: list[tuple[str, str, str]] = []
        schema = db.schema(samples=0)
        for table in schema.tables:
            for column in table.columns:
                if not _TEXT_TYPE.search(column.type.strip()):
                    continue
                sql = _distinct_values_sql(db.dialect, table, column, max_values_per_column, scan_rows)
                try:
                    result = db.execute(sql, timeout=timeout, max_rows=max_values_per_column)
                except DatabaseError as exc:  # one unreadable column must not cost the whole index
                    log.warning("skipping values of %s.%s: %s", table.name, column.name, exc)
                    continue
                values = _indexable_values((row[0] for row in result.rows), max_value_length)
                entries.extend((table.name, column.name, v) for v in values)
        return cls(entries, fingerprint=db.fingerprint())

    def save(self, path: Path) -> None:
        """Write the index to a SQLite file (atomically: readers never see a half-written file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            with sqlite3.connect(tmp) as con:
                con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                con.execute("CREATE TABLE vals (tbl TEXT, col TEXT, value TEXT)")
                con.executemany("INSERT INTO meta VALUES (?, ?)",
                                [("format", str(INDEX_FORMAT)), ("fingerprint", self.fingerprint)])
                con.executemany("INSERT INTO vals VALUES (?, ?, ?)",
                                ((e.table, e.column, e.value) for e in self.entries))
            con.close()
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Path) -> ValueIndex:
        """Read an index written by `save`."""
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("format") != str(INDEX_FORMAT):
                    raise SqlwrightError(f"value index {path} has format {meta.get('format')}")
                rows = con.execute("SELECT tbl, col, value FROM vals ORDER BY rowid").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise SqlwrightError(f"cannot read value index {path}: {exc}") from exc
        return cls(rows, fingerprint=meta.get("fingerprint", ""))

    # --- matching ------------------------------------------------------------------------------
    def match(
        self, question: str, *, limit: int = 10, min_score: float = 0.8, per_column: int = 3
    ) -> list[ValueMatch]:
        """Stored values that phrases of `question` name, best first: exact after normalisation
        (case, accents, punctuation) score 1, close spellings (rapidfuzz ratio) a little less, and a
        phrase that is a whole-word part of a short value (e.g. "texas" in 'Austin Texas') less still."""
        tokens = normalize_text(question).split()
        if not tokens or not self._norms:
            return []
        proper = _capitalised_tokens(question)
        best: dict[str, tuple[float, str]] = {}  # normalised value -> (score, phrase)

        def offer(norm: str, score: float, phrase: str) -> None:
            if score >= min_score and score > best.get(norm, (0.0, ""))[0]:
                best[norm] = (score, phrase)

        covered: set[int] = set()  # token positions inside an exact multi-word match
        max_n = min(self._max_tokens, 6, len(tokens))
        for n in range(max_n, 0, -1):
            for start in range(len(tokens) - n + 1):
                span = range(start, start + n)
                words = tokens[start:start + n]
                if covered.issuperset(span) or all(w in QUESTION_WORDS for w in words):
                    continue
                phrase = " ".join(words)
                if n == 1 and (len(phrase) < 3 or phrase.isdigit()):
                    continue
                # a single common word is weak evidence unless the question capitalised it
                weight = 1.0 if n > 1 or phrase in proper else 0.9
                if phrase in self._by_norm:  # exact: "the beatles", "o neil" may start with a stop word
                    offer(phrase, weight, phrase)
                    if n > 1:
                        covered.update(span)
                    continue
                if words[0] in QUESTION_WORDS or words[-1] in QUESTION_WORDS:
                    continue  # inexact phrases start and end on content words
                if len(phrase) >= 4:
                    self._fuzzy(phrase, weight, offer)
                if n <= 3:
                    self._contained(words, phrase, weight, offer)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], len(kv[0])))
        matches: list[ValueMatch] = []
        per_col: dict[tuple[str, str], int] = defaultdict(int)
        for norm, (score, phrase) in ranked:
            for i in self._by_norm[norm]:
                e = self.entries[i]
                if per_col[(e.table, e.column)] >= per_column:
                    continue
                per_col[(e.table, e.column)] += 1
                matches.append(ValueMatch(e.table, e.column, e.value, round(score, 4), phrase))
            if len(matches) >= limit:
                break
        return matches[:limit]

    def _fuzzy(self, phrase: str, weight: float, offer) -> None:
        # ratio >= 85 needs the shorter string to be at least ~0.74 of the longer: compare only those
        lo = bisect.bisect_left(self._norm_lengths, int(len(phrase) * 0.74))
        hi = bisect.bisect_right(self._norm_lengths, int(len(phrase) / 0.74) + 1)
        if lo >= hi:
            return
        for norm, ratio, _ in process.extract(phrase, self._norms[lo:hi], scorer=fuzz.ratio,
                                              score_cutoff=85, limit=5):
            offer(norm, weight * 0.97 * ratio / 100.0, phrase)

    def _contained(self, words: list[str], phrase: str, weight: float, offer) -> None:
        pivot = max(words, key=len)
        candidates = self._by_token.get(pivot, ())
        if len(candidates) > 50:  # a word many values share names none of them
            return
        padded = f" {phrase} "
        for norm in candidates:
            if padded in f" {norm} ":
                offer(norm, weight * (0.6 + 0.3 * len(phrase) / len(norm)), phrase)


def _capitalised_tokens(question: str) -> set[str]:
    """Normalised words the question capitalises after its first word (likely proper names)."""
    words = question.split()
    return {normalize_text(w) for w in words[1:] if w[:1].isupper()}


def _distinct_values_sql(dialect: str, table: Table, column: Column, limit: int, scan_rows: int) -> str:
    """``SELECT DISTINCT col FROM (SELECT col FROM t WHERE col IS NOT NULL LIMIT scan) LIMIT n``,
    quoted for `dialect`: the inner limit bounds the work on a big table."""
    col = exp.column(column.name, quoted=True)
    name = table.name
    if table.schema and name.startswith(table.schema + "."):  # `sales.orders` is orders in sales
        name = name[len(table.schema) + 1 :]
    source = exp.table_(name, db=table.schema, quoted=True)
    inner = exp.select(col).from_(source).where(exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null())))
    inner = inner.limit(scan_rows).subquery("v")
    outer = exp.select(exp.column(column.name, quoted=True)).distinct().from_(inner).limit(limit)
    try:
        return outer.sql(dialect=dialect)
    except (ValueError, sqlglot.errors.SqlglotError):  # an unknown dialect name: ANSI quoting
        return outer.sql()


def _indexable_values(values: Iterable[object], max_length: int) -> list[str]:
    """The values worth matching: short texts with a letter, not id-like codes; empty when the
    column looks like free text (long values) or keys (mostly codes)."""
    kept: list[str] = []
    total = codes = long = 0
    for value in values:
        if not isinstance(value, str):
            continue
        text = value.strip()
        if not text:
            continue
        total += 1
        if len(text) > max_length:
            long += 1
            continue
        if _ID_LIKE.match(text):
            codes += 1
            continue
        if _HAS_LETTER.search(text):
            kept.append(value)  # the stored spelling, spaces and all: it is what WHERE must match
    if total and (long > total / 2 or codes > total / 2):
        return []
    return list(dict.fromkeys(kept))
