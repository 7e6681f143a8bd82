"""The app's data set, once per process: the in-memory frame or a :class:`LazyDataset`, and its facts.

Every client of the core (the UI's tabs, the warm-up, the Training runner, the Inference tab's
reference transaction) asks here rather than calling the loader itself:

* :func:`current_dataset` answers the shared pandas frame (through
  :func:`~fraud_app.data.loader.load_transactions`) up to ``FRAUD_APP_MAX_IN_MEMORY_ROWS`` rows,
  and above it the :class:`~fraud_app.data.partitioned.LazyDataset` (a Dask DataFrame), opened
  and validated once per process. Which of the two is decided from the Parquet footers only, once
  per set of settings.
* :func:`current_info` answers the :class:`~fraud_app.data.loader.DatasetInfo` of either, once per
  data set: for a lazy set, rows and partitions come from the footers and the frauds, time span and
  memory from its cached EDA summary (computed on the cluster, cached on disk by fingerprint), so
  the set is never loaded whole.
* :func:`reference_frame` answers a frame small enough for the Inference tab's reference
  transaction and real examples: the whole frame, or for a lazy set the rows of a few sampled
  partitions (at most :data:`REFERENCE_SAMPLE_ROWS`, every fraud of them kept).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

import numpy as np
import pandas as pd

from fraud_app.config import get_settings
from fraud_app.data.loader import DatasetInfo, dataset_info, load_transactions
from fraud_app.data.partitioned import (
    LazyDataset,
    data_url,
    list_files,
    open_lazy,
    read_partition,
    sample_indices,
)
from fraud_app.data.schema import TARGET

log = logging.getLogger(__name__)

#: Rows at most in the reference frame of a lazy data set (every fraud of the sampled partitions is kept).
REFERENCE_SAMPLE_ROWS = 200_000
Mode = Literal["memory", "lazy"]

_lock = threading.Lock()
_modes: dict[tuple, Mode] = {}
_lazy: dict[tuple, LazyDataset] = {}
_info: dict[str, DatasetInfo] = {}
_reference: dict[str, pd.DataFrame] = {}


def _settings_key() -> tuple:
    s = get_settings()
    return (s.data_path, s.dataset, s.max_in_memory_rows, s.synthetic_rows, s.synthetic_fraud_rate, s.seed,
            str(s.parquet_path))


def _synthetic_demo() -> bool:
    s = get_settings()
    return s.data_path is None and s.dataset == "synthetic"


def dataset_mode() -> Mode:
    """``"lazy"`` when the app's data set has more rows than ``FRAUD_APP_MAX_IN_MEMORY_ROWS``, else ``"memory"``.

    Decided from the Parquet footers, once per set of settings (no data read). A CSV file or a
    missing data set is ``"memory"``: the loader then reads it, or names what is missing.
    """
    key = _settings_key()
    with _lock:
        mode = _modes.get(key)
    if mode is not None:
        return mode
    mode = "memory"
    if not _synthetic_demo():
        from fraud_app.data.loader import DataNotFoundError

        try:
            files = list_files(data_url())
        except DataNotFoundError:
            files = None
        if files is not None and all(r >= 0 for r in files.rows) and \
                files.total_rows > get_settings().max_in_memory_rows:
            mode = "lazy"
    with _lock:
        _modes[key] = mode
    return mode


def opened_lazy_dataset() -> LazyDataset | None:
    """The lazy data set if this process has opened it already for the current settings (no I/O), else None."""
    with _lock:
        return _lazy.get(_settings_key())


def current_dataset() -> pd.DataFrame | LazyDataset:
    """The app's data set: the shared pandas frame, or the :class:`LazyDataset` above the in-memory limit.

    Both are opened once per process; the lazy one is validated (footers, sampled partitions) when
    first opened. Raises the loader's named errors (``DataNotFoundError``, ``SchemaError``).
    """
    if dataset_mode() == "memory":
        return load_transactions()
    key = _settings_key()
    with _lock:
        dataset = _lazy.get(key)
        if dataset is None:
            dataset = open_lazy(data_url())
            _lazy.clear()
            _lazy[key] = dataset
            log.info("opened %s lazily on Dask: %s", dataset.source, dataset.read_text())
    return dataset


def lazy_info(dataset: LazyDataset, overview: dict[str, Any]) -> DatasetInfo:
    """The :class:`DatasetInfo` of a lazy set from its footers and its EDA summary's ``overview``."""
    return DatasetInfo(rows=dataset.rows, frauds=int(overview["frauds"]), fraud_rate=float(overview["fraud_rate"]),
                       time_span_hours=float(overview["time_span_hours"]), memory_mb=float(overview["memory_mb"]),
                       source=dataset.source, fingerprint=dataset.fingerprint, partitions=dataset.partitions, lazy=True)


