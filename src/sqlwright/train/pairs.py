"""`train pairs`: sample k candidates per question, execute them guarded, label them against the gold with the
evaluator's rule, and write SFT records, DPO pairs and SENSE pairs.

    question ─► gold (run as the evaluator runs it; an empty result is not a label: skipped, counted)
             ─► the prompt `ask` sends (Engine.prompt) ─► model × k ─► guard + execute + judge (runner's
                evaluate_task, the dataset's ComparisonRule) ─► work file ─► sft.jsonl, dpo.jsonl,
                sense.jsonl, labels.jsonl, summary.json

Pairs follow ExCoT: a chosen (correct) and a rejected (incorrect) candidate of one question, picked at random,
or the two nearest or farthest apart by edit distance between their SQL texts. SENSE pairs a strong model's
correct answer (its candidates, or the gold: in SENSE the gold is the strong model's) with a weak model's wrong
one. Every run re-derives the output files from the work file, so a resumed or re-paired run writes the same
bytes as one that was never stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from sqlwright.db.base import Database
from sqlwright.db.result import Result
from sqlwright.errors import ConfigError, DatasetError, InvalidQuestion, QueryTimeout, SqlwrightError
from sqlwright.eval.compare import ComparisonRule, get_rule, normalize_result
from sqlwright.eval.types import Example, Prediction
from sqlwright.llm.base import LLM, Message
from sqlwright.pipeline.ask import AskOptions, Engine
from sqlwright.pipeline.execute import NO_SQL_ERROR, UNANSWERABLE_ERROR
from sqlwright.pipeline.generate import Draft, normalize_sql, sample_drafts
from sqlwright.pipeline.prompt import schema_block
from sqlwright.train.pairs_work import OK, CandidateRow, PairsWorkFile, QuestionRow
from sqlwright.train.records import (
    WRONG_RESULT,
    clean_reply,
    dpo_record,
    prompt_version,
    sft_record,
    sql_reply,
    write_records,
)

log = logging.getLogger(__name__)

Pairing = Literal["random", "nearest", "farthest"]
PAIRINGS: tuple[str, ...] = ("random", "nearest", "farthest")
EMPTY_GOLD = "empty gold"
GOLD_ERROR = "gold error"
INFEASIBLE = "infeasible"
INVALID_QUESTION = "invalid question"
WORK_FILE = "pairs.work.sqlite"
FILES = {"sft": "sft.jsonl", "dpo": "dpo.jsonl", "sense": "sense.jsonl", "labels": "labels.jsonl",
         "summary": "summary.json"}
DEFAULT_TIMEOUT = 30.0  # seconds per statement, as the evaluator
DEFAULT_MAX_ROWS = 100_000


@dataclass(frozen=True)
class PairsOptions:
    """How candidates are sampled and paired. Everything but `pairing` and `pairs_per_question` is bound to
    the work file (changing it needs another --out folder); those two only shape the derived files."""

    k: int = 4  # candidates per question and model
    temperature: float = 0.8
    cot: bool = False  # chain of thought, then the SQL
    pairing: str = "nearest"
    pairs_per_question: int = 1
    seed: int = 0
    max_tokens: int | None = None  # per reply (default: ask's, 512 plain / 1280 cot)
    timeout: float = DEFAULT_TIMEOUT
    max_rows: int = DEFAULT_MAX_ROWS

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"-k must be at least 1, not {self.k}")
        if self.pairing not in PAIRINGS:
            raise ConfigError(f"unknown pairing {self.pairing!r} (known: {', '.join(PAIRINGS)})")
        if self.pairs_per_question < 1:
            raise ConfigError(f"--pairs-per-question must be at least 1, not {self.pairs_per_question}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"--temperature must be between 0 and 2, not {self.temperature}")

    def reply_tokens(self) -> int:
        return AskOptions(cot=self.cot, max_tokens=self.max_tokens).reply_tokens()

    def sampling(self, model: str | None) -> dict:
        """What the work file binds for one role: whatever changes the candidates."""
        return {"model": model, "k": self.k, "temperature": self.temperature, "cot": self.cot, "seed": self.seed,
                "max_tokens": self.reply_tokens(), "timeout": self.timeout, "max_rows": self.max_rows}


@dataclass
class PairsSummary:
    """What a `train pairs` run produced (also written as summary.json)."""

    out_dir: Path
    questions: int = 0  # looked at (labelled or skipped)
    labelled: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    candidates: int = 0  # of the strong model
    correct: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # incorrect candidates by reason
    with_correct: int = 0  # questions with at least one correct candidate
    with_pair: int = 0  # questions with a correct and an incorrect candidate
    weak_candidates: int = 0
    weak_correct: int = 0
    records: dict[str, int] = field(default_factory=dict)  # sft, dpo, sense, labels
    model_calls: int = 0  # in this run (a resumed run makes none for what is recorded)
    seconds: float = 0.0  # model and execution seconds recorded over the whole work file
    samples_per_hour: float | None = None
    files: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "out_dir"}
        data["out_dir"] = str(self.out_dir)
        return data


def model_label(name: str, lora: str | Path | None = None, cache_dir: Path | None = None) -> str:
    """What records and work files call a model: its name, and when an adapter applies (`lora`, or a named
    adapter model's own) the adapter's sha256 too: another adapter is another model, whose samples must not
    resume this one's. A model on a server (openai:NAME) takes no adapter."""
    from sqlwright.llm import OPENAI_PREFIX

    if name.startswith(OPENAI_PREFIX):
        return name
    from sqlwright.llm.adapters import read_adapter, resolve_adapter
    from sqlwright.llm.models import file_sha256

    if cache_dir is None:
        from sqlwright.config import load_settings

        cache_dir = load_settings().cache_dir
    _base, adapter = resolve_adapter(name, lora, cache_dir)
    return name if adapter is None else f"{name}+lora:{file_sha256(read_adapter(adapter).path)[:16]}"


# --- pairing -----------------------------------------------------------------------------------------------
def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two texts (insertions, deletions and substitutions of characters)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def sql_text(sql: str | None) -> str:
    """The SQL as edit distance compares it: blanks collapsed (layout is not a difference)."""
    return re.sub(r"\s+", " ", sql or "").strip()


T = TypeVar("T")
U = TypeVar("U")


def choose_pairs(chosen: Sequence[T], rejected: Sequence[U], *, strategy: str, n: int, rng: random.Random,
                 text: Callable[[T | U], str]) -> list[tuple[T, U]]:
    """Up to `n` (chosen, rejected) pairs: `random` (drawn with `rng`), `nearest` or `farthest` (by
    `edit_distance` of `text(...)`, ties in candidate order)."""
    combos = [(i, j) for i in range(len(chosen)) for j in range(len(rejected))]
    if not combos:
        return []
    if strategy == "random":
        rng.shuffle(combos)
    elif strategy in ("nearest", "farthest"):
        sign = 1 if strategy == "nearest" else -1
        distance = {(i, j): edit_distance(text(chosen[i]), text(rejected[j])) for i, j in combos}
        combos.sort(key=lambda ij: (sign * distance[ij], ij))
    else:
        raise ConfigError(f"unknown pairing {strategy!r} (known: {', '.join(PAIRINGS)})")
    return [(chosen[i], rejected[j]) for i, j in combos[:n]]


def question_seed(seed: int, question_id: str, role: str) -> int:
    """The sampling seed of one question and role: the same whatever order or subset questions come in."""
    return int(hashlib.sha256(f"{seed}\0{role}\0{question_id}".encode()).hexdigest()[:8], 16)


# --- labelling ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gold:
    """A question's gold, run as the evaluator runs it."""

    queries: tuple[str, ...]  # the rule's expansions, prepared
    results: tuple[Result | str, ...]  # per query: its normalised result, or its error
    status: str  # OK, EMPTY_GOLD, GOLD_ERROR or INFEASIBLE
    detail: str | None = None


def run_gold(db: Database, example: Example, rule: ComparisonRule, *, timeout: float, max_rows: int) -> Gold:
    """Run the gold queries as the runner does (the benchmark's trusted text: read-only connection and time
    limit, no guard). A gold whose every result is empty is no label: a wrong query returns no rows as often."""
    if not example.feasible or not example.gold.strip():
        return Gold((), (), INFEASIBLE, "the question cannot be answered (no gold SQL)")
    queries = tuple(rule.prepare(q) for q in rule.expand_gold(example.gold))
    results: list[Result | str] = []
    for sql in queries:
        try:
            results.append(normalize_result(db.execute(sql, timeout=timeout, max_rows=max_rows, guard=False)))
        except QueryTimeout:
            results.append("timeout")
        except SqlwrightError as exc:
            results.append(str(exc) or type(exc).__name__)
    usable = [r for r in results if isinstance(r, Result) and not r.truncated]
    if not usable:
        first = next((r for r in results if isinstance(r, str)), f"gold result has more than {max_rows} rows")
        return Gold(queries, tuple(results), GOLD_ERROR, " ".join(str(first).split()))
    if all(not r.rows for r in usable):
        return Gold(queries, tuple(results), EMPTY_GOLD, "the gold query returns no rows")
    return Gold(queries, tuple(results), OK)


def label(example: Example, url: str, rule: ComparisonRule, gold: Gold, draft: Draft, *, timeout: float,
          max_rows: int) -> tuple[bool, str | None, str | None]:
    """(correct, reason, note) of one candidate, judged by the evaluator itself (runner.evaluate_task) against
    the gold results already run: guard, time limit, row cap, the rule's rewriting and comparison."""
    from sqlwright.eval.runfile import gold_key
    from sqlwright.eval.runner import CompareTask, evaluate_task

    if draft.sql is None:
        return False, f"error: {UNANSWERABLE_ERROR if draft.unanswerable is not None else NO_SQL_ERROR}", None
    task = CompareTask(position=0, example=example, prediction=Prediction(id=example.id, sql=draft.sql),
                       database_url=url, rule=rule.name, gold_sqls=gold.queries,
                       gold_keys=tuple(gold_key(example.db, q) for q in gold.queries), cached_gold=gold.results,
                       timeout=timeout, max_rows=max_rows)
    verdict = evaluate_task(task).verdict
    if verdict.correct:
        return True, None, verdict.note
    problem = verdict.error or verdict.gold_error
    return False, (f"error: {' '.join(problem.split())}" if problem else WRONG_RESULT), verdict.note


def gold_query(rule: ComparisonRule, gold: str) -> str:
    """One runnable query for the gold, as a training target: the longest of the rule's expansions (SQL-Eval's
    `{a,b}` column sets: the one with every column)."""
    expansions = rule.expand_gold(gold) or [gold]
    return max(expansions, key=len).strip().rstrip(";").strip()


def gold_reply(example: Example, sql: str, *, cot: bool) -> str | None:
    """The gold as a reply in ask's format: the SQL block; with chain of thought, the pair's kept reasoning
    (a synthesis pair's `cot`) or nothing (a reply without reasoning would teach skipping it)."""
    if not cot:
        return sql_reply(sql)
    text = example.extra.get("cot") if example.extra else None
    return clean_reply(text) if isinstance(text, str) and text.strip() else None


def target_reply(reply: str, sql: str | None, *, cot: bool) -> str:
    """A candidate's reply as a training target: plain mode, its SQL in the canonical block (the reply ask
    parses it from, without what models add around it); chain of thought, the reply itself."""
    if sql is not None and not cot:
        return sql_reply(sql)
    return clean_reply(reply)


# --- the run -----------------------------------------------------------------------------------------------
class _Databases:
    """Databases opened once per URL for the run (prompts need the schema; the judge opens its own)."""

    def __init__(self) -> None:
        self.open: dict[str, Database] = {}
        self.prefixes: dict[str, str] = {}

    def get(self, url: str) -> Database:
        if url not in self.open:
            from sqlwright.db import open_database

            self.open[url] = open_database(url)
        return self.open[url]

    def shared_prefix(self, url: str, messages: list[Message]) -> str | None:
        """The schema block the prompt opens with, when it is the whole schema (a backend keeps its state)."""
        if url not in self.prefixes:
            from sqlwright.db.render import render_schema

            db = self.get(url)
            self.prefixes[url] = schema_block(render_schema(db.schema()), dialect=db.dialect)
        prefix = self.prefixes[url]
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
        return prefix if user.startswith(prefix) else None

    def close(self) -> None:
        for db in self.open.values():
            db.close()
        self.open.clear()


def _sample(llm: LLM, messages: list[Message], example: Example, url: str, rule: ComparisonRule, gold: Gold,
            options: PairsOptions, *, role: str, model: str | None, shared_prefix: str | None) -> list[CandidateRow]:
    """k candidates of one model for one question (one model call), each labelled."""
    started = time.perf_counter()
    drafts = sample_drafts(llm, messages, first=1, count=options.k, temperature=options.temperature,
                           max_tokens=options.reply_tokens(), seed=question_seed(options.seed, example.id, role),
                           cot=options.cot, shared_prefix=shared_prefix)
    seconds = (time.perf_counter() - started) / max(1, len(drafts))
    rows = []
    for idx, draft in enumerate(drafts):
        t = time.perf_counter()
        correct, reason, note = label(example, url, rule, gold, draft, timeout=options.timeout,
                                      max_rows=options.max_rows)
        rows.append(CandidateRow(example.id, role, idx, model, draft.reply, draft.sql, correct, reason, note,
                                 draft.prompt_tokens if idx == 0 else 0, draft.completion_tokens,
                                 seconds + time.perf_counter() - t))
    return rows


def _check_same_question(known: QuestionRow, example: Example, work: PairsWorkFile) -> None:
    if known.question != example.question or known.gold != example.gold or known.database != example.db:
        raise ConfigError(f"{work.path.parent} holds another question under id {example.id!r}; use another --out "
                          "folder for another dataset")


ProgressCallback = Callable[[str, str, int, int], None]  # (role, outcome, done, total)


def build_pairs(dataset, llm: LLM, out_dir: Path, *, model: str | None = None, weak_llm: LLM | None = None,
                weak_model: str | None = None, options: PairsOptions | None = None,
                examples: Iterable[Example] | None = None, ask_options: AskOptions | None = None,
                cache_dir: Path | None = None, progress: ProgressCallback | None = None) -> PairsSummary:
    """Label k candidates per question of `dataset` (an eval Dataset; `examples`: a subset) sampled from `llm`
    (and `weak_llm` for SENSE), resuming from `out_dir`'s work file, then write the derived files there.

    `model`/`weak_model` name the models in the records and bind the work file. The prompt is the one `ask`
    sends with `ask_options` (default: ask's defaults, chain of thought as `options.cot`)."""
    options = options or PairsOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model or getattr(llm, "name", None)
    if weak_llm is not None:
        weak_model = weak_model or getattr(weak_llm, "name", None)
    examples = list(dataset.examples if examples is None else examples)
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"duplicate question ids in {dataset.name}")
    if examples and all(not e.gold.strip() for e in examples):
        raise DatasetError(f"{dataset.name}: no question has gold SQL; pairs need labelled questions")
    rule = get_rule(dataset.comparison)
    ask_options = (ask_options or AskOptions()).model_copy(update={"cot": options.cot})
    engine = Engine(llm, ask_options, cache_dir=cache_dir)
    databases = _Databases()
    calls = 0
    with PairsWorkFile(out_dir / WORK_FILE) as work:
        work.bind("strong", {**options.sampling(model), "comparison": rule.name})
        if weak_llm is not None:
            work.bind("weak", {**options.sampling(weak_model), "comparison": rule.name})
        known = {q.id: q for q in work.questions()}
        strong_done, weak_done = work.sampled("strong"), work.sampled("weak")
        total = len(examples)
        try:
            for position, example in enumerate(examples):
                row = known.get(example.id)
                if row is not None:
                    _check_same_question(row, example, work)
                if row is None or (row.status == OK and example.id not in strong_done):
                    row, made = _strong(example, position, dataset, llm, engine, rule, options, model, databases)
                    work.save_question(row, made)
                    calls += bool(made)
                    if progress:
                        progress("strong", row.status, position + 1, total)
                elif progress:
                    progress("strong", "recorded", position + 1, total)
                if weak_llm is not None and row.status == OK and example.id not in weak_done:
                    weak = _weak(example, row, dataset, weak_llm, rule, options, weak_model, databases)
                    work.save_candidates(weak)
                    calls += 1
                    if progress:
                        progress("weak", OK, position + 1, total)
        finally:
            databases.close()
        summary = export_pairs(work, out_dir, options=options, only=set(ids), sense=weak_llm is not None)
    summary.model_calls = calls
    _write_summary(summary)
    return summary


