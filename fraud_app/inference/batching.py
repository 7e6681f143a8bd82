"""Dynamic micro-batching of scoring requests, with group commit (no Panel).

Inference servers batch concurrent requests into one model call ("dynamic batching"); databases
share one commit among concurrent transactions ("group commit"). :class:`MicroBatcher` does both,
with the leader/follower pattern of group commit:

* a request that finds the scorer idle becomes the **leader** and is scored at once, in its own
  thread (:meth:`MicroBatcher.submit`) or, queued from the event loop (:meth:`MicroBatcher.enqueue`),
  in a worker thread started for it: a lone client never waits for a window;
* requests that arrive while the leader is busy are queued (**followers**) and do not wait in a
  thread of their own; when the leader's batch is done it takes up to ``max_batch`` queued requests
  as the next batch, and so on until the queue is empty;
* a batch is scored with **one** ``predict`` call per model (LightGBM's ``Booster.predict`` on the
  stacked float64 NumPy rows), and all its rows are written in **one** transaction
  (:func:`fraud_app.storage.insert_scored`: the rows bound for the driver straight from the arrays,
  one executemany, the monitoring aggregates counted with NumPy before the transaction);
* each request is answered only after that transaction committed, so an acknowledged row is
  durable; a request whose own model cannot be used fails alone (its input was validated before it
  joined); a database failure fails exactly the requests of that batch, and the next batch starts
  afresh.

Settings (``fraud_app/config.py``): ``FRAUD_APP_BATCH_MAX`` (default 64 requests; 1 turns batching
off: each request is scored and saved by its own thread, as before) and ``FRAUD_APP_BATCH_WAIT_MS``
(default 0: a leader never waits for followers; above 0 it waits up to that long for the batch to
fill, which adds that latency to a lone request).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fraud_app.config import get_settings
from fraud_app.pools import process_pool

log = logging.getLogger(__name__)

#: What a finished request resolves to: ``finish(model, stored)`` (``stored``: its
#: :class:`~fraud_app.storage.StoredRows`), or the stored rows themselves as dicts.
Finish = Callable[[Any, Any], Any]


@dataclass
class ScoreJob:
    """One request: validated rows, the model asked for, and the future its caller awaits."""

    values: np.ndarray
    model: str | None
    source: str
    future: Future
    #: Runs in the batch's thread on success: turns ``(model, rows)`` into the future's result.
    finish: Finish | None = None
    #: ``time.monotonic()`` when it was submitted (handed to a worker thread).
    submitted: float = field(default_factory=time.monotonic)
    #: The batcher's database clock when it was submitted (see :meth:`MicroBatcher._db_clock`).
    db_mark: float = 0.0
    #: True when it found a batch being scored or saved and waited for it (a follower).
    queued: bool = False
    #: How many requests its batch held.
    batch_size: int = 0
    #: Seconds its leader waited for the batch to fill (0 with the default window of 0).
    window_wait_s: float = 0.0


@dataclass
class BatchStats:
    """Counters of one process's batcher (read by tests and the benchmark's profile)."""

    batches: int = 0
    requests: int = 0
    #: Requests that arrived while a batch was being scored or saved, and waited for it to end.
    queued: int = 0
    window_waits: int = 0
    largest: int = 0
    failed_batches: int = 0
    #: The sizes of the last 1,000 batches.
    sizes: deque = field(default_factory=lambda: deque(maxlen=1000))


class MicroBatcher:
    """Leader/follower micro-batcher: score concurrent requests together, commit them together."""

    def __init__(self, max_batch: int | None = None, wait_ms: float | None = None) -> None:
        self._max_batch = max_batch
        self._wait_ms = wait_ms
        self._cv = threading.Condition()
        self._pending: deque[ScoreJob] = deque()
        self._leading = False
        #: True from the moment a leader takes a batch until that batch's requests are answered.
        self._in_batch = False
        #: Seconds batches spent in the database so far, and when the write in progress began.
        self._db_spent = 0.0
        self._db_since: float | None = None
        self.stats = BatchStats()

    @property
    def max_batch(self) -> int:
        return self._max_batch if self._max_batch is not None else get_settings().batch_max

    @property
    def wait_s(self) -> float:
        return (self._wait_ms if self._wait_ms is not None else get_settings().batch_wait_ms) / 1000

    def submit(self, values: np.ndarray, model: str | None = None, source: str = "api",
               finish: Finish | None = None, future: Future | None = None,
               submitted: float | None = None) -> Future:
        """Queue one validated request; return the future of ``finish(model, rows)`` (or the rows).

        ``future``: what to resolve (default a new ``concurrent.futures.Future``; anything with its
        ``done``, ``set_result`` and ``set_exception``, e.g. the API's :class:`~fraud_app.api.handlers.LoopAnswer`).

        The calling thread leads when the scorer is idle: it then returns only once the queue is
        empty, having answered every request it scored. Callers that must answer their own request
        first await ``future`` (which is resolved as soon as its batch committed), not this call.
        """
        job = ScoreJob(values, model, source, future if future is not None else Future(), finish,
                       submitted if submitted is not None else time.monotonic())
        max_batch = self.max_batch
        if max_batch <= 1:  # batching off: this request alone, in this thread
            self._run([job], alone=True)
            return job.future
        if self._queue(job, max_batch):
            self._lead()
        return job.future

    def enqueue(self, values: np.ndarray, model: str | None, source: str, finish: Finish | None, future: Any,
                executor: Executor, submitted: float | None = None) -> None:
        """Queue one validated request from a thread that must never score or wait (the event loop).

        Like :meth:`submit`, but when the scorer is idle the leader is started in ``executor`` instead of
        the calling thread; a request that finds a leader at work costs only a queue append: no thread
        is woken for it. With batching off (``max_batch`` 1) the request is scored alone in ``executor``.
        ``future`` is resolved as in :meth:`submit`.
        """
        job = ScoreJob(values, model, source, future, finish, submitted if submitted is not None else time.monotonic())
        max_batch = self.max_batch
        if max_batch <= 1:
            executor.submit(self._run, [job], True)
            return
        if not self._queue(job, max_batch):
            return
        try:
            executor.submit(self._lead)
        except BaseException as exc:  # the executor is shut down: nothing will lead the queued requests
            with self._cv:
                self._leading = False
                stranded = list(self._pending)
                self._pending.clear()
            for queued in stranded:
                _fail(queued, exc)

    def _queue(self, job: ScoreJob, max_batch: int) -> bool:
        """Append ``job``; True when no leader is at work (the caller must start one: it is now marked)."""
        with self._cv:
            job.db_mark = self._db_clock()
            self._pending.append(job)
            if self._leading:
                # Queued behind work only if a batch is being scored or saved right now; otherwise the
                # leader is turning round (its requests are answered) and takes this one at once.
                job.queued = self._in_batch
                self.stats.queued += self._in_batch
                if len(self._pending) >= max_batch:
                    self._cv.notify_all()  # a leader waiting for its window may go
                return False
            self._leading = True
            return True

    def _lead(self) -> None:
        try:
            while True:
                with self._cv:
                    max_batch, wait_s = self.max_batch, self.wait_s
                    waited = 0.0
                    if wait_s > 0 and 0 < len(self._pending) < max_batch:
                        started = time.monotonic()
                        self._cv.wait_for(lambda: len(self._pending) >= max_batch, timeout=wait_s)
                        waited = time.monotonic() - started
                        self.stats.window_waits += 1
                    batch = [self._pending.popleft() for _ in range(min(max_batch, len(self._pending)))]
                    if not batch:
                        self._leading = False
                        return
                    self._in_batch = True
                for job in batch:
                    job.window_wait_s = waited
                self._run(batch)
        except BaseException:
            with self._cv:  # never leave the batcher without a leader while requests wait
                self._leading = self._in_batch = False
                stranded = list(self._pending)
                self._pending.clear()
            for job in stranded:
                _fail(job, RuntimeError("the scoring batch leader stopped"))
            raise

    def _db_clock(self) -> float:
        """Seconds batches have spent writing to the database (including the write in progress); call
        with the lock held. A request's lock budget is spent by the writes of the batches ahead of it."""
        since = self._db_since
        return self._db_spent + (time.monotonic() - since if since is not None else 0.0)

    def _run(self, batch: list[ScoreJob], alone: bool = False) -> None:
        """Score ``batch`` (one predict per model) and save it in one transaction; resolve every future."""
        started = time.monotonic()
        from fraud_app.inference.service import _predict, get_model
        from fraud_app.storage import ScoredRows, insert_scored
        from fraud_app.storage.engine import busy_timeout_ms
        from fraud_app.storage.writer import inputs_json

        with self._cv:
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            self.stats.sizes.append(len(batch))
        for job in batch:
            job.batch_size = len(batch)
        # 1. one model per request (an unknown or broken model fails that request alone), looked up once
        # per name asked for in the batch
        by_model: dict[int, tuple[Any, list[ScoreJob]]] = {}
        lookups: dict[str | None, Any] = {}
        for job in batch:
            fitted = lookups.get(job.model, _UNSEEN)
            if fitted is _UNSEEN:
                try:
                    fitted = get_model(job.model)
                except Exception as exc:
                    fitted = exc
                lookups[job.model] = fitted
            if isinstance(fitted, Exception):
                _fail(job, fitted)
                continue
            by_model.setdefault(id(fitted), (fitted, []))[1].append(job)
        # 2. one predict call per model; each request's rows stay its own part (columnar, no dict per row)
        scored: list[tuple[ScoreJob, Any, ScoredRows]] = []
        for fitted, jobs in by_model.values():
            texts: list[list[str] | None] = [None] * len(jobs)
            try:
                values = jobs[0].values if len(jobs) == 1 else np.concatenate([j.values for j in jobs])
                if len(values) >= OVERLAP_ROWS:
                    # the model scores in native code (the GIL released) on another thread, while this one
                    # writes the rows' inputs as JSON: the two halves of a large batch's work overlap
                    pending = _helper().submit(_predict, fitted, values)
                    texts = [inputs_json(job.values) for job in jobs]
                    scores = pending.result()
                else:
                    scores = _predict(fitted, values)
            except Exception as exc:
                for job in jobs:
                    _fail(job, exc)
                continue
            start = 0
            for job, text in zip(jobs, texts, strict=True):
                n = len(job.values)
                scored.append((job, fitted, ScoredRows(fitted.name, fitted.version, fitted.threshold, job.source,
                                                       job.values, scores[start:start + n], text)))
                start += n
        if not scored:
            self._answer([])
            return
        # 3. one transaction for the whole batch (group commit)
        # FRAUD_APP_DB_BUSY_TIMEOUT bounds each request's wait for the database, counted from its
        # submission: the writes of the batches ahead of it (or, batching off, its wait for a worker
        # thread) spend it; loading a model or scoring does not.
        if alone:
            spent = max(0.0, started - batch[0].submitted)
        else:
            with self._cv:
                clock = self._db_clock()
                self._db_since = time.monotonic()
            spent = max(clock - job.db_mark for job, _, _ in scored)
        try:
            stored = insert_scored([part for _, _, part in scored],
                                   deadline=time.monotonic() + max(0.1, busy_timeout_ms() / 1000 - spent))
        except Exception as exc:
            self._end_write(alone)
            with self._cv:
                self.stats.failed_batches += 1
            self._answer([(job, exc, False) for job, _, _ in scored])
            return
        self._end_write(alone)
        # 4. answer each request with its own rows, in its order
        answers: list[tuple[ScoreJob, Any, bool]] = []
        for (job, fitted, _), own in zip(scored, stored, strict=True):
            try:
                answers.append((job, job.finish(fitted, own) if job.finish is not None else own.rows(), True))
            except Exception as exc:
                answers.append((job, exc, False))
        self._answer(answers)

    def _end_write(self, alone: bool) -> None:
        if alone:
            return
        with self._cv:
            if self._db_since is not None:
                self._db_spent += time.monotonic() - self._db_since
                self._db_since = None

    def _answer(self, answers: list[tuple[ScoreJob, Any, bool]]) -> None:
        """End the batch, then resolve its futures: a request sent after an answer never finds it in flight.

        Futures whose class can resolve several at once (a ``resolve_many(items)`` class method, e.g. the
        API's answers, which reach their event loop in ONE hand-off) are resolved together, in order."""
        with self._cv:
            self._in_batch = False
        together: dict[Any, list[tuple[Any, Any, bool]]] = {}
        for job, value, ok in answers:
            future = job.future
            if future.done():
                continue
            many = getattr(type(future), "resolve_many", None)
            if many is not None:
                together.setdefault(many, []).append((future, value, ok))
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for many, items in together.items():
            many(items)


def _fail(job: ScoreJob, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


_lock = threading.Lock()
_batcher: tuple[int, MicroBatcher] | None = None
_UNSEEN = object()

#: A batch of at least this many rows is scored on a helper thread while its inputs are written as JSON.
OVERLAP_ROWS = 2_000


def _helper() -> ThreadPoolExecutor:
    """One helper thread per process (a new one after a fork) that scores large batches."""
    return process_pool("fraud-score", 1)


def get_batcher() -> MicroBatcher:
    """This process's batcher (a new one after a fork: never share a leader with the parent)."""
    global _batcher
    current = _batcher
    pid = os.getpid()
    if current is not None and current[0] == pid:
        return current[1]
    with _lock:
        if _batcher is None or _batcher[0] != pid:
            _batcher = (pid, MicroBatcher())
        return _batcher[1]


def reset_batcher() -> None:
    """Forget this process's batcher and its counters (tests)."""
    global _batcher
    with _lock:
        _batcher = None


__all__ = ["BatchStats", "MicroBatcher", "ScoreJob", "get_batcher", "reset_batcher"]
