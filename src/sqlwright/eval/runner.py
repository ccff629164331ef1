"""The evaluation runner: predict, execute gold and prediction, compare, record — in parallel, resumably.

The main process asks the predictor (sequentially: a model uses all cores by itself), stores each
prediction in the run file, and sends the comparison to a pool of worker processes. With a model
behind a server, ``concurrency`` threads ask it up to that many questions at once; the main process
alone still writes the run file, one prediction per transaction as each comes back, so a run killed
at any moment (even SIGKILL) loses only the questions in flight and records none twice. Each worker opens
every database it needs once (by URL) and keeps it open; gold results are computed once per run and
cached in the run file. Every statement runs with a time limit, and a task that outlives its whole
budget (a statement the database could not stop) has its worker killed and gets the verdict error
"timeout", so a run never hangs. Verdicts are committed one by one as they arrive, so a killed run
resumes where it stopped.

Stopping: SIGINT (Ctrl-C) and SIGTERM stop a run cleanly (workers killed, every verdict that reached
the main process kept) and raise :class:`EvalInterrupted`. A runner that dies without cleaning up
(SIGKILL) takes its worker processes with it: each worker exits when the runner's end of a pipe
closes, which the kernel does however the runner ends (see :func:`_watch_runner`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlwright.db.result import Result
from sqlwright.errors import ConfigError, DatasetError, QueryTimeout, SqlwrightError
from sqlwright.eval.compare import CompareContext, get_rule, normalize_result, soft_f1
from sqlwright.eval.metrics import summarize, ves_reward_from_times
from sqlwright.eval.predictors import FilePredictor, Predictor
from sqlwright.eval.runfile import RunFile, gold_key
from sqlwright.eval.types import Example, Prediction, Verdict

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # seconds per statement during evaluation
DEFAULT_MAX_ROWS = 100_000  # rows per result; a larger result is an error, never a silent cut
CHUNK = 8  # fewest examples per inter-process call when predictions come from a file
MAX_CHUNK = 64  # most examples per call: a killed worker's chunk is done again, so keep chunks short
KILL_GRACE = 30.0  # seconds a task may run past its statements' budget before its worker is killed
TIMEOUT = "timeout"
ORPHANED_EXIT = 70  # a worker's exit status when it stops because the runner is gone


class EvalInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM. The run file holds every verdict that was finished,
    so running the same evaluation on it again continues where this one stopped.

    A KeyboardInterrupt, so that whatever handles Ctrl-C handles it (and no `except Exception` eats it).
    """

    def __init__(self, done: int, total: int, run_file: Path, signum: int) -> None:
        super().__init__(f"interrupted: {done} of {total} questions done")
        self.done, self.total, self.run_file, self.signum = done, total, Path(run_file), signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


class _Terminated(KeyboardInterrupt):
    """Raised in the main thread by the SIGTERM handler a run installs (see :func:`_sigterm_stops_run`)."""


@contextlib.contextmanager
def _sigterm_stops_run() -> Iterator[None]:
    """While a run goes, SIGTERM stops it the way Ctrl-C does (an exception in the main thread), so that
    its workers are killed and its run file closed instead of the process vanishing mid-write.

    Only when SIGTERM still has its default action (an embedding application that chose what SIGTERM
    does keeps its choice) and only on the main thread, where Python runs signal handlers.
    """
    chosen_elsewhere = signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    if chosen_elsewhere or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the work of one example (runs in a worker process) ------------------------------------------
@dataclass(frozen=True)
class CompareTask:
    """Everything a worker needs to judge one example (picklable)."""

    position: int
    example: Example
    prediction: Prediction
    database_url: str
    rule: str
    gold_sqls: tuple[str, ...]  # the gold queries to run, already rewritten by the rule
    gold_keys: tuple[str, ...]
    cached_gold: tuple[Result | str | None, ...]  # per gold query: result, error, or None (not cached)
    timeout: float
    max_rows: int
    ves_repeats: int = 0

    @property
    def budget(self) -> float:
        """Seconds of statements this task may run at most (gold, prediction, timing repeats)."""
        return self.timeout * (len(self.gold_sqls) + 1 + 2 * self.ves_repeats)


@dataclass(frozen=True)
class CompareOutcome:
    position: int
    verdict: Verdict
    new_gold: tuple[tuple[str, Result | str], ...] = ()


_DATABASES: dict[str, Any] = {}  # per worker process: URL -> open Database


