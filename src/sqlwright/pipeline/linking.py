"""Schema linking: keep the tables and columns a question needs, within a prompt-token budget.

A schema that fits the budget is returned whole. A bigger one is ranked against the question (and its
evidence) by BM25 over identifier words (snake_case and camelCase split, common abbreviations
expanded, light stemming) plus, when available, MiniLM sentence embeddings, plus the columns whose
stored values the question names (`value_matches`). Table scores then spread a little along foreign
keys, so that a table joined to a strongly matched one rises. Columns are taken greedily by score
(a table's key columns come with its first column), the foreign-key paths between chosen tables are
added so joins stay expressible, and the longest ranked prefix whose rendering fits the budget wins.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import bm25s
import numpy as np

from sqlwright.db.schema import Schema, Table
from sqlwright.pipeline.embeddings import Embedder, encode_cached, load_default_embedder
from sqlwright.pipeline.values import QUESTION_WORDS, ValueMatch

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG when imported, so its "Building index" lines would reach stderr at
# any level the application chose: give the choice back to the application's logging configuration.
logging.getLogger("bm25s").setLevel(logging.NOTSET)


@dataclass(frozen=True)
class LinkResult:
    """The pruned schema and why. `tables` in the order chosen (best first, each join-path table just
    before the table that needed it); `columns` the kept columns per table (keys included); `scores`
    the relevance of each kept "table" and "table.column"; `pruned` False when the whole schema fit."""

    schema: Schema
    tables: list[str]
    columns: dict[str, list[str]]
    scores: dict[str, float] = field(default_factory=dict)  # "table" and "table.column" -> score
    seconds: float = 0.0
    pruned: bool = False


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: code-like text runs about 3.5 characters per token."""
    return int(len(text) / 3.5) + 1


def _render(schema: Schema) -> str:
    from sqlwright.db import render_schema  # lazy: the db package imports nothing from pipeline

    return render_schema(schema)


# --- words --------------------------------------------------------------------------------------
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_SPLIT = re.compile(r"[^0-9A-Za-z]+")
# Abbreviations schemas use for words questions spell out.
ABBREVIATIONS = {
    "dept": "department", "num": "number", "no": "number", "nbr": "number", "qty": "quantity",
    "amt": "amount", "desc": "description", "descr": "description", "addr": "address",
    "emp": "employee", "cust": "customer", "prod": "product", "fname": "first name",
    "lname": "last name", "dob": "date birth", "yr": "year", "avg": "average", "cnt": "count",
    "pct": "percent", "org": "organization", "mgr": "manager", "stu": "student", "stuid": "student",
    "crs": "course", "prof": "professor", "sal": "salary", "tel": "telephone", "pos": "position",
    "dt": "date", "loc": "location", "lang": "language", "pop": "population", "cap": "capacity",
    "min": "minimum", "max": "maximum", "std": "student", "info": "information", "hs": "high school",
    "gnp": "gross national product", "mpg": "miles per gallon", "hp": "horsepower", "ppl": "people",
}
_STOP = QUESTION_WORDS - {"name", "names", "id", "ids", "number", "count", "total", "average", "order", "first",
                          "last", "max", "min", "maximum", "minimum"}


