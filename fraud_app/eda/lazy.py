"""EDA on a Dask DataFrame: the same :class:`~fraud_app.eda.stats.EDASummary`, computed on the cluster.

Two passes over the data, each a map over partitions and a tree reduction of small partial results
(never the rows themselves):

1. per class: counts, sums, sums of squares, minima, maxima and the cross-products of the model
   inputs (exact means, standard deviations and Pearson correlations), the amount-bucket and
   hour-of-day counts (exact), and counts in 16,384 bins of ``asinh(value)`` on [-20, 20]: the
   quartiles and the 0.1 %/99.9 % tails that bound the histograms are read from them, interpolated
   within a bin (a relative error of at most about 0.25 %);
2. per class: counts in ``16 × bins`` fine bins on each histogram's range: the display histograms
   are sums of 16 fine bins (exact counts), the KS statistic is read at the fine edges (within one
   fine bin's mass of the exact value).

The result is cached on disk as JSON, keyed by the data set's fingerprint
(``<output>/eda_cache/<fingerprint>.json``), so a restart does not recompute it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from fraud_app.config import get_settings
from fraud_app.data.schema import MODEL_FEATURES, TARGET, TIME
from fraud_app.eda.stats import (
    AMOUNT_BUCKET_EDGES,
    CLASSES,
    DEFAULT_BINS,
    DESCRIBE_STATS,
    EDA_COLUMNS,
    HIST_TAIL,
    EDASummary,
    FeatureHistogram,
    _amount_buckets,
    _hourly,
    _ranking_rows,
    binned_mutual_information,
    insights,
)

log = logging.getLogger(__name__)

#: Fine bins per display bin (the KS statistic is read at the fine edges).
FINE = 16
#: Format of the on-disk cache files; a new format ignores older files.
CACHE_FORMAT = 1
_QUANTILES = (HIST_TAIL, 0.25, 0.5, 0.75, 1 - HIST_TAIL)
#: Bins of asinh(value) on [-ASINH_LIMIT, ASINH_LIMIT] for the quantiles (values beyond go to the end bins).
QUANTILE_BINS = 16_384
ASINH_LIMIT = 20.0

_lock = threading.Lock()
_memory: dict[str, EDASummary] = {}
#: How many lazy summaries were actually computed in this process (tests assert on it).
compute_count = 0


def _tree_reduce(parts: list, combine) -> Any:
    import dask

    while len(parts) > 1:
        parts = [dask.delayed(combine)(parts[i:i + 8]) for i in range(0, len(parts), 8)]
    return parts[0]


# -- pass 1 ------------------------------------------------------------------------------------

def _moments(part: pd.DataFrame) -> dict:
    labels = part[TARGET].to_numpy().astype("int64")
    values = part[EDA_COLUMNS].to_numpy(dtype="float64")
    feats = values[:, 1:]
    out: dict[str, Any] = {"n": np.zeros(2), "sum": np.zeros((2, 30)), "sq": np.zeros((2, 30)),
                           "min": np.full((2, 30), np.inf), "max": np.full((2, 30), -np.inf),
                           "xtx": np.zeros((2, 29, 29))}
    for c in (0, 1):
        mask = labels == c
        v = values[mask]
        out["n"][c] = len(v)
        if len(v):
            out["sum"][c] = v.sum(axis=0)
            out["sq"][c] = (v * v).sum(axis=0)
            out["min"][c] = v.min(axis=0)
            out["max"][c] = v.max(axis=0)
            f = np.ascontiguousarray(feats[mask])  # a strided matmul is ~20x slower
            with threadpool_limits(1):  # BLAS threads fight the worker's own on a busy machine (500x slower)
                out["xtx"][c] = f.T @ f
    out["qhist"] = _asinh_counts(values, labels)
    out["buckets"] = _amount_buckets(part["amount"].to_numpy(dtype="float64"), labels, AMOUNT_BUCKET_EDGES)[
        ["transactions", "frauds"]].to_numpy()
    out["hourly"] = _hourly(part[TIME].to_numpy(dtype="float64"), labels)[["transactions", "frauds"]].to_numpy()
    return out


def _combine_moments(parts: list[dict]) -> dict:
    out = dict(parts[0])
    for p in parts[1:]:
        for key in ("n", "sum", "sq", "xtx", "buckets", "hourly", "qhist"):
            out[key] = out[key] + p[key]
        out["min"] = np.minimum(out["min"], p["min"])
        out["max"] = np.maximum(out["max"], p["max"])
    return out


def _asinh_counts(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts (class, column, bin) of asinh(value) in QUANTILE_BINS bins on [-ASINH_LIMIT, ASINH_LIMIT]."""
    scaled = (np.arcsinh(values) + ASINH_LIMIT) * (QUANTILE_BINS / (2 * ASINH_LIMIT))
    index = np.clip(scaled.astype("int64"), 0, QUANTILE_BINS - 1)
    index += np.arange(values.shape[1]) * QUANTILE_BINS  # one bincount per class for every column
    size = values.shape[1] * QUANTILE_BINS
    out = np.stack([np.bincount(index[labels == c].ravel(), minlength=size) for c in (0, 1)])
    return out.reshape(2, values.shape[1], QUANTILE_BINS)