def _database(url: str):
    db = _DATABASES.get(url)
    if db is None:
        from sqlwright.db import open_database

        db = _DATABASES[url] = open_database(url)
    return db


def _execute(db, sql: str, task: CompareTask, *, guard: bool) -> Result | str:
    """Run one statement: the normalised result, or its error as one line ("timeout" for timeouts)."""
    try:
        return normalize_result(db.execute(sql, timeout=task.timeout, max_rows=task.max_rows, guard=guard))
    except QueryTimeout:
        return TIMEOUT
    except SqlwrightError as exc:
        return str(exc) or type(exc).__name__


def _time_runs(db, gold_sql: str, pred_sql: str, task: CompareTask) -> float | None:
    """BIRD's R-VES reward from `ves_repeats` alternating timed runs of gold and prediction."""
    gold_times, pred_times = [], []
    for _ in range(task.ves_repeats):
        for sql, times, guard in ((pred_sql, pred_times, True), (gold_sql, gold_times, False)):
            start = time.perf_counter()
            if isinstance(_execute(db, sql, task, guard=guard), str):
                return 0.0
            times.append(time.perf_counter() - start)
    return ves_reward_from_times(gold_times, pred_times)


def evaluate_task(task: CompareTask) -> CompareOutcome:
    """Judge one prediction: run (or reuse) the gold queries, run the prediction, compare by the rule."""
    ex, pred = task.example, task.prediction
    base = {
        "id": ex.id,
        "pred_sql": pred.sql,
        "seconds": pred.seconds,
        "prompt_tokens": pred.prompt_tokens,
        "completion_tokens": pred.completion_tokens,
    }
    if pred.error:
        return CompareOutcome(task.position, Verdict(correct=False, error=pred.error, **base))
    if pred.sql is None:  # abstained: right exactly when the question cannot be answered
        return CompareOutcome(task.position, Verdict(correct=not ex.feasible, abstained=True, **base))
    if not ex.feasible:  # any answer to an infeasible question is wrong
        return CompareOutcome(task.position, Verdict(correct=False, **base))
    rule = get_rule(task.rule)
    try:
        db = _database(task.database_url)
    except SqlwrightError as exc:
        return CompareOutcome(task.position, Verdict(correct=False, gold_error=str(exc), **base))

    golds: list[tuple[str, Result]] = []
    gold_errors: list[str] = []
    new_gold: list[tuple[str, Result | str]] = []
    for sql, key, cached in zip(task.gold_sqls, task.gold_keys, task.cached_gold, strict=True):
        # Gold SQL is the benchmark's own trusted text: it runs on the read-only connection with
        # the time limit but without the guard, which would refuse e.g. SQL-Eval's CURRENT_DATE.
        result = cached if cached is not None else _execute(db, sql, task, guard=False)
        if cached is None:
            new_gold.append((key, result))
        if isinstance(result, str):
            gold_errors.append(result)
        elif result.truncated:
            gold_errors.append(f"gold result has more than {task.max_rows} rows")
        else:
            golds.append((sql, result))
    if not golds:
        verdict = Verdict(correct=False, gold_error=gold_errors[0], **base)
        return CompareOutcome(task.position, verdict, tuple(new_gold))

    pred_sql = rule.prepare(pred.sql).strip()
    # The very text of a gold query on the same database gives the gold's rows: reuse them instead of
    # running it again. Nothing runs, so the guard (which protects executions) has nothing to check;
    # and every rule judges a result to be the same answer as itself, so nothing is compared either.
    same = next((r for s, r in golds if s.strip() == pred_sql), None)
    if same is not None and task.ves_repeats == 0:
        f1 = 1.0 if same is golds[0][1] else soft_f1(golds[0][1], same)
        return CompareOutcome(task.position, Verdict(correct=True, soft_f1=f1, **base), tuple(new_gold))
    pred_result = _execute(db, pred_sql, task, guard=True)
    if isinstance(pred_result, str):
        verdict = Verdict(correct=False, error=pred_result, soft_f1=0.0, **base)
        return CompareOutcome(task.position, verdict, tuple(new_gold))
    if pred_result.truncated:
        verdict = Verdict(
            correct=False, error=f"result has more than {task.max_rows} rows", soft_f1=0.0, **base
        )
        return CompareOutcome(task.position, verdict, tuple(new_gold))

    ctx = CompareContext(gold_sql=ex.gold, question=ex.question, category=ex.category, dialect=db.dialect,
                         pred_sql=pred_sql)
    judgement = rule.judge([r for _, r in golds], pred_result, ctx)
    correct = judgement.correct
    f1 = soft_f1(golds[0][1], pred_result)
    ves = None
    if task.ves_repeats > 0:
        ves = _time_runs(db, golds[0][0], pred_sql, task) if correct else 0.0
    verdict = Verdict(correct=correct, soft_f1=f1, ves=ves, note=judgement.note, **base)
    return CompareOutcome(task.position, verdict, tuple(new_gold))


