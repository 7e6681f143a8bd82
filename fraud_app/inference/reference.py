"""What the Inference tab edits (no Panel): the reference transaction, slider ranges, real examples.

* The **reference transaction** is the per-feature median of the clear (``is_fraud == 0``)
  transactions, over the 29 model inputs. The tab starts every input there.
* **Slider ranges** come from the data's percentiles (0.5th to 99.5th by default) of the
  columns the tab shows as sliders (:data:`SLIDER_FEATURES`), widened if needed so that
  the reference value lies inside.
* **Real examples**: a random real clear or fraud transaction, drawn with a seedable
  :class:`numpy.random.Generator`.

Everything here is derived from :func:`fraud_app.data.service.reference_frame` (the app's frame,
or a few sampled partitions of a data set too big for memory) once per process
and cached by the data set's fingerprint (a different data set gets its own summary; only
the latest one is kept). The summary is read-only and shared by every browser session.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from fraud_app.data import KAGGLE_COLUMNS, MODEL_FEATURES, TARGET, fingerprint
from fraud_app.data.service import reference_frame

log = logging.getLogger(__name__)

#: The model inputs the Inference tab shows as sliders, in display order. The label of each
#: slider is exactly its column name; the other inputs stay frozen at the reference transaction.
SLIDER_FEATURES: tuple[str, ...] = ("feature11", "feature13", "feature15", "amount")
#: The inputs that are not sliders (25 of them), in MODEL_FEATURES order.
FROZEN_FEATURES: tuple[str, ...] = tuple(c for c in MODEL_FEATURES if c not in SLIDER_FEATURES)
#: Our column name -> the Kaggle/OpenML column name (feature11 -> V11, amount -> Amount).
KAGGLE_NAMES: dict[str, str] = {ours: kaggle for kaggle, ours in KAGGLE_COLUMNS.items()}
#: Default percentiles (in percent) that bound the sliders.
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: Rough number of slider steps across a slider's range.
SLIDER_STEPS = 1000

Label = Literal["clear", "fraud"]


@dataclass(frozen=True)
class SliderRange:
    """Bounds and step of one slider.

    Attributes
    ----------
    column : the model input the slider edits.
    start, end : the bounds (the data's percentiles, rounded outwards to a step, and
        widened to include ``reference``).
    step : a power of ten giving about :data:`SLIDER_STEPS` steps over the range.
    reference : the reference transaction's value (the clear-class median).
    percentiles : the percentiles ``start`` and ``end`` were taken at.
    """

    column: str
    start: float
    end: float
    step: float
    reference: float
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES


@dataclass(frozen=True)
class ReferenceData:
    """The per-data-set summary the Inference tab needs (computed once per process).

    Attributes
    ----------
    fingerprint : the data set's fingerprint this summary was computed from.
    reference : the reference transaction: clear-class median of each of the 29 model inputs.
    ranges : one :class:`SliderRange` per column of :data:`SLIDER_FEATURES`.
    clear_rows, fraud_rows : positional row numbers of the clear and the fraud transactions.
    """

    fingerprint: str
    reference: dict[str, float]
    ranges: dict[str, SliderRange]
    clear_rows: np.ndarray = field(repr=False)
    fraud_rows: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class SampledTransaction:
    """A real transaction picked from the data set.

    Attributes
    ----------
    row : its positional row number in the data set.
    time : its ``time`` (seconds after the first transaction), when the data set has one.
    is_fraud : its true label.
    values : its 29 model inputs, keyed by column.
    """

    row: int
    time: float | None
    is_fraud: bool
    values: dict[str, float]

    @property
    def label(self) -> Label:
        """``"fraud"`` or ``"clear"``."""
        return "fraud" if self.is_fraud else "clear"


_lock = threading.Lock()
_cache: dict[tuple[str, tuple[float, float]], ReferenceData] = {}
#: How many summaries were computed in this process (tests check the caching with it).
compute_count = 0


def _frame_fingerprint(frame: pd.DataFrame) -> str:
    return str(frame.attrs.get("fingerprint") or fingerprint(frame))


def _step_for(span: float) -> float:
    if not math.isfinite(span) or span <= 0:
        return 0.01
    return float(10.0 ** math.floor(math.log10(span / SLIDER_STEPS)))


def _slider_range(column: str, values: np.ndarray, reference: float,
                  percentiles: tuple[float, float]) -> SliderRange:
    low, high = (float(v) for v in np.percentile(values, percentiles))
    low, high = min(low, reference), max(high, reference)
    if high <= low:  # a constant column: give the slider some room
        low, high = low - 1.0, high + 1.0
    step = _step_for(high - low)
    start = math.floor(round(low / step, 6)) * step
    end = math.ceil(round(high / step, 6)) * step
    digits = max(0, -int(round(math.log10(step))))
    return SliderRange(column=column, start=round(start, digits), end=round(end, digits), step=step,
                       reference=reference, percentiles=percentiles)


def compute_reference_data(frame: pd.DataFrame,
                           percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> ReferenceData:
    """Compute the summary of ``frame`` (no caching; see :func:`reference_data`).

    Raises
    ------
    ValueError
        when ``frame`` lacks a model input or the label, holds no clear transaction, or
        ``percentiles`` are not ``0 <= low < high <= 100``.
    """
    low, high = percentiles
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}")
    missing = [c for c in (*MODEL_FEATURES, TARGET) if c not in frame.columns]
    if missing:
        raise ValueError(f"the data set lacks column(s) {', '.join(missing)}")
    labels = frame[TARGET].to_numpy()
    clear_rows = np.flatnonzero(labels == 0)
    fraud_rows = np.flatnonzero(labels == 1)
    if len(clear_rows) == 0:
        raise ValueError("the data set holds no clear transaction to take the reference from")
    values = frame[MODEL_FEATURES].to_numpy(dtype=np.float64)
    medians = np.median(values[clear_rows], axis=0)
    reference = {name: float(v) for name, v in zip(MODEL_FEATURES, medians, strict=True)}
    index = {name: i for i, name in enumerate(MODEL_FEATURES)}
    ranges = {name: _slider_range(name, values[:, index[name]], reference[name], (float(low), float(high)))
              for name in SLIDER_FEATURES}
    clear_rows.setflags(write=False)
    fraud_rows.setflags(write=False)
    return ReferenceData(fingerprint=_frame_fingerprint(frame), reference=reference, ranges=ranges,
                         clear_rows=clear_rows, fraud_rows=fraud_rows)


def reference_data(frame: pd.DataFrame | None = None,
                   percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> ReferenceData:
    """The summary of ``frame`` (default: the app's data set), computed once per fingerprint.

    Thread-safe; concurrent first calls compute it once.
    """
    global compute_count
    if frame is None:
        frame = reference_frame()
    key = (_frame_fingerprint(frame), (float(percentiles[0]), float(percentiles[1])))
    cached = _cache.get(key)
    if cached is not None:
        return cached
    with _lock:
        cached = _cache.get(key)
        if cached is None:
            cached = compute_reference_data(frame, key[1])
            compute_count += 1
            _cache.clear()  # one data set per process at a time: drop summaries of older ones
            _cache[key] = cached
            log.info("reference transaction computed for data set %s (%d clear, %d fraud rows)",
                     key[0], len(cached.clear_rows), len(cached.fraud_rows))
    return cached


def clear_reference_cache() -> None:
    """Forget the cached summaries (tests)."""
    with _lock:
        _cache.clear()


def reference_transaction(frame: pd.DataFrame | None = None) -> dict[str, float]:
    """The reference transaction: the clear-class median of each of the 29 model inputs.

    A new dict each call (callers may edit it).
    """
    return dict(reference_data(frame).reference)


def slider_ranges(frame: pd.DataFrame | None = None,
                  percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> dict[str, SliderRange]:
    """One :class:`SliderRange` per column of :data:`SLIDER_FEATURES`."""
    return dict(reference_data(frame, percentiles).ranges)


def make_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """A generator: ``seed`` itself if it is one, else ``numpy.random.default_rng(seed)``."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def random_transaction(label: Label, rng: int | np.random.Generator | None = None,
                       frame: pd.DataFrame | None = None) -> SampledTransaction:
    """A random real transaction of class ``label`` (``"clear"`` or ``"fraud"``).

    Parameters
    ----------
    label : which class to draw from.
    rng : a ``numpy.random.Generator`` (advanced in place) or a seed; None draws fresh entropy.
    frame : the data set (default: the app's data set).

    Raises
    ------
    ValueError : an unknown ``label``, or no transaction of that class in the data set.
    """
    if label not in ("clear", "fraud"):
        raise ValueError(f"label must be 'clear' or 'fraud', got {label!r}")
    if frame is None:
        frame = reference_frame()
    summary = reference_data(frame)
    rows = summary.fraud_rows if label == "fraud" else summary.clear_rows
    if len(rows) == 0:
        raise ValueError(f"the data set holds no {label} transaction")
    row = int(rows[make_rng(rng).integers(len(rows))])
    record = frame.iloc[row]
    time = float(record["time"]) if "time" in frame.columns else None
    return SampledTransaction(row=row, time=time, is_fraud=bool(record[TARGET]),
                              values={name: float(record[name]) for name in MODEL_FEATURES})


class TransactionPicker:
    """Draws random real transactions with its own seedable generator (one per session).

    >>> picker = TransactionPicker(seed=42)         # doctest: +SKIP
    >>> picker.pick("fraud").values["amount"]       # doctest: +SKIP
    """

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        self.rng = make_rng(seed)

    def pick(self, label: Label, frame: pd.DataFrame | None = None) -> SampledTransaction:
        """A random real transaction of class ``label``; see :func:`random_transaction`."""
        return random_transaction(label, self.rng, frame)


__all__ = [
    "DEFAULT_PERCENTILES", "FROZEN_FEATURES", "KAGGLE_NAMES", "SLIDER_FEATURES", "ReferenceData",
    "SampledTransaction", "SliderRange", "TransactionPicker", "clear_reference_cache",
    "compute_reference_data", "make_rng", "random_transaction", "reference_data", "reference_transaction",
    "slider_ranges",
]