def _strong(example: Example, position: int, dataset, llm: LLM, engine: Engine, rule: ComparisonRule,
            options: PairsOptions, model: str | None, databases: _Databases) -> tuple[QuestionRow, list[CandidateRow]]:
    url = dataset.database_url(example.db)
    db = databases.get(url)
    base = dict(id=example.id, position=position, database=example.db, dialect=db.dialect,
                question=example.question, evidence=example.evidence, gold=example.gold,
                difficulty=example.difficulty)
    gold = run_gold(db, example, rule, timeout=options.timeout, max_rows=options.max_rows)
    if gold.status != OK:
        log.info("skipped %s: %s (%s)", example.id, gold.status, gold.detail)
        return QuestionRow(**base, status=gold.status, detail=gold.detail), []
    try:
        messages = engine.prompt(db, example.question, evidence=example.evidence)
    except InvalidQuestion as exc:  # e.g. longer than max_question_chars: ask would refuse it too
        return QuestionRow(**base, status=INVALID_QUESTION, detail=str(exc)), []
    target = gold_query(rule, example.gold)
    row = QuestionRow(**base, status=OK, prompt=messages, gold_sql=target,
                      gold_reply=gold_reply(example, target, cot=options.cot))
    made = _sample(llm, messages, example, url, rule, gold, options, role="strong", model=model,
                   shared_prefix=databases.shared_prefix(url, messages))
    return row, made


