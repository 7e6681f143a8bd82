"""The training reference stored with every saved model, and PSI (no Panel, no database).

A reference is a JSON-ready dict kept in the model's ``metadata.json`` under ``"reference"``::

    {"format": 1, "rows": n_train,
     "features": {name: {"edges": [...], "proportions": [...]}},   # the 29 model inputs
     "scores": {"edges": [0, 0.05, ..., 1], "proportions": [...], "rows": n, "flagged_rate": r}}

Input bins are the deciles of the training rows with open-ended outer bins: ``edges`` are the
(distinct) inner cut points, bin ``i`` holds ``edges[i-1] <= x < edges[i]`` (``-inf``/``+inf``
at the ends), so there are ``len(edges) + 1`` bins. Scores use :data:`SCORE_BINS` equal bins of
[0, 1]; the reference scores are the validation (or out-of-fold) scores the threshold was chosen on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.data import MODEL_FEATURES

#: Equal-width bins of the fraud probability (the score histograms, live and reference).
SCORE_BINS = 20
#: Quantiles that cut the inputs into deciles.
DECILES = tuple(i / 10 for i in range(1, 10))
#: The feature name under which score bins are aggregated.
SCORE_FEATURE = "fraud_probability"
#: Proportions are floored at this before PSI (an empty bin would make it infinite).
PSI_EPSILON = 1e-4
REFERENCE_FORMAT = 1


def bin_indices(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The bin of each value for inner cut points ``edges`` (``0 .. len(edges)``)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64),
                           side="right")


def score_bins(scores: np.ndarray) -> np.ndarray:
    """The score histogram bin (``0 .. SCORE_BINS - 1``) of each probability."""
    return np.clip((np.asarray(scores, dtype=np.float64) * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1)


def proportions(bins: np.ndarray, n_bins: int) -> list[float]:
    """Share of the rows in each of ``n_bins`` bins (zeros when there are no rows)."""
    counts = np.bincount(np.asarray(bins, dtype=np.int64), minlength=n_bins)[:n_bins].astype(np.float64)
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * n_bins


def build_reference(train: pd.DataFrame, scores: np.ndarray | None, threshold: float) -> dict[str, Any]:
    """The reference of a model trained on ``train`` (the 29 inputs) whose threshold was chosen on ``scores``."""
    missing = [name for name in MODEL_FEATURES if name not in train.columns]
    if missing:
        raise ValueError(f"the training rows lack the input(s) {', '.join(missing)}")
    if len(train) == 0:
        raise ValueError("a reference needs at least one training row")
    features: dict[str, Any] = {}
    for name in MODEL_FEATURES:
        values = train[name].to_numpy(dtype=np.float64)
        edges = np.unique(np.quantile(values, DECILES)).tolist()
        features[name] = {"edges": edges, "proportions": proportions(bin_indices(values, edges), len(edges) + 1)}
    reference: dict[str, Any] = {"format": REFERENCE_FORMAT, "rows": int(len(train)), "features": features}
    if scores is not None and len(scores):
        scores = np.asarray(scores, dtype=np.float64)
        reference["scores"] = {
            "edges": np.linspace(0.0, 1.0, SCORE_BINS + 1).tolist(),
            "proportions": proportions(score_bins(scores), SCORE_BINS),
            "rows": int(len(scores)),
            "flagged_rate": float(np.mean(scores >= float(threshold))),
        }
    return reference


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` of two distributions over the same bins.

    ``expected``/``actual`` are proportions (or counts: each is normalised to sum to 1); bins
    below ``epsilon`` are floored at it so an empty bin does not make the index infinite.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or len(e) == 0:
        raise ValueError(f"expected and actual need the same bins, got {e.shape} and {a.shape}")
    if (e < 0).any() or (a < 0).any() or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("proportions must be non-negative and not all zero")
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def reference_of(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference in a model's metadata, or None (saved before references existed)."""
    reference = meta.get("reference")
    if not isinstance(reference, Mapping) or reference.get("format") != REFERENCE_FORMAT:
        return None
    return dict(reference)
