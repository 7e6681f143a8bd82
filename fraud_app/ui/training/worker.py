"""Training off the event loop: a process-wide runner, and safe hand-back to the browser session.

Design
------
* **Where training runs.** :data:`RUNNER` is one process-wide :class:`TrainingRunner`: at most
  ``MAX_CONCURRENT_TRAININGS`` trainings run at once (the machine's cores are shared with the
  server), each on its own *daemon* thread, so a long fit never blocks the Tornado event loop
  (other sessions, the REST API) and never holds up the server's shutdown. Further requests
  wait for a free slot (shown as "queued"). Each submission returns a
  :class:`concurrent.futures.Future`; a queued one can still be cancelled.
* **How results come back.** Bokeh documents may only be changed on the event loop that owns
  them. A :class:`SessionDispatcher` captures the session's document when training starts (on
  the event loop) and later, from the worker thread, hands callables to
  ``pn.state.execute(..., schedule=True)`` under that document, which schedules them with
  ``Document.add_next_tick_callback`` (the thread-safe entry point Bokeh documents offer) and
  runs them with the document lock held. Outside a server (unit tests, notebooks) there is no
  document and the callable runs at once.
* **Progress without flooding.** LightGBM reports every boosting round. :class:`ProgressRelay`
  keeps only the latest :class:`~fraud_app.training.ProgressEvent` and has at most one hand-back
  pending at a time, at most ``1 / min_interval`` per second (a stage change is always shown),
  so the event loop gets a handful of small updates per second whatever the iteration rate.

This module holds no Panel widgets and no per-session state except what each object is given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from panel.io.state import set_curdoc

from fraud_app.data import LazyDataset
from fraud_app.data import service as data_service
from fraud_app.data.schema import TIME
from fraud_app.storage import record_training_run
from fraud_app.training import ProgressEvent, TrainingPipeline, TrainingResult

log = logging.getLogger(__name__)

#: Trainings running at once in this process (the rest wait for a slot).
MAX_CONCURRENT_TRAININGS = 2


class TrainingRunner:
    """Runs jobs on daemon threads, at most ``max_workers`` at a time.

    Parameters
    ----------
    max_workers : how many jobs may run concurrently; later ones wait for a slot.
    """

    def __init__(self, max_workers: int = MAX_CONCURRENT_TRAININGS) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._slots = threading.BoundedSemaphore(max_workers)
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0

    @property
    def waiting(self) -> int:
        """Jobs submitted but not started yet."""
        return self._waiting

    @property
    def running(self) -> int:
        """Jobs running now."""
        return self._running

    @property
    def full(self) -> bool:
        """True when a job submitted now would have to wait for a slot."""
        with self._lock:
            return self._running + self._waiting >= self.max_workers

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` on a daemon thread once a slot is free; return its Future."""
        future: Future = Future()
        with self._lock:
            self._waiting += 1

        def on_done(done: Future) -> None:
            if done.cancelled():  # only a queued job can be cancelled: it stops waiting now
                with self._lock:
                    self._waiting -= 1

        future.add_done_callback(on_done)

        def run() -> None:
            with self._slots:
                with self._lock:
                    if not future.set_running_or_notify_cancel():
                        return  # cancelled while queued (on_done already counted it out)
                    self._waiting -= 1
                    self._running += 1
                value: Any = None
                error: BaseException | None = None
                try:
                    value = fn(*args, **kwargs)
                except BaseException as exc:  # handed to the Future's owner, who reports it
                    error = exc
                finally:
                    # The counters are settled before the Future resolves, so whoever waits on it
                    # sees this job neither running nor waiting.
                    with self._lock:
                        self._running -= 1
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(value)

        threading.Thread(target=run, name="fraud-training", daemon=True).start()
        return future


#: The process-wide runner every Training tab submits to.
RUNNER = TrainingRunner()


class SessionDispatcher:
    """Call functions on a session's event loop from any thread.

    Parameters
    ----------
    doc : the session's Bokeh document, captured on the event loop (``pn.state.curdoc``);
        None outside a server, where calls run immediately on the calling thread.
    """

    def __init__(self, doc: Any = None) -> None:
        self.doc = doc

    @classmethod
    def for_current_session(cls) -> SessionDispatcher:
        """A dispatcher for the session whose callback is running now."""
        return cls(pn.state.curdoc)

    @property
    def served(self) -> bool:
        """True when calls are scheduled on a server session's event loop."""
        return bool(self.doc is not None and self.doc.session_context)

    def later(self, fn: Callable[[], Any], delay: float) -> None:
        """Run ``fn()`` on the session after ``delay`` seconds (at once when there is no session).

        Only call this on the session's event loop. The pause lets the server finish other
        requests between two pieces of UI work (an HTTP request needs several loop turns).
        """
        if not self.served:
            fn()
            return
        doc = self.doc

        def run() -> None:
            with set_curdoc(doc):
                try:
                    fn()
                except Exception as exc:
                    log.error("%s failed: %s", getattr(fn, "__name__", fn), exc, exc_info=exc)

        doc.add_timeout_callback(run, max(1, int(delay * 1000)))

    def __call__(self, fn: Callable[[], Any]) -> None:
        """Schedule ``fn()`` on the session (or run it now when there is no session)."""
        if self.doc is None:
            fn()
            return
        try:
            with set_curdoc(self.doc):
                pn.state.execute(fn, schedule=True)
        except Exception as exc:  # the browser tab was closed: nobody is left to show it to
            log.info("could not hand %s back to its session (closed?): %s", getattr(fn, "__name__", fn), exc)