# --- the pool --------------------------------------------------------------------------------------
_SLOT: Any = None  # per worker process: (shared array, index) where it records the task it is on
PRELOAD = ("__main__", "sqlwright.eval.runner")  # what the fork server imports once for all workers


def worker_context() -> multiprocessing.context.BaseContext:
    """Where worker processes come from: a fork server where the platform has one, else spawn.

    Never a fork of the main process, which may hold a loaded model and its threads. The fork server is
    a clean process, started once per main process, that imports the evaluator (:data:`PRELOAD`)
    before forking workers: a worker then costs a fork, not a new interpreter and its imports (about
    0.3 s of CPU each), and so does every restart after a task is killed.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


def chunk_size(tasks: int, workers: int) -> int:
    """Examples per inter-process call for predictions read from a file: about eight chunks per worker
    (fewer round trips, each worker still kept busy to the end), within [CHUNK, MAX_CHUNK]."""
    return max(CHUNK, min(MAX_CHUNK, tasks // (8 * max(1, workers))))


def _ready() -> None:
    """A no-op task that makes the pool start its processes."""


def _watch_runner(lifeline: multiprocessing.connection.Connection) -> None:
    """In a worker: end the process as soon as the runner's end of `lifeline` closes.

    The runner never writes to the pipe, so a read returns only at end-of-file, which comes when the
    runner closes its end or ends in any way (even SIGKILL: the kernel closes its descriptors). Without
    this a worker outlives a killed runner forever, blocked on its task queue, and so do the fork server
    and the resource tracker: every worker holds the write end of the fork server's "alive" pipe and a
    descriptor of the tracker's pipe, and each of those two exits only when all of them are closed. Once
    the workers are gone both follow by themselves. (A parent-death signal would not do: a worker's
    parent is the fork server, which is kept alive by the workers.)
    """
    with contextlib.suppress(EOFError, OSError):
        while True:
            lifeline.recv_bytes()
    os._exit(ORPHANED_EXIT)


def _init_worker(slots: Any, claims: Any, lifeline: multiprocessing.connection.Connection) -> None:
    global _SLOT
    # Ctrl-C in a terminal signals the whole process group; the runner decides what stops and when.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch = threading.Thread(target=_watch_runner, args=(lifeline,), name="runner-watch", daemon=True)
    watch.start()
    with claims.get_lock():
        index, claims.value = claims.value, claims.value + 1
    _SLOT = (slots, index % (len(slots) // 2))


def _run_chunk(work: Callable[[CompareTask], CompareOutcome], tasks: list[CompareTask]) -> list[CompareOutcome]:
    """Do `tasks` in order, recording in shared memory which one this worker is on and since when
    (its time budget counts from there, not from when it was queued or while the worker was starting)."""
    out = []
    for task in tasks:
        if _SLOT is not None:
            slots, i = _SLOT
            slots[2 * i + 1] = time.monotonic()  # the time first, the position second: see _Pool._running
            slots[2 * i] = task.position
        out.append(work(task))
    return out


class _Pool:
    """A process pool fed with chunks of tasks, a wall-clock budget per task, and restart-on-kill.

    Chunks (up to `chunk` tasks) cut the per-task cost of inter-process calls when predictions come
    from a file; with a model, `chunk=1` sends each prediction as soon as it exists. A task past its
    budget gets a "timeout" verdict, the pool is killed and every other unfinished task is sent again
    to a fresh pool. `workers=0` evaluates in this process.
    """

    def __init__(
        self,
        workers: int,
        on_done: Callable[[CompareTask, CompareOutcome], None],
        work: Callable[[CompareTask], CompareOutcome] = evaluate_task,
        chunk: int = 1,
    ) -> None:
        self.workers = workers
        self.on_done = on_done
        self.work = work  # module-level, so spawned workers can import it
        self.chunk = max(1, chunk)
        self.executor: cf.ProcessPoolExecutor | None = None
        self.slots: Any = None  # per worker: (position of the task it is on, when it began it)
        # The pipe whose end-of-file tells the executor's workers that this process is gone (the
        # write end never leaves this process; see _watch_runner).
        self.lifeline: tuple[multiprocessing.connection.Connection, ...] = ()
        self.pending: list[CompareTask] = []
        self.inflight: dict[cf.Future, list[CompareTask]] = {}
        self.by_position: dict[int, CompareTask] = {}  # the tasks of the chunks in flight

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        # Shared memory, not messages: the main process reads where each worker is when it polls,
        # and nothing is sent per task.
        ctx = worker_context()
        self.slots = ctx.RawArray("d", [-1.0, 0.0] * self.workers)
        reader, writer = ctx.Pipe(duplex=False)
        self.lifeline = (reader, writer)  # the reader too: workers may start later, and it is sent then
        return cf.ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker,
            initargs=(self.slots, ctx.Value("i", 0), reader),
        )

    def _cut_lifeline(self) -> None:
        lifeline, self.lifeline = self.lifeline, ()
        for end in lifeline:
            end.close()

    def start(self) -> None:
        """Start the worker processes now (they start at the first chunk otherwise), so that they get
        ready while the main process prepares the work."""
        if self.workers <= 0 or self.executor is not None:
            return
        self.executor = self._new_executor()
        for _ in range(self.workers):
            self.executor.submit(_ready)

    def submit(self, task: CompareTask) -> None:
        if self.workers <= 0:
            self.on_done(task, self.work(task))
            return
        self.pending.append(task)
        if len(self.pending) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Send the pending tasks as one chunk (waiting while the workers have enough queued)."""
        if not self.pending:
            return
        # Two chunks per worker: one running, one queued, so no worker waits for the main process.
        while len(self.inflight) >= 2 * self.workers:
            self.poll(block=True)
        if self.executor is None:
            self.executor = self._new_executor()
        tasks, self.pending = self.pending, []
        self.inflight[self.executor.submit(_run_chunk, self.work, tasks)] = tasks
        self.by_position.update((t.position, t) for t in tasks)

    def _running(self) -> list[tuple[CompareTask, float]]:
        """The in-flight tasks the workers are on, with the (monotonic) time each began."""
        if self.slots is None:
            return []
        out = []
        for i in range(self.workers):
            # A worker writes the time, then the position; reading the position first means a torn
            # read can only pair a task with a later time (a later kill), never with an earlier one.
            position = int(self.slots[2 * i])
            began = self.slots[2 * i + 1]
            task = self.by_position.get(position)
            if task is not None:
                out.append((task, began))
        return out

    def poll(self, *, block: bool = False) -> None:
        """Hand finished tasks to `on_done`; kill and restart past-budget work."""
        if not self.inflight:
            return
        done, _ = cf.wait(list(self.inflight), timeout=0.2 if block else 0, return_when=cf.FIRST_COMPLETED)
        retry: list[CompareTask] = []
        for fut in done:
            tasks = self.inflight.pop(fut)
            for t in tasks:
                self.by_position.pop(t.position, None)
            try:
                outcomes = fut.result()
            except cf.process.BrokenProcessPool:
                retry.extend(tasks)
                continue
            for task, outcome in zip(tasks, outcomes, strict=True):
                self.on_done(task, outcome)
        now = time.monotonic()
        overdue = [task for task, began in self._running() if now - began > task.budget + KILL_GRACE]
        if overdue or retry:
            self._restart(overdue, retry)

    def _restart(self, overdue: list[CompareTask], retry: list[CompareTask]) -> None:
        hung = {t.position for t in overdue}
        for task in overdue:
            log.warning("example %s ran past its time budget; stopping its worker", task.example.id)
            p = task.prediction
            self.on_done(
                task,
                CompareOutcome(
                    task.position,
                    Verdict(id=p.id, correct=False, pred_sql=p.sql, error=TIMEOUT, seconds=p.seconds,
                            prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens),
                ),
            )
        again = retry + [t for tasks in self.inflight.values() for t in tasks if t.position not in hung]
        again += self.pending
        self.inflight.clear()
        self.by_position.clear()
        self.pending = []
        self._kill()
        for task in again:
            self.submit(task)
        self.flush()

    def _kill(self) -> None:
        executor, self.executor = self.executor, None
        if executor is None:
            return
        # ProcessPoolExecutor cannot cancel a running task; end its processes directly.
        for proc in list((getattr(executor, "_processes", None) or {}).values()):
            if proc.is_alive():
                proc.kill()
        executor.shutdown(wait=True, cancel_futures=True)
        self.slots = None
        self._cut_lifeline()

    def drain(self) -> None:
        self.flush()
        while self.inflight:
            self.poll(block=True)

    def collect_finished(self) -> None:
        """Hand the outcomes that have already arrived to `on_done` (before a stop, so none is lost)."""
        for fut, tasks in list(self.inflight.items()):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                del self.inflight[fut]
                for task, outcome in zip(tasks, fut.result(), strict=True):
                    self.by_position.pop(task.position, None)
                    self.on_done(task, outcome)

    def close(self, *, kill: bool = False) -> None:
        if kill:
            self.inflight.clear()
            self.by_position.clear()
            self.pending = []
            self._kill()
        elif self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
            self._cut_lifeline()


