"""How the data is split into training and test rows: stratified random, or time-ordered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_app.data import TARGET
from fraud_app.models.base import stratified_split

#: The evaluation splits: the assignment's stratified random split, or train-on-earlier / test-on-later.
SPLITS: tuple[str, ...] = ("random", "time")
TIME_COLUMN = "time"


def time_split(times: np.ndarray, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): the latest ``test_size`` share of rows by time is the test part.

    Rows whose time equals the first test time all go to the test part, so every training
    transaction is strictly earlier than every test transaction.
    """
    times = np.asarray(times, dtype=np.float64)
    n = len(times)
    n_test = int(round(n * float(test_size)))
    if not 0 < n_test < n:
        raise ValueError(f"test_size {test_size!r} leaves no training or no test rows for {n} rows")
    order = np.argsort(times, kind="mergesort")
    boundary = times[order[n - n_test]]
    test = np.flatnonzero(times >= boundary)
    train = np.flatnonzero(times < boundary)
    if len(train) == 0:
        raise ValueError("every transaction has the same time: a time-ordered split is impossible")
    return train, test


def train_test_indices(frame: pd.DataFrame, split: str, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row positions (train, test) of ``frame`` for ``split``.

    ``"random"``: stratified on the label and seeded by ``seed`` (the assignment's protocol).
    ``"time"``: the earliest rows train, the latest ``test_size`` test (``seed`` is not used).
    """
    if split == "random":
        return stratified_split(len(frame), frame[TARGET].to_numpy(), test_size, seed)
    if split == "time":
        if TIME_COLUMN not in frame.columns:
            from fraud_app.data import SchemaError

            raise SchemaError(f"a time-ordered split needs the {TIME_COLUMN!r} column")
        return time_split(frame[TIME_COLUMN].to_numpy(), test_size)
    raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


__all__ = ["SPLITS", "TIME_COLUMN", "time_split", "train_test_indices"]