def stem(word: str) -> str:
    """A light English stemmer: enough to meet "singers"/"singer", "countries"/"country", "played"/"play"."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            return word[: -len(suffix)] + repl
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":  # "stopp" -> "stop"
                word = word[:-1]
            break
    return word


def identifier_words(name: str) -> list[str]:
    """The words of an identifier or phrase, lower case: "HomeTown_ID" -> ["home", "town", "id"]."""
    words: list[str] = []
    for part in _SPLIT.split(name):
        if part:
            words.extend(w.lower() for w in _CAMEL.sub(" ", part).split())
    return words


def tokenize(text: str, *, query: bool = False) -> list[str]:
    """BM25 tokens: identifier words minus stop words, abbreviations expanded, stemmed. For a
    `query`, adjacent words are also joined ("high schoolers" -> "highschooler"), because schemas
    often write compounds as one word."""
    tokens: list[str] = []
    words = identifier_words(text)
    for i, word in enumerate(words):
        # in identifiers "no" is "number"; in questions it is "no"
        expanded = None if query and word in _STOP else ABBREVIATIONS.get(word)
        if expanded is None and word in _STOP:
            continue
        for w in (expanded.split() if expanded else [word]):
            tokens.append(stem(w))
        if query and i + 1 < len(words) and words[i + 1] not in _STOP and not word.isdigit():
            tokens.append(stem(word + words[i + 1]))
    return tokens


# --- the per-schema index -------------------------------------------------------------------------
def _schema_digest(schema: Schema) -> str:
    digest = hashlib.sha256(schema.dialect.encode())
    for t in schema.tables:
        digest.update(f"\x01{t.schema}.{t.name}\x02{t.comment}".encode())
        for c in t.columns:
            digest.update(f"\x03{c.name}\x04{c.type}\x05{c.comment}\x06{c.samples!r}".encode())
        for fk in t.foreign_keys:
            digest.update(f"\x07{fk.columns}{fk.ref_table}{fk.ref_columns}".encode())
    return digest.hexdigest()


def _table_text(t: Table) -> str:
    cols = ", ".join(" ".join(identifier_words(c.name)) for c in t.columns)
    text = f"{' '.join(identifier_words(t.name))}: {cols}"
    return f"{text}. {t.comment}" if t.comment else text


def _column_text(t: Table, c) -> str:
    text = f"{' '.join(identifier_words(c.name))} of {' '.join(identifier_words(t.name))}"
    if c.comment:
        text += f": {c.comment}"
    return text


class _SchemaIndex:
    """Everything about a schema that does not depend on the question, built once per schema."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.tables = [t.name for t in schema.tables]
        self.table_pos = {name: i for i, name in enumerate(self.tables)}
        self.col_table: list[int] = []
        self.col_name: list[str] = []
        table_docs, column_docs = [], []
        for ti, t in enumerate(schema.tables):
            name_tokens = tokenize(t.name)
            doc = name_tokens * 3 + tokenize(t.comment or "")
            for c in t.columns:
                doc += tokenize(c.name)
            table_docs.append(doc or ["_"])
            for c in t.columns:
                self.col_table.append(ti)
                self.col_name.append(c.name)
                samples = " ".join(str(s) for s in c.samples if isinstance(s, str) and len(s) < 40)
                cdoc = tokenize(c.name) * 2 + name_tokens + tokenize(c.comment or "") + tokenize(samples)
                column_docs.append(cdoc or ["_"])
        self.col_table_arr = np.asarray(self.col_table, dtype=np.int64)
        self.col_pos = {(self.tables[ti], n.lower()): i for i, (ti, n) in
                        enumerate(zip(self.col_table, self.col_name, strict=True))}
        self.bm25_tables = _bm25(table_docs)
        self.bm25_columns = _bm25(column_docs)
        self.table_texts = [_table_text(t) for t in schema.tables]
        self.column_texts = [_column_text(t, c) for t in schema.tables for c in t.columns]
        # undirected foreign-key graph between tables, by position
        self.neighbours: list[set[int]] = [set() for _ in self.tables]
        for ti, t in enumerate(schema.tables):
            for fk in t.foreign_keys:
                ref = self._find_table(fk.ref_table)
                if ref is not None and ref != ti:
                    self.neighbours[ti].add(ref)
                    self.neighbours[ref].add(ti)

    def _find_table(self, name: str) -> int | None:
        if name in self.table_pos:
            return self.table_pos[name]
        low = name.lower()
        return next((i for i, n in enumerate(self.tables) if n.lower() == low), None)


def _bm25(docs: list[list[str]]) -> bm25s.BM25:
    model = bm25s.BM25(k1=1.2, b=0.5)
    model.index(docs, show_progress=False)
    return model


_INDEXES: OrderedDict[str, _SchemaIndex] = OrderedDict()
_INDEX_SLOTS = 8
_INDEX_LOCK = threading.Lock()


def _index_for(schema: Schema) -> _SchemaIndex:
    key = _schema_digest(schema)
    with _INDEX_LOCK:
        if key in _INDEXES:
            _INDEXES.move_to_end(key)
            return _INDEXES[key]
    index = _SchemaIndex(schema)
    with _INDEX_LOCK:
        _INDEXES[key] = index
        while len(_INDEXES) > _INDEX_SLOTS:
            _INDEXES.popitem(last=False)
    return index


# --- scoring ------------------------------------------------------------------------------------
def _bm25_scores(model: bm25s.BM25, tokens: list[str], size: int) -> np.ndarray:
    known = [t for t in tokens if t in model.vocab_dict]
    if not known:
        return np.zeros(size, dtype=np.float32)
    scores = np.asarray(model.get_scores(known), dtype=np.float32)
    top = scores.max()
    return scores / top if top > 0 else scores