# --- predictions from several threads ---------------------------------------------------------------
class _PredictionThreads:
    """`n` threads that ask `predictor` for the examples put to them and hand back (position, example,
    database URL, prediction or the exception it raised). They never touch the run file.

    Daemon threads, and a stop that does not wait for them: a request in flight may take the model server's
    whole deadline, and an interrupted run should not (its answer is dropped, and asked again on resume).
    """

    def __init__(self, predictor: Predictor, n: int) -> None:
        self.predictor = predictor
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.stopped = threading.Event()
        self.inflight = 0  # put to the threads and not yet taken back (main thread only)
        self.threads = [threading.Thread(target=self._work, name=f"eval-predict-{i}", daemon=True)
                        for i in range(n)]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None and not self.stopped.is_set():
            position, example, url = job
            try:
                outcome: Prediction | BaseException = self.predictor.predict(example, url)
            except BaseException as exc:  # handed to the main thread, which decides
                outcome = exc
            self.results.put((position, example, url, outcome))

    def put(self, position: int, example: Example, url: str) -> None:
        self.jobs.put((position, example, url))
        self.inflight += 1

    def take(self, timeout: float) -> list[tuple[int, Example, str, Prediction | BaseException]]:
        """The outcomes that are in, waiting up to `timeout` seconds for a first one."""
        out = []
        try:
            out.append(self.results.get(timeout=timeout))
            while True:
                out.append(self.results.get_nowait())
        except queue.Empty:
            pass
        self.inflight -= len(out)
        return out

    def stop(self) -> None:
        """No more questions: idle threads end now, busy ones when their answer is in (then dropped)."""
        self.stopped.set()
        for _ in self.threads:
            self.jobs.put(None)