def quantiles_from_counts(counts: np.ndarray, lo: float, hi: float, qs: tuple[float, ...]) -> list[float]:
    """Quantiles (linear interpolation, as numpy's default) from the asinh-bin ``counts`` of one column.

    The position ``q × (n - 1)`` is located in its bin and interpolated uniformly inside it in
    asinh space; the result is clipped to the exact minimum ``lo`` and maximum ``hi``.
    """
    n = int(counts.sum())
    cumulative = np.cumsum(counts)
    width = 2 * ASINH_LIMIT / QUANTILE_BINS
    out = []
    for q in qs:
        position = q * (n - 1)
        b = int(np.searchsorted(cumulative, position, side="right"))
        b = min(b, len(counts) - 1)
        before = cumulative[b - 1] if b else 0
        inside = (position - before + 0.5) / max(counts[b], 1)
        value = math.sinh(-ASINH_LIMIT + (b + min(max(inside, 0.0), 1.0)) * width)
        out.append(float(min(max(value, lo), hi)))
    return out


# -- pass 2 ------------------------------------------------------------------------------------

def _fine_counts(part: pd.DataFrame, edges: np.ndarray, log_edges: np.ndarray) -> np.ndarray:
    """Counts (class, column, below + fine bins + above); the last "column" is log10(1 + amount).

    The edges are evenly spaced, so a value's bin is arithmetic; a value equal to the last edge
    belongs to the last bin, as in ``numpy.histogram``.
    """
    labels = part[TARGET].to_numpy().astype("int64")
    values = part[EDA_COLUMNS].to_numpy(dtype="float64")
    log_amount = np.log10(1 + np.maximum(part["amount"].to_numpy(dtype="float64"), 0))
    values = np.column_stack([values, log_amount])
    all_edges = np.vstack([edges, log_edges[None, :]])
    n_fine = all_edges.shape[1] - 1
    low, high = all_edges[:, 0], all_edges[:, -1]
    width = (high - low) / n_fine
    index = np.clip(np.floor((values - low) / width).astype("int64") + 1, 1, n_fine)
    index[values < low] = 0
    index[values > high] = n_fine + 1
    index += np.arange(values.shape[1]) * (n_fine + 2)
    size = values.shape[1] * (n_fine + 2)
    out = np.stack([np.bincount(index[labels == c].ravel(), minlength=size) for c in (0, 1)])
    return out.reshape(2, values.shape[1], n_fine + 2)


def _sum_arrays(parts: list[np.ndarray]) -> np.ndarray:
    return np.sum(parts, axis=0)


def _histogram(column: str, label: str, edges: np.ndarray, fine: np.ndarray, bins: int) -> FeatureHistogram:
    """A display histogram from the fine counts ``fine`` (class, fine bin + below + above)."""
    inner = fine[:, 1:-1].reshape(2, bins, FINE).sum(axis=2)
    outside = fine[:, 0] + fine[:, -1]
    totals = fine.sum(axis=1)
    display_edges = edges[::FINE]
    width = display_edges[1] - display_edges[0]
    return FeatureHistogram(
        column=column, label=label, edges=display_edges, clear_counts=inner[0], fraud_counts=inner[1],
        clear_density=inner[0] / (max(totals[0], 1) * width), fraud_density=inner[1] / (max(totals[1], 1) * width),
        clear_outside=int(outside[0]), fraud_outside=int(outside[1]))


def _ks(fine: np.ndarray) -> float:
    cdf = np.cumsum(fine, axis=1) / np.maximum(fine.sum(axis=1, keepdims=True), 1)
    return float(np.max(np.abs(cdf[0] - cdf[1])))


def _range(q_low: float, q_high: float, lo: float, hi: float) -> tuple[float, float]:
    low, high = min(q_low, lo), max(q_high, hi)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return low, high


