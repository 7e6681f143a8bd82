"""A small, seeded synthetic data set with the real schema, for tests and the demo mode."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_app.data.schema import COLUMNS, PCA_FEATURES, TARGET

#: Features whose class means differ, mimicking the real data's most separating components.
_SHIFTED = {"feature4": 2.5, "feature10": -2.5, "feature11": 2.2, "feature12": -2.8,
            "feature14": -3.2, "feature17": -2.6, "feature3": -2.0, "feature7": -1.8}


def make_synthetic(n_rows: int = 20_000, fraud_rate: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Class-conditional Gaussians with the canonical columns.

    Parameters
    ----------
    n_rows : total number of transactions (at least 100).
    fraud_rate : share of frauds, in (0, 0.5); the count is ``round(n_rows * fraud_rate)``, at least 2.
    seed : seed of the generator; the same seed gives the same frame.
    """
    if int(n_rows) != n_rows or n_rows < 100:
        raise ValueError(f"n_rows must be an integer of at least 100, got {n_rows!r}")
    if not 0.0 < fraud_rate < 0.5:
        raise ValueError(f"fraud_rate must be in (0, 0.5), got {fraud_rate!r}")
    n_rows = int(n_rows)
    rng = np.random.default_rng(seed)
    n_fraud = max(2, int(round(n_rows * fraud_rate)))
    labels = np.zeros(n_rows, dtype="int8")
    labels[rng.choice(n_rows, size=n_fraud, replace=False)] = 1
    return pd.DataFrame(synthetic_columns(rng, labels, 0.0, 172_792.0), columns=COLUMNS)


def synthetic_columns(rng: np.random.Generator, labels: np.ndarray, t0: float, t1: float,
                      dtype: str = "float64") -> dict[str, np.ndarray]:
    """The columns of ``len(labels)`` transactions with times sorted in ``[t0, t1)`` (one generator, in order)."""
    n_rows = len(labels)
    fraud = labels == 1
    n_fraud = int(fraud.sum())
    data: dict[str, np.ndarray] = {}
    data["time"] = np.sort(rng.uniform(t0, t1, n_rows)).round(0)
    for i, name in enumerate(PCA_FEATURES):
        scale = 2.0 / (1 + i / 10)
        values = rng.normal(0.0, scale, n_rows)
        shift = _SHIFTED.get(name, 0.0)
        values[fraud] = rng.normal(shift * scale, scale * 1.6, n_fraud)
        data[name] = values.astype(dtype, copy=False)
    amount = rng.lognormal(3.0, 1.3, n_rows)
    amount[fraud] = rng.lognormal(3.6, 1.8, n_fraud)
    data["amount"] = np.minimum(amount, 25_000).round(2).astype(dtype, copy=False)
    data[TARGET] = labels
    return data