class ProgressRelay:
    """Forward the latest progress event to ``apply`` on the session, coalesced and rate-limited.

    Parameters
    ----------
    dispatch : how to reach the session (a :class:`SessionDispatcher`).
    apply : called on the session with the latest :class:`ProgressEvent`.
    min_interval : minimum seconds between two hand-backs within one stage.
    """

    def __init__(self, dispatch: Callable[[Callable[[], Any]], None], apply: Callable[[ProgressEvent], None],
                 min_interval: float = 0.1) -> None:
        self._dispatch = dispatch
        self._apply = apply
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._latest: ProgressEvent | None = None
        self._pending = False
        self._last_sent = 0.0
        self._last_stage: str | None = None
        self._closed = False
        #: Every event received (for tests and logs; a count, not the events).
        self.received = 0

    def __call__(self, event: ProgressEvent) -> None:
        """Record ``event`` (worker thread); schedule a hand-back unless one is pending or too recent."""
        now = time.monotonic()
        with self._lock:
            self.received += 1
            self._latest = event
            if self._closed or self._pending:
                return
            if event.stage == self._last_stage and now - self._last_sent < self._min_interval:
                return
            self._pending = True
            self._last_sent = now
            self._last_stage = event.stage
        self._dispatch(self._flush)

    def _flush(self) -> None:
        with self._lock:
            event, self._pending = self._latest, False
            closed = self._closed
        if event is not None and not closed:
            self._apply(event)

    def close(self) -> None:
        """Ignore anything still pending (the run has finished)."""
        with self._lock:
            self._closed = True


@dataclass(frozen=True)
class TrainingOutcome:
    """What a finished training job hands back to its session.

    Attributes
    ----------
    result : the pipeline's TrainingResult.
    run_id : the ``training_runs`` row id, or None when recording failed.
    record_error : why recording failed (None when it worked).
    validation : ``(labels, scores)`` of the training rows the threshold was chosen on (out-of-fold
        or validation scores, see :func:`threshold_scores`), or None when the result has none.
    transactions_per_day : the data set's volume (its rows over its time span, per day), which
        turns a flag rate into alerts per day; None when the span is unknown or zero.
    """

    result: TrainingResult
    run_id: int | None
    record_error: BaseException | None
    validation: tuple[np.ndarray, np.ndarray] | None
    transactions_per_day: float | None = None


def transactions_per_day(frame: pd.DataFrame | LazyDataset) -> float | None:
    """Rows per day of ``frame`` over its ``time`` span (seconds from the first transaction)."""
    if isinstance(frame, LazyDataset):  # from its footers and cached summary, never a pass over the rows
        info = data_service.current_info(frame)
        return info.rows / (info.time_span_hours / 24) if info.time_span_hours > 0 else None
    if TIME not in frame.columns or not len(frame):
        return None
    span_days = float(frame[TIME].max() - frame[TIME].min()) / 86_400
    return len(frame) / span_days if span_days > 0 else None


def threshold_scores(result: TrainingResult) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels and calibrated scores of the training rows the model chose its threshold on.

    Out-of-fold scores of the training rows (``threshold_method="oof"``) or the validation split
    (``"validation"``), as the pipeline hands them back; never the test rows. Cost-based threshold
    suggestions use them, so the held-out test split is never used to tune the threshold. None
    when the result carries none.
    """
    if not len(result.threshold_scores):
        return None
    return (np.asarray(result.threshold_labels, dtype=np.int8),
            np.asarray(result.threshold_scores, dtype=np.float64))


def run_training(pipeline: TrainingPipeline, frame: pd.DataFrame | LazyDataset | None,
                 progress: Callable[[ProgressEvent], None], cancel: threading.Event) -> TrainingOutcome:
    """The job run on a worker thread: train, record the run.

    A :class:`LazyDataset` trains on the Dask cluster (:mod:`fraud_app.training.distributed`).

    Raises whatever the pipeline raises (``TrainingCancelled`` when ``cancel`` is set). A failure
    to *record* the run does not lose the trained model: it is returned in ``record_error``.
    """
    if frame is None:
        progress(ProgressEvent("prepare", 0.0, "loading the data set"))
        frame = data_service.current_dataset()
    result = pipeline.run(frame, progress=progress, cancel=cancel)
    run_id: int | None = None
    record_error: BaseException | None = None
    try:
        run_id = record_training_run(result)
    except Exception as exc:
        log.error("could not record the training run of %s: %s", result.kind, exc, exc_info=exc)
        record_error = exc
    return TrainingOutcome(result=result, run_id=run_id, record_error=record_error, validation=threshold_scores(result),
                           transactions_per_day=transactions_per_day(frame))


__all__ = [
    "MAX_CONCURRENT_TRAININGS", "RUNNER", "ProgressRelay", "SessionDispatcher", "TrainingOutcome",
    "TrainingRunner", "run_training", "threshold_scores", "transactions_per_day",
]
