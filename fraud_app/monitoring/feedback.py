"""Analyst feedback into training: the labeled predictions as training rows (no Panel).

* :func:`labeled_predictions` reads the labeled predictions (one query over the partial index of
  labeled rows) into the canonical schema: ``time``, ``feature1`` ... ``feature28``, ``amount``,
  ``is_fraud`` (1 for ``fraud``, 0 for ``legitimate``), plus ``prediction_id``/``labeled_at``
  when asked. Stored predictions have no ``time`` (it is not a model input): it is NaN.
* :func:`add_feedback` appends them to a pipeline's training rows, deduplicated (by their 29
  inputs) against the whole data set and among themselves (the latest label wins). They never
  reach the test split: the split is made on the data set first.
* :func:`export_feedback` writes them to Parquet (``python -m fraud_app feedback export``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from fraud_app.data.schema import MODEL_FEATURES, TARGET, TIME
from fraud_app.storage.engine import get_engine
from fraud_app.storage.tables import predictions


def labeled_predictions(model: str | None = None, with_ids: bool = False) -> pd.DataFrame:
    """Every labeled prediction (of ``model``, or of all models), oldest label first, in the canonical schema."""
    p = predictions.c
    query = select(p.id, p.features, p.label, p.labeled_at).where(p.label.is_not(None))
    if model is not None:
        query = query.where(p.model == model)
    query = query.order_by(p.labeled_at, p.id)
    with get_engine().connect() as conn:
        rows = conn.execute(query).all()
    columns = [TIME, *MODEL_FEATURES, TARGET]
    frame = pd.DataFrame({
        TIME: np.full(len(rows), np.nan),
        **{name: np.array([float(r.features[name]) for r in rows], dtype=np.float64) for name in MODEL_FEATURES},
        TARGET: np.array([1 if r.label == "fraud" else 0 for r in rows], dtype=np.int8),
    }, columns=columns)
    if with_ids:
        frame["prediction_id"] = np.array([int(r.id) for r in rows], dtype=np.int64)
        frame["labeled_at"] = pd.to_datetime([r.labeled_at for r in rows], utc=True)
    return frame


def _row_keys(frame: pd.DataFrame) -> pd.Series:
    return pd.util.hash_pandas_object(frame[MODEL_FEATURES].astype(np.float64), index=False)


def dedupe_feedback(feedback: pd.DataFrame, dataset: pd.DataFrame) -> pd.DataFrame:
    """``feedback`` without rows whose 29 inputs are in ``dataset`` or repeat (the last one is kept)."""
    if feedback.empty:
        return feedback
    keys = _row_keys(feedback)
    keep = ~keys.duplicated(keep="last").to_numpy() & ~keys.isin(set(_row_keys(dataset).tolist())).to_numpy()
    return feedback.loc[keep]


def add_feedback(train: pd.DataFrame, feedback: pd.DataFrame | Callable[[], pd.DataFrame] | None,
                 dataset: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(``train`` plus the new labeled rows of ``feedback``, how many were added).

    ``dataset`` is the whole frame the split was made on (its test rows included), so a labeled
    transaction that is already in the data set, in any split, is never added again.
    """
    if callable(feedback):  # a loader (the Training tab's): read now, in the training thread
        feedback = feedback()
    if feedback is None or feedback.empty:
        return train, 0
    missing = [c for c in (*MODEL_FEATURES, TARGET) if c not in feedback.columns]
    if missing:
        raise ValueError(f"the feedback rows lack the column(s) {', '.join(missing)}")
    new = dedupe_feedback(feedback, dataset)
    if new.empty:
        return train, 0
    rows = pd.DataFrame({c: new[c].to_numpy() for c in train.columns if c in new.columns}, columns=train.columns)
    if TIME in train.columns:  # after every training row; no split looks at them again
        rows[TIME] = float(train[TIME].max()) if len(train) else 0.0
    rows = rows.astype(train.dtypes.to_dict())
    return pd.concat([train, rows], ignore_index=True), int(len(rows))


def export_feedback(path: str | Path, model: str | None = None) -> int:
    """Write the labeled predictions to ``path`` (Parquet, canonical schema plus ``prediction_id`` and
    ``labeled_at``), written to a temporary file and renamed, so nothing half-written is left. Returns the rows."""
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        raise ValueError(f"the export is Parquet: give a path ending in .parquet, got {str(path)!r}")
    if not path.parent.exists():
        raise ValueError(f"the folder {str(path.parent)!r} does not exist")
    frame = labeled_predictions(model, with_ids=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return int(len(frame))
