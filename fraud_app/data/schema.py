"""The canonical schema of a transactions frame, and its validation."""

from __future__ import annotations

import numpy as np
import pandas as pd

PCA_FEATURES: list[str] = [f"feature{i}" for i in range(1, 29)]
#: The 29 model inputs, in the order every model sees them.
MODEL_FEATURES: list[str] = [*PCA_FEATURES, "amount"]
TARGET = "is_fraud"
TIME = "time"
#: Every column of a transactions frame, in order.
COLUMNS: list[str] = [TIME, *MODEL_FEATURES, TARGET]

#: Kaggle/OpenML column names mapped to ours.
KAGGLE_COLUMNS: dict[str, str] = {
    "Time": TIME,
    **{f"V{i}": f"feature{i}" for i in range(1, 29)},
    "Amount": "amount",
    "Class": TARGET,
}


class SchemaError(ValueError):
    """A transactions frame does not follow the schema; the message names the problem."""


def to_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename Kaggle columns (``Time``, ``V1``..``V28``, ``Amount``, ``Class``) to ours.

    OpenML quotes the class as strings ``'0'``/``'1'``; those become integers.
    """
    renamed = frame.rename(columns=KAGGLE_COLUMNS)
    if TARGET in renamed and renamed[TARGET].dtype == object:
        stripped = renamed[TARGET].astype(str).str.strip().str.strip("'\"")
        if stripped.isin(["0", "1"]).all():
            renamed[TARGET] = stripped.astype("int8")
    return renamed


def validate_transactions(frame: pd.DataFrame, *, require_target: bool = True) -> pd.DataFrame:
    """Check a frame against the schema and return it with canonical dtypes and column order.

    Raises
    ------
    SchemaError
        naming the first problem found: a missing column, an unknown column, a
        non-numeric column, NaN or inf values, or labels other than 0/1.
    """
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    expected = COLUMNS if require_target else [c for c in COLUMNS if c != TARGET]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise SchemaError(f"missing column(s): {', '.join(missing)}")
    allowed = set(COLUMNS)
    unknown = [str(c) for c in frame.columns if c not in allowed]
    if unknown:
        raise SchemaError(f"unknown column(s): {', '.join(unknown)}")
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise SchemaError(f"duplicated column(s): {', '.join(map(str, duplicated))}")
    for column in expected:
        dtype = frame[column].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            raise SchemaError(f"column {column!r} has dtype {dtype}, expected a numeric dtype")
    values = frame[expected].to_numpy(dtype="float64", copy=False)
    bad = ~np.isfinite(values)
    if bad.any():
        col_idx = np.flatnonzero(bad.any(axis=0))
        names = [expected[i] for i in col_idx]
        rows = int(bad.any(axis=1).sum())
        raise SchemaError(f"NaN or inf values in column(s) {', '.join(names)} ({rows} row(s))")
    out = frame[expected].copy()
    for column in expected:
        if column != TARGET:
            out[column] = out[column].astype("float64")
    if require_target:
        labels = set(np.unique(out[TARGET].to_numpy()).tolist())
        if not labels <= {0, 1}:
            others = sorted(labels - {0, 1})[:5]
            raise SchemaError(f"column 'is_fraud' must hold only 0 and 1, found {others}")
        out[TARGET] = out[TARGET].astype("int8")
    return out.reset_index(drop=True)
