"""The EDA scatter of a lazy data set: every row rasterised by datashader on the cluster, once per process.

:func:`lazy_scatter_counts` answers the per-pixel counts of clear and fraudulent transactions of
two columns over every row of a :class:`~fraud_app.data.partitioned.LazyDataset`. They are
computed on the Dask cluster (:func:`fraud_app.eda.lazy.scatter_aggregate`, partition by
partition; only the pixel counts come back), held in memory, and cached on disk next to the
summary (``<output>/eda_cache/<fingerprint>-scatter-<x>-<y>-<w>x<h>.npz``), so a restart does not
recompute them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fraud_app.eda.lazy import cache_dir, cache_path, scatter_aggregate

log = logging.getLogger(__name__)

#: Scatters kept in memory (each a few hundred kB).
MEMORY_ENTRIES = 16

_lock = threading.Lock()
_memory: OrderedDict[tuple, ScatterCounts] = OrderedDict()
#: How many scatters were computed on the cluster in this process (tests assert on it).
compute_count = 0


@dataclass(frozen=True)
class ScatterCounts:
    """Counts per pixel (rows ``ys``, columns ``xs``, pixel centres) of the clear and the fraud rows."""

    xs: np.ndarray
    ys: np.ndarray
    clear: np.ndarray
    fraud: np.ndarray

    @property
    def rows(self) -> int:
        """Rows counted (inside the ranges)."""
        return int(self.clear.sum() + self.fraud.sum())


def _path(fingerprint: str, x: str, y: str, width: int, height: int) -> Path:
    cache_path(fingerprint)  # validates the fingerprint
    if not (x.isidentifier() and y.isidentifier()):
        raise ValueError(f"not column names: {x!r}, {y!r}")
    return cache_dir() / f"{fingerprint}-scatter-{x}-{y}-{width}x{height}.npz"


def _load(path: Path) -> ScatterCounts | None:
    try:
        with np.load(path) as data:
            return ScatterCounts(xs=data["xs"], ys=data["ys"], clear=data["clear"], fraud=data["fraud"])
    except (OSError, ValueError, KeyError):
        return None


def _save(path: Path, counts: ScatterCounts) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.npz")
    np.savez(tmp, xs=counts.xs, ys=counts.ys, clear=counts.clear, fraud=counts.fraud)
    os.replace(tmp, path)


def lazy_scatter_counts(dataset: Any, x: str, y: str, *, width: int, height: int,
                        x_range: tuple[float, float], y_range: tuple[float, float]) -> ScatterCounts:
    """Clear and fraud counts per pixel of ``y`` against ``x`` over every row of ``dataset``: memory, disk, Dask.

    Slow the first time (a pass over the data on the cluster): call it off the event loop.
    """
    global compute_count
    if x == y:
        raise ValueError("the scatter needs two different columns")
    key = (dataset.fingerprint, x, y, width, height)
    with _lock:
        counts = _memory.get(key)
        if counts is not None:
            _memory.move_to_end(key)
            return counts
    path = _path(*key)
    counts = _load(path)
    if counts is None:
        from fraud_app.scale.engine import get_client

        get_client()  # datashader computes on the cluster, partition by partition
        started = time.perf_counter()
        agg = scatter_aggregate(dataset.frame, x, y, width=width, height=height, x_range=x_range, y_range=y_range)
        total = agg["count"].to_numpy().astype("int64")
        fraud = np.rint(np.nan_to_num(agg["frauds"].to_numpy())).astype("int64")  # NaN where no row
        counts = ScatterCounts(xs=agg.coords[x].to_numpy(), ys=agg.coords[y].to_numpy(), clear=total - fraud,
                               fraud=fraud)
        with _lock:
            compute_count += 1
        _save(path, counts)
        log.info("EDA scatter %s against %s of %s: %s rows rasterised on Dask in %.1f s", y, x, dataset.fingerprint,
                 f"{counts.rows:,}", time.perf_counter() - started)
    with _lock:
        _memory[key] = counts
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)
    return counts


def is_in_memory(dataset: Any, x: str, y: str, *, width: int, height: int) -> bool:
    """True when :func:`lazy_scatter_counts` answers these axes at once (no disk, no cluster)."""
    with _lock:
        return (dataset.fingerprint, x, y, width, height) in _memory


def clear_memory() -> None:
    """Forget the scatters held in memory (the disk cache stays; tests)."""
    with _lock:
        _memory.clear()


__all__ = ["ScatterCounts", "clear_memory", "compute_count", "is_in_memory", "lazy_scatter_counts"]