def compute_summary_dask(frame: Any, *, bins: int = DEFAULT_BINS, fingerprint: str = "",
                         memory_mb: float | None = None) -> EDASummary:
    """Every EDA table of a Dask DataFrame with the canonical columns, computed on the cluster."""
    import dask

    started = time.perf_counter()
    missing = [c for c in [*EDA_COLUMNS, TARGET] if c not in frame.columns]
    if missing:
        raise ValueError(f"the EDA needs column(s) {', '.join(missing)}")
    parts = frame.to_delayed()
    moments = _tree_reduce([dask.delayed(_moments)(p) for p in parts], _combine_moments)
    (m,) = dask.compute(moments)
    n = m["n"]
    if n[1] < 2 or n[0] < 2:
        raise ValueError(f"the EDA needs at least 2 clear and 2 fraudulent transactions, got {int(n[0])} clear "
                         f"and {int(n[1])} fraud")
    qc, qf = ({column: pd.Series(quantiles_from_counts(m["qhist"][c, j], m["min"][c, j], m["max"][c, j], _QUANTILES))
               for j, column in enumerate(EDA_COLUMNS)} for c in (0, 1))
    # the ranges: as the in-memory EDA, clear tails at HIST_TAIL and every fraud inside
    edges = np.empty((len(EDA_COLUMNS), bins * FINE + 1))
    for j, column in enumerate(EDA_COLUMNS):
        low, high = _range(float(qc[column].iloc[0]), float(qc[column].iloc[-1]), m["min"][1, j], m["max"][1, j])
        edges[j] = np.linspace(low, high, bins * FINE + 1)
    a = EDA_COLUMNS.index("amount")

    def to_log(x: float) -> float:
        return math.log10(1 + max(x, 0.0))

    low, high = _range(to_log(float(qc["amount"].iloc[0])), to_log(float(qc["amount"].iloc[-1])),
                       to_log(m["min"][1, a]), to_log(m["max"][1, a]))
    log_edges = np.linspace(low, high, bins * FINE + 1)
    fine = _tree_reduce([dask.delayed(_fine_counts)(p, edges, log_edges) for p in parts], _sum_arrays)
    (fine,) = dask.compute(fine)

    hists = {c: _histogram(c, c, edges[j], fine[:, j], bins) for j, c in enumerate(EDA_COLUMNS)}
    log_hists = {"amount": _histogram("amount", "log10(1 + amount)", log_edges, fine[:, -1], bins)}
    rows = int(n.sum())
    frauds = int(n[1])
    t = EDA_COLUMNS.index(TIME)
    span = float(max(m["max"][:, t]) - min(m["min"][:, t])) / 3600
    if memory_mb is None:
        memory_mb = rows * sum(np.dtype(d).itemsize for d in frame.dtypes) / 1e6
    overview = {"rows": rows, "frauds": frauds, "clear": rows - frauds, "fraud_rate": frauds / rows,
                "time_span_hours": span, "memory_mb": float(memory_mb), "columns": int(len(frame.columns))}
    balance = pd.DataFrame({"class": list(CLASSES), "count": n.astype("int64"), "share": n / rows})
    records = []
    for j, column in enumerate(EDA_COLUMNS):
        for c, (label, q) in enumerate(zip(CLASSES, (qc, qf), strict=True)):
            count = n[c]
            mean = m["sum"][c, j] / count
            var = max(m["sq"][c, j] - count * mean * mean, 0.0) / (count - 1)
            records.append({"feature": column, "class": label, "count": int(count), "mean": float(mean),
                            "std": float(math.sqrt(var)), "min": float(m["min"][c, j]),
                            "25%": float(q[column].iloc[1]), "50%": float(q[column].iloc[2]),
                            "75%": float(q[column].iloc[3]), "max": float(m["max"][c, j])})
    describe = pd.DataFrame.from_records(records, columns=["feature", "class", *DESCRIBE_STATS])
    correlations = {}
    names = list(MODEL_FEATURES)
    f_sum = m["sum"][:, 1:]
    for key, (xtx, s, count) in {"clear": (m["xtx"][0], f_sum[0], n[0]), "fraud": (m["xtx"][1], f_sum[1], n[1]),
                                 "all": (m["xtx"].sum(axis=0), f_sum.sum(axis=0), n.sum())}.items():
        mean = s / count
        cov = xtx - count * np.outer(mean, mean)
        std = np.sqrt(np.clip(np.diag(cov), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(std, std)
        correlations[key] = pd.DataFrame(corr, index=names, columns=names)
    ranking = _ranking_rows([{"feature": c, "ks": _ks(fine[:, EDA_COLUMNS.index(c)]),
                              "mutual_info": binned_mutual_information(hists[c])} for c in MODEL_FEATURES])
    buckets = _amount_buckets(np.zeros(0), np.zeros(0, dtype="int64"), AMOUNT_BUCKET_EDGES)
    buckets["transactions"], buckets["frauds"] = m["buckets"][:, 0].astype("int64"), m["buckets"][:, 1].astype("int64")
    buckets["fraud_rate"] = np.where(buckets["transactions"] > 0,
                                     buckets["frauds"] / np.maximum(buckets["transactions"], 1), np.nan)
    hourly = _hourly(np.zeros(0), np.zeros(0, dtype="int64"))
    hourly["transactions"], hourly["frauds"] = m["hourly"][:, 0].astype("int64"), m["hourly"][:, 1].astype("int64")
    hourly["fraud_rate"] = np.where(hourly["transactions"] > 0,
                                    hourly["frauds"] / np.maximum(hourly["transactions"], 1), np.nan)
    summary = EDASummary(fingerprint=fingerprint, overview=overview, describe=describe, balance=balance,
                         histograms=hists, log_histograms=log_hists, correlations=correlations, ranking=ranking,
                         amount_buckets=buckets, hourly=hourly)
    summary = dataclasses.replace(summary, insights=insights(summary))
    return dataclasses.replace(summary, compute_seconds=time.perf_counter() - started)


def scatter_aggregate(frame: Any, x: str, y: str, *, width: int = 400, height: int = 300,
                      x_range: tuple[float, float] | None = None,
                      y_range: tuple[float, float] | None = None) -> Any:
    """The datashader aggregation of every row of ``frame`` (pandas or Dask): counts and frauds per pixel.

    Returns an ``xarray.Dataset`` with ``count`` and ``frauds``; datashader computes it partition by partition
    (on the cluster for a Dask DataFrame). Without ranges, the data's own bounds are used.
    """
    import datashader as ds

    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)
    agg = canvas.points(frame, x, y, agg=ds.summary(count=ds.count(), frauds=ds.sum(TARGET)))
    return agg


# -- the on-disk cache ----------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return {"__frame__": {"columns": [str(c) for c in value.columns], "index": [str(i) for i in value.index],
                              "dtypes": [str(d) for d in value.dtypes],
                              "data": [[_encode(v) for v in row] for row in value.itertuples(index=False)]}}
    if isinstance(value, FeatureHistogram):
        return {"__hist__": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, np.ndarray):
        return {"__array__": [_encode(v) for v in value.tolist()], "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__frame__" in value:
            f = value["__frame__"]
            frame = pd.DataFrame([[_decode(v) for v in row] for row in f["data"]], columns=f["columns"])
            frame = frame.astype(dict(zip(f["columns"], f["dtypes"], strict=True)))
            if f["index"] != [str(i) for i in range(len(frame))]:
                frame.index = f["index"]
            return frame
        if "__hist__" in value:
            return FeatureHistogram(**{k: _decode(v) for k, v in value["__hist__"].items()})
        if "__array__" in value:
            return np.asarray([_decode(v) for v in value["__array__"]], dtype=value["dtype"])
        if "__float__" in value:
            return float(value["__float__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def cache_dir() -> Path:
    return get_settings().output_dir / "eda_cache"


def cache_path(fingerprint: str) -> Path:
    if not fingerprint.replace("-", "").isalnum():
        raise ValueError(f"not a data set fingerprint: {fingerprint!r}")
    return cache_dir() / f"{fingerprint}.json"


def save_summary(summary: EDASummary) -> Path:
    """Write ``summary`` to the disk cache (temp file, then rename)."""
    path = cache_path(summary.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": CACHE_FORMAT, **{f.name: _encode(getattr(summary, f.name)) for f in dataclasses.fields(summary)}}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_summary(fingerprint: str) -> EDASummary | None:
    """The cached summary of ``fingerprint``, or None (missing, unreadable or of another format)."""
    path = cache_path(fingerprint)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.pop("format", None) != CACHE_FORMAT:
        return None
    try:
        return EDASummary(**{k: _decode(v) for k, v in data.items()})
    except (TypeError, ValueError, KeyError) as exc:
        log.warning("ignoring the unreadable EDA cache file %s: %s", path, exc)
        return None


def get_lazy_summary(dataset: Any) -> EDASummary:
    """The EDA summary of a :class:`~fraud_app.data.partitioned.LazyDataset`: memory, then disk, then Dask."""
    global compute_count
    key = dataset.fingerprint
    with _lock:
        summary = _memory.get(key) or load_summary(key)
        if summary is None:
            from fraud_app.scale.engine import get_client

            get_client()  # the computation runs on the cluster, not in this process
            summary = compute_summary_dask(dataset.frame, fingerprint=key)
            compute_count += 1
            save_summary(summary)
            log.info("EDA summary of %s (%s) computed on Dask in %.1f s", key, dataset.read_text(),
                     summary.compute_seconds)
        _memory[key] = summary
    return summary


def is_in_memory(dataset: Any) -> bool:
    """True when the summary of ``dataset`` is held in memory (:func:`get_lazy_summary` answers at once)."""
    with _lock:
        return dataset.fingerprint in _memory


def clear_memory() -> None:
    """Forget the summaries held in memory (the disk cache stays; tests)."""
    with _lock:
        _memory.clear()


__all__ = ["CACHE_FORMAT", "FINE", "cache_path", "clear_memory", "compute_summary_dask", "get_lazy_summary",
           "is_in_memory", "load_summary", "save_summary", "scatter_aggregate"]