def _weak(example: Example, row: QuestionRow, dataset, weak_llm: LLM, rule: ComparisonRule, options: PairsOptions,
          weak_model: str | None, databases: _Databases) -> list[CandidateRow]:
    url = dataset.database_url(example.db)
    db = databases.get(url)
    gold = run_gold(db, example, rule, timeout=options.timeout, max_rows=options.max_rows)
    messages = [dict(m) for m in row.prompt or []]
    return _sample(weak_llm, messages, example, url, rule, gold, options, role="weak", model=weak_model,
                   shared_prefix=databases.shared_prefix(url, messages))


# --- the derived files -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Answer:
    """A candidate (or the gold) as a training target."""

    sql: str | None
    reply: str
    reason: str | None
    model: str | None


def _distinct(answers: Iterable[_Answer], dialect: str, *, seen: set[str] | None = None) -> list[_Answer]:
    """`answers` with one per normalised SQL (per reply when it has none), in order; empty replies dropped."""
    seen = set() if seen is None else seen
    out = []
    for a in answers:
        if not a.reply.strip():
            continue
        key = "sql:" + normalize_sql(a.sql, dialect) if a.sql else "reply:" + a.reply
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out


def _answers(rows: Sequence[CandidateRow], *, cot: bool) -> tuple[list[_Answer], list[_Answer]]:
    correct, wrong = [], []
    for c in rows:
        answer = _Answer(c.sql, target_reply(c.reply, c.sql, cot=cot), c.reason, c.model)
        (correct if c.correct else wrong).append(answer)
    return correct, wrong