def _predict_concurrently(
    predictor: Predictor,
    todo: Sequence[tuple[int, Example]],
    stored: Mapping[str, Prediction],
    url_of: Callable[[Example], str],
    concurrency: int,
    save: Callable[[Prediction], None],
    judge: Callable[[int, Example, Prediction, str], None],
    poll: Callable[[], None],
) -> None:
    """Predict `todo` with up to `concurrency` questions in flight, in dataset order, saving each
    prediction (`save`) as it comes back and then handing it to `judge`; `poll` runs between waits."""
    threads = _PredictionThreads(predictor, concurrency)
    try:
        queued = iter(todo)
        more = True
        while more or threads.inflight:
            while more and threads.inflight < concurrency:
                item = next(queued, None)
                if item is None:
                    more = False
                    break
                position, example = item
                url = url_of(example)
                prediction = stored.get(example.id)
                if prediction is not None:  # asked before a resume: judged without asking again
                    judge(position, example, prediction, url)
                else:
                    threads.put(position, example, url)
            if threads.inflight:
                for position, example, url, outcome in threads.take(timeout=0.2):
                    if isinstance(outcome, BaseException):
                        raise outcome
                    save(outcome)
                    judge(position, example, outcome, url)
            poll()
    except BaseException:
        # Answers already back are kept (a resume need not ask for them again); those in flight are dropped.
        with contextlib.suppress(BaseException):
            for _, _, _, outcome in threads.take(timeout=0):
                if isinstance(outcome, Prediction):
                    save(outcome)
        raise
    finally:
        threads.stop()