def _rescale_cosine(cos: np.ndarray) -> np.ndarray:
    """Cosine similarities mapped so the median item is 0 and the best is 1: MiniLM's raw cosines
    sit in a narrow band whose position varies with the question."""
    if cos.size == 0:
        return cos
    mid, top = float(np.median(cos)), float(cos.max())
    if top - mid < 1e-6:
        return np.zeros_like(cos)
    return np.clip((cos - mid) / (top - mid), 0.0, 1.0)


@dataclass
class _Scores:
    tables: np.ndarray
    columns: np.ndarray


def _score(index: _SchemaIndex, question: str, embedder: Embedder | None,
           value_matches: Sequence[ValueMatch]) -> _Scores:
    tokens = tokenize(question, query=True)
    n_tables, n_cols = len(index.tables), len(index.col_name)
    bm_t = _bm25_scores(index.bm25_tables, tokens, n_tables)
    bm_c = _bm25_scores(index.bm25_columns, tokens, n_cols)
    if embedder is not None:
        table_vecs = encode_cached(embedder, index.table_texts)
        column_vecs = encode_cached(embedder, index.column_texts)
        qv = embedder.encode([question])[0]
        em_t = _rescale_cosine(table_vecs @ qv)
        em_c = _rescale_cosine(column_vecs @ qv)
        table_rel = 0.5 * bm_t + 0.5 * em_t
        col_rel = 0.5 * bm_c + 0.5 * em_c
    else:
        table_rel, col_rel = bm_t, bm_c
    col_rel = col_rel.copy()
    value_boost = np.zeros(n_tables, dtype=np.float32)
    for m in value_matches:
        ci = index.col_pos.get((m.table, m.column.lower()))
        if ci is None:
            ti = index._find_table(m.table)
            ci = index.col_pos.get((index.tables[ti], m.column.lower())) if ti is not None else None
        if ci is not None:
            col_rel[ci] += 0.5 * m.score
            ti = index.col_table[ci]
            value_boost[ti] = max(value_boost[ti], 0.3 * m.score)
    # a table is as relevant as its name or its best columns say
    best_col = np.zeros(n_tables, dtype=np.float32)
    np.maximum.at(best_col, index.col_table_arr, col_rel)
    tables = np.maximum(table_rel, 0.5 * table_rel + 0.5 * best_col) + value_boost
    # spread along foreign keys: a join table between two matched tables should come along
    spread = np.zeros(n_tables, dtype=np.float32)
    for ti, nbrs in enumerate(index.neighbours):
        if nbrs:
            spread[ti] = max(tables[j] for j in nbrs)
    tables = tables + 0.3 * spread
    return _Scores(tables, col_rel)


# --- selection ----------------------------------------------------------------------------------
def _fk_path(index: _SchemaIndex, start: int, targets: set[int], max_hops: int) -> list[int]:
    """Tables on a shortest foreign-key path from `start` to any of `targets` (ends excluded)."""
    parent = {start: -1}
    queue = deque([(start, 0)])
    while queue:
        node, depth = queue.popleft()
        if node in targets and node != start:
            path = []
            node = parent[node]
            while node != start:
                path.append(node)
                node = parent[node]
            return path
        if depth >= max_hops:
            continue
        for nxt in index.neighbours[node]:
            if nxt not in parent:
                parent[nxt] = node
                queue.append((nxt, depth + 1))
    return []


def _keep_for(index: _SchemaIndex, items: list[int], max_hops: int) -> tuple[dict[str, set[str]], list[int]]:
    """The `Schema.subset` argument for a prefix of ranked column items, with FK paths between
    the chosen tables; also the tables in the order they were chosen."""
    keep: dict[str, set[str]] = {}
    order: list[int] = []
    for ci in items:
        ti = index.col_table[ci]
        name = index.tables[ti]
        if name not in keep:
            if order:
                for bridge in _fk_path(index, ti, set(order), max_hops):
                    if index.tables[bridge] not in keep:
                        keep[index.tables[bridge]] = set()  # key columns only
                        order.append(bridge)
            keep[name] = set()
            order.append(ti)
        keep[name].add(index.col_name[ci])
    return keep, order


def _rendered(index: _SchemaIndex, schema: Schema, ranked: list[int], k: int, max_hops: int) -> str:
    keep, _ = _keep_for(index, ranked[:k], max_hops)
    return _render(schema.subset(keep))


