"""Fixtures for the model tests: a small seeded synthetic frame and fast model parameters."""

from __future__ import annotations

import pandas as pd
import pytest

from fraud_app.data import make_synthetic
from fraud_app.models import FraudModel, create

#: Small, fast settings per kind (the defaults are sized for the real data set).
FAST_PARAMS: dict[str, dict] = {
    "decision_tree": {},
    "lightgbm": {"n_estimators": 60, "early_stopping_rounds": 20, "n_jobs": 1},
    "random_forest": {"n_estimators": 30, "n_jobs": 1},
    "xgboost": {"n_estimators": 40, "n_jobs": 1},
    "aggregator": {"members": [
        {"kind": "lightgbm", "params": {"n_estimators": 60, "early_stopping_rounds": 20, "n_jobs": 1}},
        {"kind": "random_forest", "params": {"n_estimators": 30, "n_jobs": 1}},
    ]},
}


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    """6,000 rows, 2 % fraud, seed 7: 120 frauds, enough for the stratified splits."""
    return make_synthetic(6_000, 0.02, seed=7)


@pytest.fixture(scope="session")
def fitted(frame: pd.DataFrame) -> dict[str, FraudModel]:
    """One fitted model per kind (fitted once per test session; treat as read-only)."""
    return {kind: create(kind, **params).fit(frame, frame["is_fraud"]) for kind, params in FAST_PARAMS.items()}