# --- the run ---------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    """The outcome of a run: its configuration, metrics and one verdict per example (dataset order)."""

    run_file: Path
    config: dict
    metrics: dict
    pairs: list[tuple[Example, Verdict]] = field(default_factory=list)
    seconds: float = 0.0
    resumed: bool = False

    @property
    def ex(self) -> float:
        return self.metrics["ex"]

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for _, v in self.pairs]

    def results(self) -> list[dict]:
        """One entry per question: id, correct, pred_sql, gold_sql, error and the rest of its verdict."""
        return [
            {
                "id": e.id,
                "db": e.db,
                "question": e.question,
                "difficulty": e.difficulty,
                "category": e.category,
                "correct": v.correct,
                "pred_sql": v.pred_sql,
                "gold_sql": e.gold,
                "abstained": v.abstained,
                "error": v.error,
                "gold_error": v.gold_error,
                "soft_f1": v.soft_f1,
                "ves": v.ves,
                "seconds": v.seconds,
                "prompt_tokens": v.prompt_tokens,
                "completion_tokens": v.completion_tokens,
                "note": v.note,
            }
            for e, v in self.pairs
        ]

    def to_dict(self) -> dict:
        return {
            "run_file": str(self.run_file),
            "config": self.config,
            **self.metrics,
            "run_seconds": self.seconds,
            "results": self.results(),
        }


