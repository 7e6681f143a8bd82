"""The EDA numbers: pure pandas/numpy, no Panel.

Every public function takes a canonical transactions frame (see
:mod:`fraud_app.data.schema`) and returns plain pandas/numpy objects.
:func:`compute_summary` computes all of them at once, sharing one sorted copy
of the columns per class, which is what makes the cold compute on the real data
take well under two seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraud_app.data.schema import MODEL_FEATURES, TARGET, TIME

#: Columns summarised by the EDA: ``time`` and the 29 model inputs.
EDA_COLUMNS: list[str] = [TIME, *MODEL_FEATURES]
#: The two classes, in the order every table and chart uses.
CLASSES: tuple[str, str] = ("clear", "fraud")
#: Edges of the amount buckets (the last bucket is open-ended).
AMOUNT_BUCKET_EDGES: tuple[float, ...] = (0, 1, 10, 50, 100, 250, 500, 1000, 2500, math.inf)
#: Share of clear transactions kept inside a histogram's range at each end (all frauds are always kept).
HIST_TAIL = 0.001
DEFAULT_BINS = 60
DESCRIBE_STATS: tuple[str, ...] = ("count", "mean", "std", "min", "25%", "50%", "75%", "max")


@dataclass(frozen=True)
class FeatureHistogram:
    """Per-class histograms of one column on shared bins.

    ``clear_density``/``fraud_density`` are counts divided by the class size times
    the bin width, so each class integrates to the share of it inside the range
    (all frauds, at least 99.8 % of clear transactions).
    """

    column: str
    label: str
    edges: np.ndarray
    clear_counts: np.ndarray
    fraud_counts: np.ndarray
    clear_density: np.ndarray
    fraud_density: np.ndarray
    clear_outside: int
    fraud_outside: int

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per bin and class (``left``, ``right``, ``class``, ``count``, ``density``)."""
        n = len(self.clear_counts)
        return pd.DataFrame({
            "left": np.tile(self.edges[:-1], 2),
            "right": np.tile(self.edges[1:], 2),
            "class": np.repeat(list(CLASSES), n),
            "count": np.concatenate([self.clear_counts, self.fraud_counts]),
            "density": np.concatenate([self.clear_density, self.fraud_density]),
        })


@dataclass(frozen=True)
class EDASummary:
    """Everything the EDA tab shows, computed once per data set (see :func:`get_summary`)."""

    fingerprint: str
    overview: dict
    describe: pd.DataFrame
    balance: pd.DataFrame
    histograms: dict[str, FeatureHistogram]
    log_histograms: dict[str, FeatureHistogram]
    correlations: dict[str, pd.DataFrame]
    ranking: pd.DataFrame
    amount_buckets: pd.DataFrame
    hourly: pd.DataFrame
    insights: list[str] = field(default_factory=list)
    compute_seconds: float = 0.0

    @property
    def top_features(self) -> list[str]:
        """The three features that separate the classes best (by KS statistic)."""
        return top_features(self.ranking, 3)


# --------------------------------------------------------------------------- preparation


