"""The ask pipeline: question + database -> Answer.

    schema (cached per database) -> values (hints) -> linking (only past the token budget) -> prompt
    -> draw (greedy, then samples, each executed guarded and limited, until n or the vote is decided)
    -> repair -> vote -> abstain? -> chart (by code) -> summary (by the model, when asked)

A question may follow up on earlier ones (`turns`, pipeline/conversation.py); progress goes to `on_event`
(pipeline/events.py); `cancel` is polled between model calls and by the backend while it decodes.

`AskOptions` holds every knob, and its field defaults are THE defaults of the pipeline (tuned for
quality per second on a 2-core CPU; change them here, with the measurement that justifies it).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqlwright.db.base import MAX_ROWS_LIMIT, Database
from sqlwright.db.render import render_schema
from sqlwright.db.schema import Schema
from sqlwright.errors import ConfigError, EmptyDatabase, InvalidQuestion, SqlwrightError
from sqlwright.llm.base import LLM, Message, raise_if_stopped
from sqlwright.pipeline.abstain import abstention_reason
from sqlwright.pipeline.chart import chart_spec
from sqlwright.pipeline.conversation import Turn, checked_turns, conversation_sql, conversation_text
from sqlwright.pipeline.draw import draw_candidates
from sqlwright.pipeline.embeddings import load_default_embedder
from sqlwright.pipeline.events import EventCallback, EventSink
from sqlwright.pipeline.examples import (
    Demonstration,
    ExampleStore,
    NoteHint,
    nearest_examples,
    nearest_notes,
    render_demonstrations,
    render_notes,
)
from sqlwright.pipeline.execute import Executor
from sqlwright.pipeline.generate import Usage
from sqlwright.pipeline.linking import link_schema
from sqlwright.pipeline.prompt import build_messages, schema_block
from sqlwright.pipeline.repair import repair_candidates
from sqlwright.pipeline.select import vote_by_result
from sqlwright.pipeline.summary import summarize as summarize_answer
from sqlwright.pipeline.types import Answer
from sqlwright.pipeline.values import ValueIndex, render_value_hints

log = logging.getLogger(__name__)

PLAIN_MAX_TOKENS = 512  # a plain reply is one SQL block; long enough for big joins
COT_MAX_TOKENS = 1280  # reasoning first, then the SQL
_SCHEMA_CACHE_SIZE = 32  # databases whose schema rendering an Engine keeps
NOTES_BUDGET_TOKENS = 400  # prompt tokens the notes may take


class AskOptions(BaseModel):
    """Options of one `ask`. The defaults here are the pipeline's defaults (one place)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidates: int = Field(3, ge=1, le=64, description="SQL candidates per question (1 greedy + samples). "
                            "3 did as well as 4 on Spider dev with the 1.5B model in 82% of the time (bench/revote.py).")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature of the extra candidates.")
    early_stop: bool = Field(True, description="Stop drawing samples once the rest could not change the vote's "
                             "winner nor an abstention (same answers, fewer model calls; see draw.py).")
    repair_rounds: int = Field(1, ge=0, le=5, description="Times a failing or suspicious SQL is sent back.")
    max_repairs: int = Field(2, ge=0, description="Repair calls to the model per question, at most.")
    repair_when: Literal["no-answer", "any-failure"] = Field(
        "no-answer", description="Repair only when no candidate ran ('no-answer'), or every failing or "
        "suspicious candidate ('any-failure': +0.7 EX point on Spider dev with the 1.5B model for +40% time).")
    linking: bool = Field(True, description="Prune the schema when its rendering exceeds schema_budget_tokens.")
    values: bool = Field(True, description="Look up database values the question names; hint them.")
    abstain_below: float = Field(0.0, ge=0.0, le=1.0,
                                 description="Abstain when the vote's confidence is below this (0: never). "
                                 "In bench/abstention.py (1.5B, 3 candidates) 1.0 maximised "
                                 "TrustSQL's RS(10) and RS(N), 0.6666 (a majority) RS(0).")
    cot: bool = Field(False, description="Ask the model to reason step by step before the SQL.")
    max_tokens: int | None = Field(None, gt=0, description="Tokens per reply (default: 512 plain, 1280 cot).")
    timeout: float | None = Field(None, gt=0, description="Seconds per SQL statement (default: the database's).")
    max_rows: int | None = Field(None, gt=0, le=MAX_ROWS_LIMIT, description="Rows per statement (default: the database's).")
    seed: int | None = Field(0, description="Sampling seed, for reproducible runs (None: random).")
    schema_budget_tokens: int = Field(3000, gt=0, description="Prompt tokens the schema may take before linking.")
    examples: int = Field(3, ge=0, le=32, description="Stored examples (taught, or learned and verified) shown "
                          "to the model: the ones whose questions are nearest this one (0: none).")
    examples_budget_tokens: int = Field(800, gt=0, description="Prompt tokens the examples may take.")
    examples_min_similarity: float = Field(0.0, ge=0.0, le=1.0, description="Show a stored example only when its "
                                           "question is at least this similar to the new one (embedding cosine; "
                                           "0: the k nearest whatever their similarity).")
    notes: int = Field(5, ge=0, le=32, description="Stored notes (business definitions) shown to the model: "
                       "the ones nearest the question (0: none).")

    @classmethod
    def greedy(cls, **overrides: object) -> AskOptions:
        """The baseline: one greedy candidate, no repair, whole schema, no value hints."""
        values: dict[str, object] = {"candidates": 1, "repair_rounds": 0, "linking": False, "values": False}
        values.update(overrides)
        return cls(**values)

    def reply_tokens(self) -> int:
        """Tokens allowed per model reply."""
        return self.max_tokens or (COT_MAX_TOKENS if self.cot else PLAIN_MAX_TOKENS)


