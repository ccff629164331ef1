"""One model, one thread: model work runs in a single worker thread, fed by a bounded queue.

    worker = ModelWorker(queue_size=8)
    job = worker.submit(lambda should_stop: engine.ask(..., cancel=should_stop), deadline=time.monotonic() + 120)
    job.future.result()

A model answers one prompt at a time (its memory and CPU are sized for one), so requests wait their turn in
a queue of `queue_size`; one more is refused at once (QueueFull: HTTP 429 with Retry-After) rather than
piling up. Each job has a deadline (past it, `should_stop()` is True and the pipeline stops at its next check)
and can be cancelled (its client went away): the work polls `should_stop` between model calls and tokens.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlwright.errors import Cancelled, SqlwrightError

log = logging.getLogger(__name__)

Work = Callable[[Callable[[], bool]], Any]  # called with should_stop
MAX_RETRY_AFTER = 3600


class QueueFull(SqlwrightError):
    """The model's queue is full: the client should come back after `retry_after` seconds (HTTP 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(SqlwrightError):
    """A request's deadline passed before its answer was ready (HTTP 504)."""


class Job:
    """One unit of model work: its deadline (time.monotonic), whether it was cancelled, its future."""

    def __init__(self, work: Work, deadline: float) -> None:
        self.work = work
        self.deadline = deadline
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop (its client went away or its deadline passed); harmless once it is done."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def should_stop(self) -> bool:
        """What the pipeline polls: True once the job is cancelled or past its deadline."""
        return self._cancelled.is_set() or time.monotonic() >= self.deadline


class ModelWorker:
    """A daemon thread running submitted jobs one at a time, in order, from a queue of `queue_size`."""

    def __init__(self, queue_size: int = 8, *, name: str = "sqlwright-model", expected_seconds: float = 5.0) -> None:
        if queue_size < 0:
            raise ValueError("queue_size must be at least 0")
        self.queue_size = queue_size
        self._queue: queue.Queue[Job | None] = queue.Queue()  # bounded by _free
        self._free = threading.Semaphore(queue_size + 1)  # places for jobs: the waiting ones and the running one
        self._mean_seconds = expected_seconds  # running mean of job durations, for Retry-After
        self._running: Job | None = None
        self._closed = False
        self.completed = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # --- what callers use -----------------------------------------------------------------------------
    def submit(self, work: Work, *, deadline: float) -> Job:
        """Queue `work` (called in the worker thread with `should_stop`); QueueFull when the queue is full."""
        if self._closed:
            raise Cancelled("the server is shutting down")
        if not self._free.acquire(blocking=False):
            retry = self.retry_after()
            raise QueueFull(f"the model is busy: {self.queue_size} requests are already waiting; retry in "
                            f"{retry} s", retry)
        job = Job(work, deadline)
        self._queue.put(job)
        return job

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    @property
    def busy(self) -> bool:
        return self._running is not None

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the mean job time times the jobs ahead (at least 1)."""
        ahead = self._queue.qsize() + (1 if self._running is not None else 0)
        return max(1, min(MAX_RETRY_AFTER, math.ceil(self._mean_seconds * max(ahead, 1))))

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking work, cancel the running and the waiting jobs, and end the thread."""
        self._closed = True
        running = self._running
        if running is not None:
            running.cancel()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel()
                _settle(job.future, error=Cancelled("the server is shutting down"))
        self._queue.put(None)
        self._thread.join(timeout)

    # --- the thread -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                self._free.release()

    def _run(self, job: Job) -> None:
        if job.should_stop():  # its client left, or its deadline passed, while it waited
            _settle(job.future, error=Cancelled("cancelled before it started"))
            return
        self._running = job
        started = time.monotonic()
        try:
            result = job.work(job.should_stop)
        except BaseException as exc:  # the caller maps it; the thread must live on
            if not isinstance(exc, SqlwrightError):
                log.exception("model work failed")
            _settle(job.future, error=exc)
        else:
            _settle(job.future, result=result)
        finally:
            self._running = None
            elapsed = time.monotonic() - started
            self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * elapsed
            self.completed += 1


def _settle(future: concurrent.futures.Future, *, result: object = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
