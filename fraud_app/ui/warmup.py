"""Warm the server up once per process, so that no browser session pays for it.

``app.py`` calls :func:`warm_up` before it builds a session; ``panel serve --warm``
(as ``make run`` does) runs ``app.py`` once at start, before the server answers, so
the first user finds the data set, its EDA summary, the reference transaction, the
default EDA charts (HoloViews objects and their rendered items, both themes) and datashader's compiled kernels
ready. With ``--num-procs N`` on Python < 3.12 Panel does not run the app at start;
each process then warms up with its first session (in worker threads, not on the
event loop, apart from the app's own first build).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from fraud_app.ui.state import AppState, prepare_dataset

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False
#: Seconds each step of the last warm-up took (``bench/bench_page.py`` and the log report them).
timings: dict[str, float] = {}


def warm_up() -> dict[str, float]:
    """Prepare everything that is the same for every session; a no-op after the first call.

    A failure (no data set yet, say) is logged and left for the sessions to report:
    the server still starts, and the page says what is missing.
    """
    global _done
    with _lock:
        if _done:
            return timings
        _done = True
        started = time.perf_counter()
        _step("data set and EDA summary", prepare_dataset)
        _step("reference transaction", _reference)
        _step("EDA charts", _eda_charts)
        _step("freeze the heap", freeze_heap)
        timings["total"] = time.perf_counter() - started
        log.info("warm-up done in %.2f s (%s)", timings["total"],
                 ", ".join(f"{k} {v:.2f} s" for k, v in timings.items() if k != "total"))
        return timings


def _step(name: str, func) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        func()
    except Exception as exc:
        log.warning("warm-up: %s skipped: %s", name, exc)
    timings[name] = time.perf_counter() - started


def _reference() -> None:
    from fraud_app.inference.reference import reference_data

    reference_data()


def _eda_charts() -> None:
    """Build one EDA tab outside any session: its default charts are built and rendered, in both themes."""
    from fraud_app.ui.charts import render_item
    from fraud_app.ui.eda import EDASection

    state = AppState()
    state.load_dataset()
    section = EDASection(state=state)  # renders the light items at once (no session)
    for chart in section.charts.values():
        if chart.spec is not None:
            render_item(chart.spec, "dark")


def freeze_heap() -> None:
    """Move what the warm-up built (modules, data set, caches) out of the garbage collector's sight.

    Panel runs a full ``gc.collect()`` on the event loop after sessions close; with the
    process's long-lived objects frozen (``gc.freeze``) it only walks what sessions made
    since, so closing pages does not stall the API behind a walk of the whole heap.
    """
    gc.collect()
    gc.freeze()


def reset() -> None:
    """Allow another warm-up (tests)."""
    global _done
    with _lock:
        _done = False
        timings.clear()


__all__ = ["freeze_heap", "reset", "timings", "warm_up"]