def checked_question(question: object, evidence: object, max_chars: int) -> tuple[str, str | None]:
    """The question and evidence stripped, or InvalidQuestion before any model work: empty, not text, or
    longer than `max_chars` (the max_question_chars setting)."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidQuestion("the question is empty; ask something about the data")
    if evidence is not None and not isinstance(evidence, str):
        raise InvalidQuestion("the evidence must be text")
    question = question.strip()
    evidence = evidence.strip() if evidence and evidence.strip() else None
    for what, text in (("question", question), ("evidence", evidence)):
        if text is not None and len(text) > max_chars:
            raise InvalidQuestion(
                f"the {what} is too long: {len(text):,} characters, at most {max_chars:,} "
                "(shorten it, or raise max_question_chars: SQLWRIGHT_MAX_QUESTION_CHARS)"
            )
    return question, evidence


def require_tables(schema: Schema, url: str) -> Schema:
    """`schema`, or EmptyDatabase when it has no tables: nothing to ask a model about."""
    if not schema.tables:
        raise EmptyDatabase(f"the database {url} has no tables: nothing to ask about (is it the right one?)")
    return schema


@dataclass
class _DatabaseContext:
    """What an Engine keeps per database (keyed by URL and fingerprint)."""

    schema: Schema
    text: str  # the full schema rendering
    tokens: int  # its length in the model's tokens
    values: ValueIndex | None = None
    identity: tuple[str, str] | None = None  # (database key, schema fingerprint) for the examples store


@dataclass(frozen=True)
class _Prompt:
    """What `Engine._prompt` prepared for one question."""

    context: _DatabaseContext
    messages: list[Message]
    shared_prefix: str | None  # the prompt prefix a backend may keep (None: the schema was pruned)
    demos: list[Demonstration]
    notes: list[NoteHint]


class Engine:
    """Answers questions about databases with one LLM. Keeps schemas (and value indexes) per database,
    so that repeated questions pay introspection once. Use from one thread at a time."""

    def __init__(self, llm: LLM, options: AskOptions | None = None, *, cache_dir: Path | None = None,
                 max_question_chars: int | None = None, store: ExampleStore | None = None) -> None:
        self.llm = llm
        self.options = options or AskOptions()
        self.store = store  # where taught and learned examples and notes are kept (None: none shown)
        self._cache_dir = cache_dir
        self._max_question_chars = max_question_chars
        self._contexts: OrderedDict[tuple[str, str], _DatabaseContext] = OrderedDict()

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            from sqlwright.config import load_settings

            self._cache_dir = load_settings().cache_dir
        return self._cache_dir

    @property
    def max_question_chars(self) -> int:
        if self._max_question_chars is None:
            from sqlwright.config import load_settings

            self._max_question_chars = load_settings().max_question_chars
        return self._max_question_chars

    def _options(self, overrides: dict[str, object]) -> AskOptions:
        if not overrides:
            return self.options
        try:
            return AskOptions(**{**self.options.model_dump(), **overrides})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"invalid ask option {field}: {err['msg']}") from exc

    def _context(self, db: Database) -> _DatabaseContext:
        key = (db.url, db.fingerprint())
        context = self._contexts.get(key)
        if context is None:
            # The database object caches its schema; re-introspect when its content changed since
            # this engine last saw it.
            changed = any(url == db.url for url, _ in self._contexts)
            schema = require_tables(db.schema(refresh=changed), db.url)
            for stale in [k for k in self._contexts if k[0] == db.url]:
                del self._contexts[stale]
            text = render_schema(schema)
            context = _DatabaseContext(schema, text, self.llm.count_tokens(text))
            self._contexts[key] = context
            while len(self._contexts) > _SCHEMA_CACHE_SIZE:
                self._contexts.popitem(last=False)
        self._contexts.move_to_end(key)
        return context

    def _value_index(self, db: Database, context: _DatabaseContext) -> ValueIndex | None:
        if context.values is None:
            try:
                context.values = ValueIndex.for_database(db, self.cache_dir)
            except SqlwrightError as exc:  # hints are an aid: answer without them rather than fail
                log.warning("no value hints for %s: %s", db.url, exc)
                return None
        return context.values

    def identity(self, db: Database) -> tuple[str, str]:
        """(database key, schema fingerprint) of `db`: what the examples store files its examples under."""
        context = self._context(db)
        if context.identity is None:
            from sqlwright.db.identity import database_key, schema_fingerprint

            context.identity = (database_key(db), schema_fingerprint(context.schema))
        return context.identity

    def _demonstrations(self, db: Database, question: str,
                        opts: AskOptions) -> tuple[list[Demonstration], list[NoteHint]]:
        """The stored examples and notes to show for `question` (none without a store)."""
        if self.store is None or (opts.examples <= 0 and opts.notes <= 0):
            return [], []
        key, fingerprint = self.identity(db)
        stored = self.store.examples(key, schema_fingerprint=fingerprint) if opts.examples > 0 else []
        notes = self.store.notes(key, schema_fingerprint=fingerprint) if opts.notes > 0 else []
        if not stored and not notes:
            return [], []  # nothing stored: the embedding model is not even loaded
        embedder = load_default_embedder(self.cache_dir)
        demos = nearest_examples(question, stored, k=opts.examples, embedder=embedder,
                                 budget_tokens=opts.examples_budget_tokens, count_tokens=self.llm.count_tokens,
                                 min_similarity=opts.examples_min_similarity)
        hints = nearest_notes(question, notes, k=opts.notes, embedder=embedder,
                              budget_tokens=NOTES_BUDGET_TOKENS, count_tokens=self.llm.count_tokens)
        return demos, hints

    def prompt(self, db: Database, question: str, *, evidence: str | None = None, turns: Sequence[Turn] = (),
               **overrides: object) -> list[Message]:
        """The chat messages `ask` sends the model for `question` about `db` (same schema rendering, value
        hints, linking, examples, notes and layout), without asking: training data built from them
        (sqlwright.train) teaches the model the very prompt it is served."""
        question, evidence = checked_question(question, evidence, self.max_question_chars)
        return self._prompt(db, question, evidence, checked_turns(turns), self._options(overrides)).messages

    def _prompt(self, db: Database, question: str, evidence: str | None, turns: Sequence[Turn], opts: AskOptions,
                *, lap: Callable[[str, float], float] | None = None, events: EventSink | None = None) -> _Prompt:
        """Schema, value hints, linking, examples and notes for `question`, and the messages built from them.
        `lap(stage, since)` records each stage's seconds; `events` gets the schema and examples events."""
        lap = lap or (lambda stage, since: time.perf_counter())
        events = events or EventSink(None)
        t = time.perf_counter()
        context = self._context(db)
        t = lap("schema", t)

        # A follow-up's own words name little ("and in 2023?"): the conversation's are looked up with it.
        lookup = conversation_text(turns, question) if turns else question
        matches = []
        hints = None
        if opts.values:
            index = self._value_index(db, context)
            if index is not None:
                matches = index.match(lookup)
                hints = render_value_hints(matches, schema=context.schema) or None
        t = lap("values", t)

        schema_text = context.text
        shown_tables = [table.name for table in context.schema.tables]
        shown_tokens = context.tokens
        shared_prefix: str | None = schema_block(schema_text, dialect=db.dialect)
        if opts.linking and context.tokens > opts.schema_budget_tokens:
            link_evidence = "\n".join(filter(None, [evidence, conversation_sql(turns)])) or None
            linked = link_schema(context.schema, lookup, evidence=link_evidence,
                                 budget_tokens=opts.schema_budget_tokens, count_tokens=self.llm.count_tokens,
                                 value_matches=matches)
            if linked.pruned:
                schema_text = render_schema(linked.schema)
                shared_prefix = None  # pruned for this question: nothing worth keeping for the next one
                shown_tables = [table.name for table in linked.schema.tables]
                shown_tokens = self.llm.count_tokens(schema_text)
                log.debug("linked %d of %d tables", len(linked.schema.tables), len(context.schema.tables))
        t = lap("linking", t)
        events.emit("schema", {"tables": shown_tables, "tokens": shown_tokens,
                               "total_tables": len(context.schema.tables), "pruned": shared_prefix is None})

        demos, notes = self._demonstrations(db, lookup, opts)
        t = lap("examples", t)
        events.emit("examples", {"examples": [d.to_dict() for d in demos], "notes": [n.to_dict() for n in notes]})

        messages = build_messages(schema_text, question, dialect=db.dialect, value_hints=hints,
                                  evidence=evidence, cot=opts.cot, examples=render_demonstrations(demos),
                                  notes=render_notes(notes), turns=turns)
        return _Prompt(context, messages, shared_prefix, demos, notes)

    def ask(self, db: Database, question: str, *, evidence: str | None = None, turns: Sequence[Turn] = (),
            on_event: EventCallback | None = None, cancel: Callable[[], bool] | None = None,
            summarize: bool = False, **overrides: object) -> Answer:
        """Answer `question` about `db`. `overrides` replace fields of the engine's AskOptions.

        `turns`: the earlier questions of a conversation and their SQL (the last MAX_TURNS are sent), for a
        follow-up. `on_event(kind, data)`: progress (pipeline/events.py). `cancel`: polled between model calls
        and by the backend between tokens; when it returns True, `Cancelled` is raised. `summarize`: also ask
        the model for the answer in one sentence (`Answer.summary`)."""
        question, evidence = checked_question(question, evidence, self.max_question_chars)
        turns = checked_turns(turns)
        for turn in turns:  # an earlier question is held to the same length cap as a new one
            checked_question(turn.question, None, self.max_question_chars)
        opts = self._options(overrides)
        events = EventSink(on_event)
        timings: dict[str, float] = {}
        started = time.perf_counter()

        def lap(stage: str, since: float) -> float:
            now = time.perf_counter()
            timings[stage] = now - since
            return now

        raise_if_stopped(cancel)
        prompt = self._prompt(db, question, evidence, turns, opts, lap=lap, events=events)
        context, messages, shared_prefix = prompt.context, prompt.messages, prompt.shared_prefix
        demos, notes = prompt.demos, prompt.notes
        usage = Usage()
        executor = Executor(db, timeout=opts.timeout, max_rows=opts.max_rows)
        pool, undrawn = draw_candidates(self.llm, executor, messages, question=question, n=opts.candidates,
                                        temperature=opts.temperature, max_tokens=opts.reply_tokens(),
                                        seed=opts.seed, cot=opts.cot, early_stop=opts.early_stop,
                                        abstain_below=opts.abstain_below, usage=usage, timings=timings,
                                        shared_prefix=shared_prefix, on_candidate=events.candidate,
                                        should_stop=cancel)
        raise_if_stopped(cancel)  # the last model call may have ended after the cancel came
        t = time.perf_counter()

        if opts.repair_rounds > 0 and opts.max_repairs > 0:
            pool = repair_candidates(self.llm, executor, pool, messages, question=question,
                                     rounds=opts.repair_rounds, max_repairs=opts.max_repairs,
                                     max_tokens=opts.reply_tokens(), seed=opts.seed,
                                     abstain_below=opts.abstain_below, usage=usage,
                                     only_without_answer=opts.repair_when == "no-answer",
                                     schema=context.schema, on_repair=events.repair, should_stop=cancel)
            raise_if_stopped(cancel)
        t = lap("repair", t)

        selection = vote_by_result(pool, db.dialect, undrawn=undrawn)
        reason = abstention_reason(selection, abstain_below=opts.abstain_below)
        t = lap("select", t)
        events.emit("vote", {"confidence": selection.confidence, "groups": list(selection.group_sizes),
                             "voters": selection.voters, "undrawn": undrawn})

        chosen = selection.chosen
        answered = reason is None and chosen is not None
        summary = None
        if summarize:
            if answered:
                assert chosen is not None
                summary = summarize_answer(self.llm, question, chosen.sql, chosen.columns, chosen.rows or (),
                                           truncated=chosen.truncated, should_stop=cancel, usage=usage)
                t = lap("summary", t)
            events.emit("summary", {"summary": summary})
        timings["total"] = time.perf_counter() - started

        common = {"question": question, "confidence": selection.confidence, "candidates": selection.candidates,
                  "timings": timings, "prompt_tokens": usage.prompt_tokens,
                  "completion_tokens": usage.completion_tokens, "undrawn": undrawn,
                  "examples": tuple(demos), "notes": tuple(notes)}
        if not answered:
            log.info("abstained on %r: %s", question, reason)
            answer = Answer(sql=None, abstained=True, reason=reason, **common)
        else:
            assert chosen is not None
            rows = chosen.rows or ()
            chart = chart_spec(chosen.columns, rows, truncated=chosen.truncated)
            answer = Answer(sql=chosen.sql, columns=chosen.columns, rows=rows, truncated=chosen.truncated,
                            chart=chart.to_dict() if chart is not None else None, summary=summary, **common)
        events.emit("answer", answer.to_dict())
        return answer