def examples_digest(examples: Sequence[Example]) -> str:
    """A fingerprint of the examples a run covers (ids and gold SQL, in order)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.id}\0{e.db}\0{e.gold}\n".encode())
    return h.hexdigest()[:16]


def run_config(dataset: Any, examples: Sequence[Example], *, timeout: float, ves_repeats: int,
               max_rows: int, extra: Mapping[str, Any] | None = None) -> dict:
    """The configuration a run file is bound to: what would change the verdicts if it changed."""
    config = {
        "dataset": dataset.name,
        "kind": dataset.kind,
        "comparison": dataset.comparison,
        "examples": len(examples),
        "examples_digest": examples_digest(examples),
        "timeout": timeout,
        "ves_repeats": ves_repeats,
        "max_rows": max_rows,
    }
    config.update(extra or {})
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def _progress(enabled: bool, total: int, completed: int):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]eval[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("EX {task.fields[ex]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
    task_id = progress.add_task("eval", total=total, completed=completed, ex="-")
    return progress, task_id


def run_eval(
    dataset: Any,
    predictor: Predictor | Mapping[str, Prediction],
    *,
    run_file: Path,
    examples: Iterable[Example] | None = None,
    workers: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
    ves_repeats: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = True,
    config: Mapping[str, Any] | None = None,
    exclude_dbs: Iterable[str] = (),
    concurrency: int = 1,
) -> RunSummary:
    """Evaluate `predictor` (or a mapping id -> Prediction) on `examples` (default: all of the dataset's).

    `run_file` holds the run; if it already holds one with the same configuration (the dataset, the
    examples, timeout, ves_repeats, max_rows and the caller's `config`, e.g. model and pipeline
    options) the run resumes, and with a different one it is refused (ConfigError). Returns the summary
    over every example, including those finished before a resume.

    `concurrency` > 1 asks the predictor up to that many questions at once, from threads; it needs a
    predictor whose `concurrent` attribute is true (a model behind a server), else ConfigError. It is not
    part of the run's configuration: it changes how fast the answers come, not what they are.

    SIGINT, and SIGTERM where it has its default action, stop the run: its workers are killed, the
    verdicts that arrived are stored, and EvalInterrupted says how many questions are done.
    """
    started = time.perf_counter()
    examples = list(dataset.examples if examples is None else examples)
    seen: set[str] = set()
    for e in examples:
        if e.id in seen:
            raise DatasetError(f"duplicate example id {e.id!r} in {dataset.name}")
        seen.add(e.id)
    if timeout <= 0:
        raise DatasetError(f"the timeout must be a positive number of seconds, not {timeout}")
    rule = get_rule(dataset.comparison)
    if isinstance(predictor, Mapping):
        predictor = FilePredictor(predictor)
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
    from_file = isinstance(predictor, FilePredictor)
    if concurrency > 1 and not from_file and not getattr(predictor, "concurrent", False):
        raise ConfigError(
            f"concurrency {concurrency} needs a model behind a server (openai:NAME); this model answers one "
            "question at a time"
        )
    full_config = run_config(
        dataset, examples, timeout=timeout, ves_repeats=ves_repeats, max_rows=max_rows, extra=config
    )

    store = RunFile(Path(run_file))
    try:
        resumed = store.bind(full_config)
        done = store.done_ids()
        stored = store.predictions()
        todo = [(i, e) for i, e in enumerate(examples) if e.id not in done]
        if resumed:
            log.info("resuming %s: %d of %d examples done", run_file, len(examples) - len(todo), len(examples))
        urls: dict[str, str] = {}
        tally = {"correct": sum(v.correct for _, v in store.verdicts() if v.id in seen), "done": len(done & seen)}

        bar, bar_task = _progress(progress, len(examples), tally["done"])

        def on_done(task: CompareTask, outcome: CompareOutcome) -> None:
            store.save_verdict(task.position, task.example, outcome.verdict, outcome.new_gold)
            tally["done"] += 1
            tally["correct"] += int(outcome.verdict.correct)
            bar.update(bar_task, advance=1, ex=f"{tally['correct'] / tally['done']:.3f}")

        def url_of(example: Example) -> str:
            if example.db not in urls:
                urls[example.db] = dataset.database_url(example.db)
            return urls[example.db]

        def judge(position: int, example: Example, prediction: Prediction, url: str) -> None:
            pool.submit(_task(position, example, prediction, url, rule, store,
                              timeout=timeout, max_rows=max_rows, ves_repeats=ves_repeats))

        # Predictions read from a file exist already: store them at once and send work in chunks.
        pool = _Pool(workers, on_done, chunk=chunk_size(len(todo), workers) if from_file else 1)
        with bar, _sigterm_stops_run():
            try:
                if todo:
                    pool.start()  # the workers get ready while the main process stores and builds the work
                if from_file:
                    store.save_predictions([predictor.predict(e, "") for _, e in todo if e.id not in stored])
                    stored = store.predictions()
                if concurrency > 1 and not from_file:
                    _predict_concurrently(predictor, todo, stored, url_of, concurrency, store.save_prediction,
                                          judge, pool.poll)
                else:
                    for position, example in todo:
                        url = url_of(example)
                        prediction = stored.get(example.id)
                        if prediction is None:
                            prediction = predictor.predict(example, url)
                            store.save_prediction(prediction)
                        judge(position, example, prediction, url)
                        pool.poll()
                pool.drain()
                pool.close()
            except KeyboardInterrupt as exc:
                # A verdict is stored in one transaction, so one cut short by the signal is rolled back
                # whole and done again by a resume; those already back from the workers are kept.
                try:
                    pool.collect_finished()
                finally:
                    pool.close(kill=True)
                signum = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
                done_now = len(store.done_ids() & seen)
                raise EvalInterrupted(done_now, len(examples), Path(run_file), signum) from None
            except BaseException:
                pool.close(kill=True)
                raise
        verdicts = {v.id: v for _, v in store.verdicts()}
    finally:
        store.close()
    pairs = [(e, verdicts[e.id]) for e in examples if e.id in verdicts]
    metrics = summarize(pairs, exclude_dbs=exclude_dbs)
    return RunSummary(
        run_file=Path(run_file), config=full_config, metrics=metrics, pairs=pairs,
        seconds=time.perf_counter() - started, resumed=resumed,
    )


def _task(position: int, example: Example, prediction: Prediction, url: str, rule, store: RunFile, *,
          timeout: float, max_rows: int, ves_repeats: int) -> CompareTask:
    gold_sqls = tuple(rule.prepare(q) for q in rule.expand_gold(example.gold)) if example.feasible else ()
    keys = tuple(gold_key(example.db, q) for q in gold_sqls)
    return CompareTask(
        position=position,
        example=example,
        prediction=prediction,
        database_url=url,
        rule=rule.name,
        gold_sqls=gold_sqls,
        gold_keys=keys,
        cached_gold=tuple(store.gold(k) for k in keys),
        timeout=timeout,
        max_rows=max_rows,
        ves_repeats=ves_repeats,
    )


def summary_from_run_file(run_file: Path, *, exclude_dbs: Iterable[str] = ()) -> RunSummary:
    """The summary of a run file as it stands (e.g. to report on a finished or stopped run)."""
    from sqlwright.eval.runfile import open_run_file

    with open_run_file(run_file, must_exist=True) as store:
        config = store.config() or {}
        pairs = store.verdicts()
    return RunSummary(run_file=Path(run_file), config=config,
                      metrics=summarize(pairs, exclude_dbs=exclude_dbs), pairs=pairs)
