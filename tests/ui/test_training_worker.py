"""The Training tab's threading pieces: the runner's slots, cancellation and the progress relay."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest
from bokeh.document import Document

from fraud_app.training import ProgressEvent
from fraud_app.ui.training.worker import ProgressRelay, SessionDispatcher, TrainingRunner


def event(stage: str, i: int) -> ProgressEvent:
    return ProgressEvent(stage, i / 100, f"round {i}", i, 100)


def test_runner_runs_off_the_calling_thread_and_limits_concurrency() -> None:
    runner = TrainingRunner(max_workers=1)
    gate = threading.Event()
    threads: list[str] = []

    def job(value: int) -> int:
        threads.append(threading.current_thread().name)
        assert gate.wait(10)
        return value * 2

    first = runner.submit(job, 1)
    second = runner.submit(job, 2)
    deadline = time.monotonic() + 10
    while runner.running < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.running == 1 and runner.waiting == 1 and runner.full
    assert not second.running()  # waits for the single slot
    gate.set()
    assert first.result(10) == 2 and second.result(10) == 4
    assert threads == ["fraud-training", "fraud-training"]
    assert threading.current_thread().name not in threads


def test_a_queued_job_can_be_cancelled_and_errors_reach_the_future() -> None:
    runner = TrainingRunner(max_workers=1)
    gate = threading.Event()
    ran: list[str] = []
    blocker = runner.submit(lambda: gate.wait(10))
    queued = runner.submit(lambda: ran.append("queued"))
    assert queued.cancel()
    gate.set()
    blocker.result(10)
    with pytest.raises(CancelledError):
        queued.result(10)

    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        runner.submit(boom).result(10)
    assert ran == [] and runner.running == 0 and runner.waiting == 0


def test_progress_relay_coalesces_to_the_latest_event() -> None:
    pending: list = []
    applied: list[ProgressEvent] = []
    relay = ProgressRelay(pending.append, applied.append, min_interval=0.0)
    for i in range(1, 51):
        relay(event("fit", i))
    # One hand-back is scheduled however many rounds were reported; it shows the latest one.
    assert len(pending) == 1 and relay.received == 50
    pending.pop()()
    assert [e.iteration for e in applied] == [50]
    relay(event("fit", 51))
    assert len(pending) == 1
    relay.close()
    pending.pop()()
    assert [e.iteration for e in applied] == [50]  # nothing applied after close


def test_progress_relay_rate_limits_within_a_stage_but_not_across() -> None:
    applied: list[ProgressEvent] = []
    relay = ProgressRelay(lambda fn: fn(), applied.append, min_interval=60.0)
    relay(event("fit", 1))
    relay(event("fit", 2))  # too soon: kept as the latest, not shown yet
    relay(event("evaluate", 3))  # a new stage always shows
    assert [(e.stage, e.iteration) for e in applied] == [("fit", 1), ("evaluate", 3)]


def test_dispatcher_without_a_served_session_calls_at_once() -> None:
    calls: list[str] = []
    SessionDispatcher(None)(lambda: calls.append("none"))
    dispatcher = SessionDispatcher(Document())
    assert not dispatcher.served
    dispatcher(lambda: calls.append("doc"))
    assert calls == ["none", "doc"]


class FakeServedDocument:
    """Just enough of a served Bokeh document: it has a session and queues callbacks."""

    session_context = object()

    def __init__(self) -> None:
        self.queued: list = []
        self.delays: list[int] = []

    def add_next_tick_callback(self, callback) -> None:
        self.queued.append(callback)

    def add_timeout_callback(self, callback, timeout_milliseconds: int) -> None:
        self.queued.append(callback)
        self.delays.append(timeout_milliseconds)


def test_dispatcher_queues_calls_on_a_served_session() -> None:
    doc = FakeServedDocument()
    calls: list[str] = []
    dispatcher = SessionDispatcher(doc)
    assert dispatcher.served
    worker = threading.Thread(target=dispatcher, args=(lambda: calls.append("ran"),))
    worker.start()
    worker.join(10)
    # Called from a worker thread, nothing runs there: it waits for the session's event loop.
    assert calls == [] and len(doc.queued) == 1
    doc.queued.pop()()
    assert calls == ["ran"]


def test_dispatcher_later_waits_on_a_served_session_and_runs_now_without_one() -> None:
    doc = FakeServedDocument()
    calls: list[str] = []
    SessionDispatcher(doc).later(lambda: calls.append("later"), 0.04)
    assert calls == [] and doc.delays == [40]
    doc.queued.pop()()
    assert calls == ["later"]
    SessionDispatcher(None).later(lambda: calls.append("now"), 0.04)
    assert calls == ["later", "now"]
