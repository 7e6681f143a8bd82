"""The EDA summary, computed once per process per data set."""

from __future__ import annotations

import logging
import threading

import pandas as pd

from fraud_app.data import fingerprint as frame_fingerprint
from fraud_app.data import load_transactions
from fraud_app.eda.stats import EDASummary, compute_summary

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[str, EDASummary] = {}
#: How many summaries were actually computed in this process (tests assert on it).
compute_count = 0
#: How many data sets' summaries are kept (the app serves one; tests may use a few).
MAX_ENTRIES = 4


def get_summary(frame: pd.DataFrame | None = None) -> EDASummary:
    """The EDA summary of ``frame`` (default: the app's data set), computed once per process.

    Keyed by the frame's content fingerprint (``frame.attrs["fingerprint"]`` when the
    loader set it). Thread-safe: concurrent sessions asking for the same data set wait
    for the one computation instead of repeating it.
    """
    global compute_count
    if frame is None:
        frame = load_transactions()
    key = str(frame.attrs.get("fingerprint") or frame_fingerprint(frame))
    with _lock:
        summary = _cache.get(key)
        if summary is not None:
            return summary
        summary = compute_summary(frame, fingerprint=key)
        compute_count += 1
        while len(_cache) >= MAX_ENTRIES:
            _cache.pop(next(iter(_cache)))
        _cache[key] = summary
    log.info("EDA summary of %s computed in %.2f s", key, summary.compute_seconds)
    return summary


def is_cached(frame: pd.DataFrame) -> bool:
    """True when the summary of ``frame`` is already computed (keyed like :func:`get_summary`)."""
    key = str(frame.attrs.get("fingerprint") or frame_fingerprint(frame))
    with _lock:
        return key in _cache


def clear_cache() -> None:
    """Forget every computed summary (tests)."""
    with _lock:
        _cache.clear()


__all__ = ["MAX_ENTRIES", "clear_cache", "compute_count", "get_summary", "is_cached"]