def cached_info(dataset: pd.DataFrame | LazyDataset) -> DatasetInfo | None:
    """The info of ``dataset`` if :func:`current_info` computed it already (no work), else None."""
    with _lock:
        return _info.get(_fingerprint_of(dataset))


def _fingerprint_of(dataset: pd.DataFrame | LazyDataset) -> str:
    if isinstance(dataset, LazyDataset):
        return dataset.fingerprint
    return str(dataset.attrs.get("fingerprint") or id(dataset))


def current_info(dataset: pd.DataFrame | LazyDataset | None = None) -> DatasetInfo:
    """Rows, frauds, partitions, fingerprint ... of ``dataset`` (default: :func:`current_dataset`), once per process.

    For a lazy set this needs its EDA summary (:func:`fraud_app.eda.lazy.get_lazy_summary`): from
    memory or the disk cache, else computed on the cluster (slow: call it off the event loop).
    """
    if dataset is None:
        dataset = current_dataset()
    info = cached_info(dataset)
    if info is not None:
        return info
    if isinstance(dataset, LazyDataset):
        from fraud_app.eda.lazy import get_lazy_summary

        info = lazy_info(dataset, get_lazy_summary(dataset).overview)
    else:
        info = dataset_info(dataset)
    with _lock:
        _info[_fingerprint_of(dataset)] = info
    return info


def sample_partitions(dataset: LazyDataset, max_rows: int = REFERENCE_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """The rows of a few partitions of ``dataset`` (first, last, evenly between), in memory.

    At most ``max_rows`` rows: above it every fraud is kept and a seeded random share of the clear
    rows fills the rest. ``attrs["fingerprint"]`` is the data set's, suffixed ``-partitions``.
    """
    chosen = sample_indices(len(dataset.files.files))
    parts = [read_partition(dataset.files, i) for i in chosen]
    frame = pd.concat(parts, ignore_index=True)
    if len(frame) > max_rows:
        labels = frame[TARGET].to_numpy()
        fraud = np.flatnonzero(labels == 1)
        clear = np.flatnonzero(labels == 0)
        keep = np.random.default_rng(seed).choice(clear, size=max(max_rows - len(fraud), 0), replace=False)
        frame = frame.iloc[np.sort(np.concatenate([fraud, keep]))].reset_index(drop=True)
    frame.attrs["source"] = f"{dataset.source} ({len(chosen)} of {dataset.partitions} partitions)"
    frame.attrs["fingerprint"] = f"{dataset.fingerprint}-partitions"
    frame.attrs["partitions"] = len(chosen)
    return frame


def reference_frame() -> pd.DataFrame:
    """A frame to take the Inference tab's reference transaction and real examples from.

    The app's frame when it fits in memory; for a lazy set the rows of a few sampled partitions
    (:func:`sample_partitions`), read once per process.
    """
    dataset = current_dataset()
    if not isinstance(dataset, LazyDataset):
        return dataset
    with _lock:
        frame = _reference.get(dataset.fingerprint)
    if frame is None:
        frame = sample_partitions(dataset)
        with _lock:
            _reference.clear()
            _reference[dataset.fingerprint] = frame
        log.info("reference frame of %s: %s rows from %s", dataset.fingerprint, f"{len(frame):,}",
                 frame.attrs["source"])
    return frame


def clear() -> None:
    """Forget the decisions, lazy data sets, infos and reference frames (tests)."""
    with _lock:
        _modes.clear()
        _lazy.clear()
        _info.clear()
        _reference.clear()


__all__ = ["REFERENCE_SAMPLE_ROWS", "cached_info", "clear", "current_dataset", "current_info", "dataset_mode",
           "lazy_info", "opened_lazy_dataset", "reference_frame", "sample_partitions"]