@dataclass
class _Prepared:
    """The columns as float arrays, split by class, each row sorted."""

    columns: list[str]
    clear_sorted: np.ndarray  # (n_columns, n_clear)
    fraud_sorted: np.ndarray  # (n_columns, n_fraud)
    correlations: dict[str, np.ndarray] | None = None

    def sorted_pair(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.columns.index(column)
        return self.clear_sorted[i], self.fraud_sorted[i]


def _check(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    missing = [c for c in [*columns, TARGET] if c not in frame.columns]
    if missing:
        raise ValueError(f"the EDA needs column(s) {', '.join(missing)}")
    labels = frame[TARGET].to_numpy()
    is_fraud = labels == 1
    n_fraud = int(is_fraud.sum())
    if n_fraud < 2 or len(labels) - n_fraud < 2:
        raise ValueError(
            f"the EDA needs at least 2 clear and 2 fraudulent transactions, got "
            f"{len(labels) - n_fraud} clear and {n_fraud} fraud"
        )
    return is_fraud


def _prepare(frame: pd.DataFrame, columns: list[str] | None = None, *, with_correlations: bool = False) -> _Prepared:
    columns = list(columns or EDA_COLUMNS)
    is_fraud = _check(frame, columns)
    values = np.ascontiguousarray(frame[columns].to_numpy(dtype="float64").T)
    clear = values[:, ~is_fraud]
    fraud = values[:, is_fraud]
    del values
    corr = None
    if with_correlations:
        features = [columns.index(c) for c in columns if c != TIME]
        corr = {
            "clear": _corrcoef(clear[features]),
            "fraud": _corrcoef(fraud[features]),
        }
        corr["all"] = _pooled_corr(clear[features], fraud[features])
    clear.sort(axis=1)
    fraud.sort(axis=1)
    return _Prepared(columns=columns, clear_sorted=clear, fraud_sorted=fraud, correlations=corr)


def _corrcoef(rows: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(rows)


def _pooled_corr(clear: np.ndarray, fraud: np.ndarray) -> np.ndarray:
    """Pearson correlation over both classes, from the per-class sums (no concatenated copy)."""
    n = clear.shape[1] + fraud.shape[1]
    total = clear.sum(axis=1) + fraud.sum(axis=1)
    mean = total / n
    centered_c = clear - mean[:, None]
    centered_f = fraud - mean[:, None]
    cov = centered_c @ centered_c.T + centered_f @ centered_f.T
    std = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.outer(std, std)


def _quantile_sorted(values: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile of a sorted 1-D array (pandas' and numpy's default)."""
    position = q * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return float(values[low] + (values[high] - values[low]) * (position - low))


# --------------------------------------------------------------------------- public functions


def overview(frame: pd.DataFrame) -> dict:
    """Rows, frauds, clear transactions, fraud rate, the time span (hours) and memory (MB)."""
    if TARGET not in frame.columns or TIME not in frame.columns:
        raise ValueError(f"the EDA overview needs the columns {TIME!r} and {TARGET!r}")
    rows = len(frame)
    frauds = int(frame[TARGET].sum())
    times = frame[TIME].to_numpy()
    span = float(times.max() - times.min()) / 3600 if rows else 0.0
    return {
        "rows": rows,
        "frauds": frauds,
        "clear": rows - frauds,
        "fraud_rate": frauds / rows if rows else 0.0,
        "time_span_hours": span,
        "memory_mb": float(frame.memory_usage(deep=True).sum()) / 1e6,
        "columns": int(frame.shape[1]),
    }


def class_balance(frame: pd.DataFrame) -> pd.DataFrame:
    """Transactions per class: ``class`` (clear/fraud), ``count``, ``share``."""
    if TARGET not in frame.columns:
        raise ValueError(f"class balance needs the column {TARGET!r}")
    counts = np.bincount(frame[TARGET].to_numpy().astype("int64"), minlength=2)[:2]
    total = counts.sum()
    return pd.DataFrame({
        "class": list(CLASSES),
        "count": counts.astype("int64"),
        "share": counts / total if total else np.zeros(2),
    })


def describe_by_class(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """``describe()`` per class: one row per column and class, the usual eight statistics."""
    return _describe(_prepare(frame, columns))


def _describe(prep: _Prepared) -> pd.DataFrame:
    records = []
    for i, column in enumerate(prep.columns):
        for label, values in zip(CLASSES, (prep.clear_sorted[i], prep.fraud_sorted[i]), strict=True):
            records.append({
                "feature": column,
                "class": label,
                "count": len(values),
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)),
                "min": float(values[0]),
                "25%": _quantile_sorted(values, 0.25),
                "50%": _quantile_sorted(values, 0.50),
                "75%": _quantile_sorted(values, 0.75),
                "max": float(values[-1]),
            })
    return pd.DataFrame.from_records(records, columns=["feature", "class", *DESCRIBE_STATS])


def feature_histograms(frame: pd.DataFrame, columns: list[str] | None = None,
                       bins: int = DEFAULT_BINS) -> dict[str, FeatureHistogram]:
    """Per-class, density-normalised histograms of each column on bins shared by both classes."""
    prep = _prepare(frame, columns)
    return {c: _histogram(c, c, *prep.sorted_pair(c), bins) for c in prep.columns}


def log_amount_histogram(frame: pd.DataFrame, bins: int = DEFAULT_BINS) -> FeatureHistogram:
    """Per-class histograms of ``log10(1 + amount)`` on shared bins."""
    prep = _prepare(frame, ["amount"])
    return _log_amount(prep, bins)


def _log_amount(prep: _Prepared, bins: int) -> FeatureHistogram:
    clear, fraud = prep.sorted_pair("amount")
    return _histogram("amount", "log10(1 + amount)", np.log10(1 + np.maximum(clear, 0)),
                      np.log10(1 + np.maximum(fraud, 0)), bins)


def _histogram(column: str, label: str, clear: np.ndarray, fraud: np.ndarray, bins: int) -> FeatureHistogram:
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    low = min(_quantile_sorted(clear, HIST_TAIL), float(fraud[0]))
    high = max(_quantile_sorted(clear, 1 - HIST_TAIL), float(fraud[-1]))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    width = edges[1] - edges[0]
    counts = []
    outside = []
    for values in (clear, fraud):
        index = np.searchsorted(values, edges, side="left")
        index[-1] = np.searchsorted(values, edges[-1], side="right")
        counts.append(np.diff(index))
        outside.append(int(len(values) - (index[-1] - index[0])))
    return FeatureHistogram(
        column=column, label=label, edges=edges,
        clear_counts=counts[0], fraud_counts=counts[1],
        clear_density=counts[0] / (len(clear) * width),
        fraud_density=counts[1] / (len(fraud) * width),
        clear_outside=outside[0], fraud_outside=outside[1],
    )


def correlations(frame: pd.DataFrame, columns: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Pearson correlation matrices of the model inputs: ``all``, ``clear`` and ``fraud`` transactions."""
    columns = [c for c in (columns or MODEL_FEATURES) if c != TIME]
    prep = _prepare(frame, columns, with_correlations=True)
    return _correlation_frames(prep)


def _correlation_frames(prep: _Prepared) -> dict[str, pd.DataFrame]:
    assert prep.correlations is not None
    names = [c for c in prep.columns if c != TIME]
    return {key: pd.DataFrame(prep.correlations[key], index=names, columns=names)
            for key in ("all", "clear", "fraud")}


def ks_statistic(clear_sorted: np.ndarray, fraud_sorted: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of two sorted samples.

    The supremum of the distance between the two empirical CDFs is reached at one of
    the smaller sample's points (just before or at it), so only those are evaluated:
    O(m log n) for m frauds instead of sorting the union.
    """
    n_c, n_f = len(clear_sorted), len(fraud_sorted)
    c_left = np.searchsorted(clear_sorted, fraud_sorted, side="left") / n_c
    c_right = np.searchsorted(clear_sorted, fraud_sorted, side="right") / n_c
    f_left = np.searchsorted(fraud_sorted, fraud_sorted, side="left") / n_f
    f_right = np.searchsorted(fraud_sorted, fraud_sorted, side="right") / n_f
    return float(max(np.max(c_left - f_left), np.max(f_right - c_right), 0.0))


def binned_mutual_information(hist: FeatureHistogram) -> float:
    """Mutual information (bits) between the class and the column binned as in ``hist``.

    The values outside the histogram's range count as two extra bins.
    """
    clear = np.concatenate([hist.clear_counts, [hist.clear_outside]]).astype("float64")
    fraud = np.concatenate([hist.fraud_counts, [hist.fraud_outside]]).astype("float64")
    joint = np.stack([clear, fraud])
    total = joint.sum()
    p = joint / total
    p_class = p.sum(axis=1, keepdims=True)
    p_bin = p.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = p * np.log2(p / (p_class * p_bin))
    return float(np.nansum(terms))


def separation_ranking(frame: pd.DataFrame, features: list[str] | None = None,
                       bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """Rank the model inputs by how well they separate frauds from clear transactions.

    Columns: ``feature``, ``ks`` (two-sample KS statistic), ``mutual_info`` (bits, on
    the shared histogram bins), ``rank`` (1 = best by KS); sorted by ``rank``.
    """
    prep = _prepare(frame, list(features or MODEL_FEATURES))
    hists = {c: _histogram(c, c, *prep.sorted_pair(c), bins) for c in prep.columns}
    return _ranking(prep, hists, prep.columns)


def _ranking(prep: _Prepared, hists: dict[str, FeatureHistogram], features: list[str]) -> pd.DataFrame:
    return _ranking_rows([{"feature": c, "ks": ks_statistic(*prep.sorted_pair(c)),
                           "mutual_info": binned_mutual_information(hists[c])} for c in features])


def _ranking_rows(rows: list[dict]) -> pd.DataFrame:
    """The ranking table from ``{"feature", "ks", "mutual_info"}`` rows (the Dask EDA shares it)."""
    ranking = pd.DataFrame(rows).sort_values(["ks", "mutual_info"], ascending=False, kind="stable")
    ranking["rank"] = np.arange(1, len(ranking) + 1)
    return ranking.reset_index(drop=True)


def top_features(ranking: pd.DataFrame, n: int = 3) -> list[str]:
    """The ``n`` best-separating features of a :func:`separation_ranking` table."""
    return ranking.sort_values("rank")["feature"].head(n).tolist()


def amount_buckets(frame: pd.DataFrame, edges: tuple[float, ...] = AMOUNT_BUCKET_EDGES) -> pd.DataFrame:
    """Transactions, frauds and the fraud rate per amount bucket.

    Columns: ``bucket`` (label such as ``"10–50"``), ``low``, ``high``, ``transactions``,
    ``frauds``, ``fraud_rate`` (NaN for an empty bucket).
    """
    for column in ("amount", TARGET):
        if column not in frame.columns:
            raise ValueError(f"the amount analysis needs the column {column!r}")
    amounts = frame["amount"].to_numpy(dtype="float64")
    labels = frame[TARGET].to_numpy().astype("int64")
    return _amount_buckets(amounts, labels, edges)


def _amount_buckets(amounts: np.ndarray, labels: np.ndarray, edges: tuple[float, ...]) -> pd.DataFrame:
    edges_arr = np.asarray(edges, dtype="float64")
    if len(edges_arr) < 2 or np.any(np.diff(edges_arr) <= 0):
        raise ValueError("amount bucket edges must be increasing and at least two")
    index = np.clip(np.searchsorted(edges_arr, amounts, side="right") - 1, 0, len(edges_arr) - 2)
    transactions = np.bincount(index, minlength=len(edges_arr) - 1)
    frauds = np.bincount(index, weights=labels, minlength=len(edges_arr) - 1).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(transactions > 0, frauds / np.maximum(transactions, 1), np.nan)
    names = [_bucket_label(lo, hi) for lo, hi in zip(edges_arr[:-1], edges_arr[1:], strict=True)]
    return pd.DataFrame({
        "bucket": names, "low": edges_arr[:-1], "high": edges_arr[1:],
        "transactions": transactions.astype("int64"), "frauds": frauds, "fraud_rate": rate,
    })


def _bucket_label(low: float, high: float) -> str:
    def fmt(x: float) -> str:
        return f"{x:,.0f}" if x >= 1 or x == 0 else f"{x:g}"

    return f"≥ {fmt(low)}" if math.isinf(high) else f"{fmt(low)}–{fmt(high)}"


def hourly_pattern(frame: pd.DataFrame) -> pd.DataFrame:
    """Transactions, frauds and the fraud rate per hour of the day.

    ``time`` counts seconds from the first transaction, so the hour is
    ``floor(time / 3600) mod 24`` (hours since the first transaction; the real data set's night-time
    dip at hours 1-6 suggests it starts around midnight).
    Columns: ``hour`` (0-23), ``transactions``, ``frauds``, ``fraud_rate``.
    """
    for column in (TIME, TARGET):
        if column not in frame.columns:
            raise ValueError(f"the time pattern needs the column {column!r}")
    return _hourly(frame[TIME].to_numpy(dtype="float64"), frame[TARGET].to_numpy().astype("int64"))


def _hourly(times: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    hours = (np.floor(times / 3600).astype("int64")) % 24
    transactions = np.bincount(hours, minlength=24)
    frauds = np.bincount(hours, weights=labels, minlength=24).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(transactions > 0, frauds / np.maximum(transactions, 1), np.nan)
    return pd.DataFrame({"hour": np.arange(24), "transactions": transactions.astype("int64"),
                         "frauds": frauds, "fraud_rate": rate})


def insights(summary: EDASummary) -> list[str]:
    """Short findings (Markdown) computed from the numbers of a summary."""
    ov = summary.overview
    notes = [
        f"**{ov['frauds']:,} of {ov['rows']:,} transactions are fraud ({ov['fraud_rate']:.3%}).** "
        f"A model that never flags anything is {1 - ov['fraud_rate']:.2%} accurate, so accuracy says "
        "nothing here: judge models by precision, recall and PR-AUC."
    ]
    rank = summary.ranking
    top = rank.head(3)
    listed = ", ".join(f"`{r.feature}` (KS {r.ks:.2f})" for r in top.itertuples())
    worst = rank.iloc[-1]
    notes.append(
        f"**The most separating features are {listed}.** The least separating, `{worst.feature}`, "
        f"has KS {worst.ks:.2f}."
    )
    desc = summary.describe
    medians = desc[desc["feature"] == "amount"].set_index("class")["50%"]
    buckets = summary.amount_buckets.dropna(subset=["fraud_rate"])
    buckets = buckets[buckets["transactions"] >= max(30, int(0.001 * ov["rows"]))]
    if not buckets.empty:
        best = buckets.loc[buckets["fraud_rate"].idxmax()]
        ratio = best["fraud_rate"] / ov["fraud_rate"] if ov["fraud_rate"] else math.nan
        notes.append(
            f"**Amounts:** the median fraud is {medians['fraud']:,.2f} against {medians['clear']:,.2f} for "
            f"clear transactions. The fraud rate is highest for amounts {best['bucket']} "
            f"({best['fraud_rate']:.2%}, {ratio:.1f}× the overall rate)."
        )
    hourly = summary.hourly
    busy = hourly[hourly["transactions"] >= max(30, int(0.001 * ov["rows"]))]
    if not busy.empty:
        peak = busy.loc[busy["fraud_rate"].idxmax()]
        quiet = hourly.loc[hourly["transactions"].idxmin()]
        notes.append(
            f"**Hour of day** (hours since the first transaction, modulo 24; the data set gives no clock "
            f"time): the fraud rate peaks in hour {int(peak['hour'])} "
            f"({peak['fraud_rate']:.2%} of {int(peak['transactions']):,} transactions); the quietest is "
            f"hour {int(quiet['hour'])} with {int(quiet['transactions']):,} transactions."
        )
    corr_fraud = summary.correlations["fraud"]
    corr_clear = summary.correlations["clear"]
    pair, value = strongest_pair(corr_fraud)
    if pair is not None:
        clear_value = corr_clear.loc[pair[0], pair[1]]
        notes.append(
            f"**Correlations:** among frauds the strongest pair is `{pair[0]}`–`{pair[1]}` "
            f"(r = {value:+.2f}, against {clear_value:+.2f} among clear transactions): the fraud "
            "class has structure the clear class does not."
        )
    return notes


def strongest_pair(matrix: pd.DataFrame) -> tuple[tuple[str, str] | None, float]:
    """The off-diagonal pair of a correlation matrix with the largest ``|r|``, and its ``r``."""
    values = matrix.to_numpy().copy()
    np.fill_diagonal(values, np.nan)
    if np.all(np.isnan(values)):
        return None, math.nan
    i, j = np.unravel_index(np.nanargmax(np.abs(values)), values.shape)
    return (str(matrix.index[i]), str(matrix.columns[j])), float(values[i, j])


def compute_summary(frame: pd.DataFrame, *, bins: int = DEFAULT_BINS, fingerprint: str | None = None) -> EDASummary:
    """Compute every EDA table and histogram in one pass (use :func:`get_summary` for the cached one)."""
    started = time.perf_counter()
    ov = overview(frame)
    prep = _prepare(frame, EDA_COLUMNS, with_correlations=True)
    hists = {c: _histogram(c, c, *prep.sorted_pair(c), bins) for c in prep.columns}
    log_hists = {"amount": _log_amount(prep, bins)}
    labels = frame[TARGET].to_numpy().astype("int64")
    summary = EDASummary(
        fingerprint=fingerprint or str(frame.attrs.get("fingerprint", "")),
        overview=ov,
        describe=_describe(prep),
        balance=class_balance(frame),
        histograms=hists,
        log_histograms=log_hists,
        correlations=_correlation_frames(prep),
        ranking=_ranking(prep, hists, list(MODEL_FEATURES)),
        amount_buckets=_amount_buckets(frame["amount"].to_numpy(dtype="float64"), labels, AMOUNT_BUCKET_EDGES),
        hourly=_hourly(frame[TIME].to_numpy(dtype="float64"), labels),
    )
    summary = dataclasses.replace(summary, insights=insights(summary))
    return dataclasses.replace(summary, compute_seconds=time.perf_counter() - started)
