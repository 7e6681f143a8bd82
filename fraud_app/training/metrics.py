"""Metrics for imbalanced binary classification (no Panel)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: The PR curve is downsampled to at most this many points.
MAX_CURVE_POINTS = 500


def _arrays(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int8).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores differ in length ({len(y)} vs {len(s)})")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1")
    return y, s


def metrics_at_threshold(y_true: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """F1, precision, recall and the confusion matrix ``[[tn, fp], [fn, tp]]`` of ``scores >= threshold``."""
    y, s = _arrays(y_true, scores)
    flagged = s >= float(threshold)
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    tn = int(np.sum(~flagged & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "threshold": float(threshold),
            "confusion_matrix": [[tn, fp], [fn, tp]]}


def _cuts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (one per distinct score, plus 'flag nothing') with their tp and fp counts."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.r_[0, np.cumsum(y_sorted)[last]]
    fp = np.r_[0, np.cumsum(1 - y_sorted)[last]]
    distinct = s_sorted[last]
    # Flag rows with score >= threshold: half-way between this distinct score and the next lower one.
    below = np.r_[distinct[1:], min(0.0, distinct[-1] - 1e-9) if len(distinct) else 0.0]
    thresholds = np.r_[np.nextafter(distinct[0], np.inf) if len(distinct) else 1.0, (distinct + below) / 2]
    return thresholds, tp, fp


def cheapest_threshold(y_true: Any, scores: Any, cost_fn: float, cost_fp: float) -> float:
    """The threshold minimising ``cost_fn * FN + cost_fp * FP`` (ties go to the higher threshold).

    The result is clipped into (0, 1).
    """
    if cost_fn < 0 or cost_fp < 0:
        raise ValueError("costs must be non-negative")
    y, s = _arrays(y_true, scores)
    if len(y) == 0:
        raise ValueError("need at least one score")
    thresholds, tp, fp = _cuts(y, s)
    cost = cost_fn * (int(y.sum()) - tp) + cost_fp * fp
    best = int(np.argmin(cost))
    return float(np.clip(thresholds[best], 1e-6, 1 - 1e-6))


def pr_curve(y_true: Any, scores: Any, max_points: int = MAX_CURVE_POINTS) -> dict[str, list[float]]:
    """Points of the precision-recall curve, downsampled to at most ``max_points``.

    Intermediate points that do not change the curve's shape are dropped first; if more than
    ``max_points`` remain, evenly spaced ones are kept (always with both ends). ``thresholds``
    has one value per point (the last point, recall 0, reuses the highest threshold).
    """
    from sklearn.metrics import precision_recall_curve

    y, s = _arrays(y_true, scores)
    precision, recall, thresholds = precision_recall_curve(y, s, drop_intermediate=True)
    thresholds = np.r_[thresholds, thresholds[-1] if len(thresholds) else 1.0]
    n = len(precision)
    if n > max_points:
        keep = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
        precision, recall, thresholds = precision[keep], recall[keep], thresholds[keep]
    return {"precision": precision.tolist(), "recall": recall.tolist(), "thresholds": thresholds.tolist()}


#: Upper edges of the reliability bins after the first (``[0, 1e-4)``): log-spaced, because at a
#: 0.17 % fraud rate almost every score is tiny and equal-width bins would put ~all rows in one.
RELIABILITY_EDGES: tuple[float, ...] = (0.0, 1e-4, 1e-3, 0.01, 0.03, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.0)


def brier_score(y_true: Any, scores: Any) -> float:
    """Mean squared difference between P(fraud) and the 0/1 label (lower is better; 0 is perfect)."""
    y, s = _arrays(y_true, scores)
    return float(np.mean((s - y) ** 2)) if len(y) else float("nan")


def log_loss(y_true: Any, scores: Any, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the labels under P(fraud) (clipped into [eps, 1 - eps])."""
    y, s = _arrays(y_true, scores)
    p = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))) if len(y) else float("nan")


def reliability_curve(y_true: Any, scores: Any, edges: Any = RELIABILITY_EDGES) -> dict[str, Any]:
    """Reliability (calibration) curve: in each bin of P(fraud), the mean prediction and the observed fraud rate.

    A calibrated model has ``observed`` close to ``predicted`` in every bin (the diagonal).
    Empty bins are left out. Bins are ``[lower, upper)`` (the last includes 1).

    Returns
    -------
    dict
        lists of equal length: ``lower``, ``upper`` (bin edges), ``predicted`` (mean P(fraud)),
        ``observed`` (fraud rate), ``count`` (rows), ``frauds``; plus ``ece``: the expected
        calibration error, the count-weighted mean of ``|observed - predicted|``.
    """
    y, s = _arrays(y_true, scores)
    edges = np.asarray(edges, dtype=np.float64)
    index = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 2)
    out: dict[str, Any] = {"lower": [], "upper": [], "predicted": [], "observed": [], "count": [], "frauds": []}
    for b in range(len(edges) - 1):
        mask = index == b
        n = int(mask.sum())
        if n == 0:
            continue
        out["lower"].append(float(edges[b]))
        out["upper"].append(float(edges[b + 1]))
        out["predicted"].append(float(s[mask].mean()))
        out["observed"].append(float(y[mask].mean()))
        out["count"].append(n)
        out["frauds"].append(int(y[mask].sum()))
    counts = np.asarray(out["count"], dtype=np.float64)
    gaps = np.abs(np.asarray(out["observed"]) - np.asarray(out["predicted"]))
    out["ece"] = float((counts * gaps).sum() / counts.sum()) if counts.sum() else None
    return out


def evaluate_scores(y_true: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """All reported metrics: f1, precision, recall, pr_auc (average precision), roc_auc, brier,
    log_loss, threshold, confusion_matrix, n_test, n_test_fraud."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = _arrays(y_true, scores)
    result = metrics_at_threshold(y, s, threshold)
    both = 0 < int(y.sum()) < len(y)
    result["pr_auc"] = float(average_precision_score(y, s)) if both else None
    result["roc_auc"] = float(roc_auc_score(y, s)) if both else None
    result["brier"] = brier_score(y, s) if len(y) else None
    result["log_loss"] = log_loss(y, s) if len(y) else None
    result["n_test"] = int(len(y))
    result["n_test_fraud"] = int(y.sum())
    return result


__all__ = [
    "MAX_CURVE_POINTS", "RELIABILITY_EDGES", "brier_score", "cheapest_threshold", "evaluate_scores", "log_loss",
    "metrics_at_threshold", "pr_curve", "reliability_curve",
]