def _longest_fitting_prefix(index: _SchemaIndex, schema: Schema, ranked: list[int], budget: int,
                            count: Callable[[str], int], max_hops: int) -> int:
    """The largest k whose ranked prefix renders within `budget` tokens. Bisection runs on the
    cheap character estimate, scaled to the real counter by a ratio measured on the candidate
    itself; the real counter (a tokenizer can take tens of ms on a big schema) is called only to
    check each candidate and correct the ratio."""

    def bisect(limit: float) -> int:
        lo, hi = 0, len(ranked)  # rendered size grows with k
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if estimate_tokens(_rendered(index, schema, ranked, mid, max_hops)) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return lo

    if count is estimate_tokens:
        return bisect(budget)
    best, limit = 0, float(budget)
    for _ in range(4):
        k = bisect(limit)
        text = _rendered(index, schema, ranked, k, max_hops)
        real, est = count(text), estimate_tokens(text)
        if real <= budget:
            best = max(best, k)
            if real >= 0.97 * budget or k == len(ranked):
                break
        ratio = real / max(est, 1)
        new_limit = 0.99 * budget / ratio
        if abs(new_limit - limit) < 1:
            break
        limit = new_limit
    if best == 0:  # the estimate kept misleading: bisect on the real counter
        lo, hi = 0, len(ranked)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(_rendered(index, schema, ranked, mid, max_hops)) <= budget:
                lo = mid
            else:
                hi = mid - 1
        best = lo
    return best


def link_schema(
    schema: Schema,
    question: str,
    *,
    evidence: str | None = None,
    budget_tokens: int = 3000,
    count_tokens: Callable[[str], int] | None = None,
    embedder: Embedder | None = None,
    value_matches: Sequence[ValueMatch] | None = None,
    use_embeddings: bool = True,
    max_hops: int = 3,
    column_weight: float = 0.5,
) -> LinkResult:
    """Prune `schema` to what `question` needs so that its rendering fits `budget_tokens`.

    `embedder` defaults to the bundled MiniLM model (BM25 alone when it is missing or when
    `use_embeddings` is False). `value_matches` (from `ValueIndex.match`) boost their columns.
    `column_weight` trades whole tables (0) against the question's columns of many tables (1)."""
    started = time.perf_counter()
    count = count_tokens or estimate_tokens
    full_text = _render(schema)
    # no tokenizer packs 8 characters of schema into a token: skip counting what cannot fit
    if len(full_text) / 8 <= budget_tokens and count(full_text) <= budget_tokens:
        return LinkResult(schema, [t.name for t in schema.tables],
                          {t.name: [c.name for c in t.columns] for t in schema.tables},
                          seconds=time.perf_counter() - started, pruned=False)
    index = _index_for(schema)
    if embedder is None and use_embeddings:
        embedder = load_default_embedder()
    text = f"{question}\n{evidence}" if evidence else question
    scores = _score(index, text, embedder if use_embeddings else None, value_matches or ())

    # rank columns: a column of a strong table before a strong column of a weak one, unless
    # column_weight says otherwise; only the best tables' columns are candidates (speed)
    top_tables = np.argsort(-scores.tables, kind="stable")[:200]
    candidate = np.isin(index.col_table_arr, top_tables)
    col_ids = np.nonzero(candidate)[0]
    item_scores = scores.tables[index.col_table_arr[col_ids]] + column_weight * scores.columns[col_ids]
    order = np.argsort(-item_scores, kind="stable")
    # columns nothing points to are noise, not context: the budget is a ceiling, not a target
    ranked = col_ids[order][item_scores[order] > 1e-6].tolist()
    lo = _longest_fitting_prefix(index, schema, ranked, budget_tokens, count, max_hops)
    keep, order = _keep_for(index, ranked[:lo], max_hops)
    pruned = schema.subset(keep)
    kept_tables = [index.tables[ti] for ti in order]
    columns = {t.name: [c.name for c in t.columns] for t in pruned.tables}
    score_map = {index.tables[ti]: round(float(scores.tables[ti]), 4) for ti in order}
    for t in kept_tables:
        for c in columns.get(t, []):
            ci = index.col_pos.get((t, c.lower()))
            if ci is not None:
                score_map[f"{t}.{c}"] = round(float(scores.columns[ci]), 4)
    seconds = time.perf_counter() - started
    log.debug("linked %d of %d tables in %.3fs", len(kept_tables), len(schema.tables), seconds)
    return LinkResult(pruned, kept_tables, columns, score_map, seconds, pruned=True)
