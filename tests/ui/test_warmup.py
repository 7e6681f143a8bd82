"""The server's warm-up: once per process, and the heap it leaves is frozen for the collector."""

from __future__ import annotations

import gc

import pytest

from fraud_app.ui import warmup


@pytest.fixture
def fresh_warmup():
    warmup.reset()
    yield
    warmup.reset()
    gc.unfreeze()


def test_warm_up_runs_once_and_freezes_the_heap(fresh_warmup, monkeypatch) -> None:  # noqa: ANN001
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    freezes: list[int] = []
    real_freeze = gc.freeze
    monkeypatch.setattr(warmup.gc, "freeze", lambda: (freezes.append(1), real_freeze())[1])
    timings = warmup.warm_up()
    assert {"data set and EDA summary", "reference transaction", "EDA charts", "freeze the heap"} <= set(timings)
    assert freezes == [1] and gc.get_freeze_count() > 10_000  # the modules and the data set's objects at least
    assert warmup.warm_up() is timings  # a no-op the second time: no second freeze
    assert freezes == [1]