def _pair_records(q: QuestionRow, chosen: list[_Answer], rejected: list[_Answer], *, strategy: str,
                  pairing_name: str, n: int, seed: int, version: str, model: str | None) -> list[dict]:
    rng = random.Random(question_seed(seed, q.id, f"pairs-{pairing_name}"))
    out = []
    for good, bad in choose_pairs(chosen, rejected, strategy=strategy, n=n, rng=rng, text=lambda a: sql_text(a.sql)):
        assert good.sql is not None
        out.append(dpo_record(q.prompt or [], good.reply, bad.reply, database=q.database, dialect=q.dialect,
                              question=q.question, pairing=pairing_name, chosen_sql=good.sql,
                              rejected_sql=bad.sql, rejected_reason=bad.reason or WRONG_RESULT,
                              model=model, prompt_version=version))
    return out


def export_pairs(work: PairsWorkFile, out_dir: Path, *, options: PairsOptions, only: set[str] | None = None,
                 sense: bool = False) -> PairsSummary:
    """Derive sft.jsonl, dpo.jsonl, labels.jsonl (and sense.jsonl) from the work file's labels, for the
    questions in `only` (default: all), each file replaced whole."""
    out_dir = Path(out_dir)
    strong_config = work.config("strong") or {}
    model = strong_config.get("model")
    questions = [q for q in work.questions() if only is None or q.id in only]
    by_question: dict[tuple[str, str], list[CandidateRow]] = {}
    for c in work.candidates():
        by_question.setdefault((c.id, c.role), []).append(c)
    summary = PairsSummary(out_dir=out_dir, config={"strong": strong_config, "weak": work.config("weak"),
                                                    "pairing": options.pairing,
                                                    "pairs_per_question": options.pairs_per_question})
    sft: list[dict] = []
    dpo: list[dict] = []
    sense_pairs: list[dict] = []
    labels: list[dict] = []
    skipped: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    seconds = 0.0
    for q in questions:
        summary.questions += 1
        if q.status != OK:
            skipped[q.status] += 1
            continue
        strong = by_question.get((q.id, "strong"), [])
        weak = by_question.get((q.id, "weak"), [])
        if not strong:
            continue  # recorded by a run killed between the question and its candidates: not labelled yet
        summary.labelled += 1
        version = prompt_version(q.dialect, cot=options.cot)
        for c in [*strong, *weak]:
            labels.append({"id": q.id, "database": q.database, "question": q.question, "role": c.role,
                           "model": c.model, "candidate": c.idx, "sql": c.sql, "correct": c.correct,
                           "reason": c.reason, "note": c.note, "reply": c.reply})
            seconds += c.seconds or 0.0
        summary.candidates += len(strong)
        summary.correct += sum(c.correct for c in strong)
        reasons.update(_reason_kind(c.reason) for c in strong if not c.correct)
        summary.weak_candidates += len(weak)
        summary.weak_correct += sum(c.correct for c in weak)

        correct, wrong = _answers(strong, cot=options.cot)
        seen: set[str] = set()
        gold = _Answer(q.gold_sql, q.gold_reply, None, None) if q.gold_reply and q.gold_sql else None
        common = dict(database=q.database, dialect=q.dialect, question=q.question, difficulty=q.difficulty,
                      prompt_version=version)
        if gold is not None:
            for a in _distinct([gold], q.dialect, seen=seen):
                sft.append(sft_record(q.prompt or [], a.reply, sql=a.sql or "", source="gold", model=None, **common))
        for a in _distinct(correct, q.dialect, seen=seen):
            sft.append(sft_record(q.prompt or [], a.reply, sql=a.sql or "", source="sampled", model=a.model,
                                  **common))
        chosen = _distinct(correct, q.dialect)
        rejected = _distinct(wrong, q.dialect)
        summary.with_correct += bool(chosen)
        summary.with_pair += bool(chosen and rejected)
        dpo += _pair_records(q, chosen, rejected, strategy=options.pairing, pairing_name=options.pairing,
                             n=options.pairs_per_question, seed=options.seed, version=version, model=model)
        if sense:
            strong_right = chosen or ([gold] if gold is not None else [])
            _, weak_wrong = _answers(weak, cot=options.cot)
            sense_pairs += _pair_records(q, strong_right, _distinct(weak_wrong, q.dialect),
                                         strategy=options.pairing, pairing_name="sense",
                                         n=options.pairs_per_question, seed=options.seed, version=version,
                                         model=model)
    summary.skipped = dict(sorted(skipped.items()))
    summary.reasons = dict(reasons.most_common())
    summary.seconds = seconds
    total = summary.candidates + summary.weak_candidates
    summary.samples_per_hour = total / (seconds / 3600) if seconds > 0 else None
    summary.records["sft"] = write_records(out_dir / FILES["sft"], sft)
    summary.records["dpo"] = write_records(out_dir / FILES["dpo"], dpo)
    summary.files = {"sft": str(out_dir / FILES["sft"]), "dpo": str(out_dir / FILES["dpo"])}
    if sense:
        summary.records["sense"] = write_records(out_dir / FILES["sense"], sense_pairs)
        summary.files["sense"] = str(out_dir / FILES["sense"])
    summary.records["labels"] = _write_lines(out_dir / FILES["labels"], labels)
    summary.files["labels"] = str(out_dir / FILES["labels"])
    summary.files["summary"] = str(out_dir / FILES["summary"])
    summary.files["work"] = str(work.path)
    return summary


def _reason_kind(reason: str | None) -> str:
    """A reason as a summary counts it: "wrong result", or the error's first words ("error: no such column")."""
    if not reason or reason == WRONG_RESULT:
        return WRONG_RESULT
    text = reason.split(":", 2)
    return ":".join(text[:2]).strip() if len(text) > 2 else reason


def _write_lines(path: Path, rows: Sequence[dict]) -> int:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)
    return len(rows)


def _write_summary(summary: PairsSummary) -> None:
    path = Path(summary.files.get("summary") or summary.out_dir / FILES["summary"])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
