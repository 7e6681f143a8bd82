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


def test_warm_up_runs_once_and_freezes_the_heap(fresh_warmup) -> None:  # noqa: ANN001
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    timings = warmup.warm_up()
    assert {"data set and EDA summary", "reference transaction", "EDA charts", "freeze the heap"} <= set(timings)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the imported modules and the data set's objects at least
    assert warmup.warm_up() is timings  # a no-op the second time
    assert gc.get_freeze_count() == frozen
