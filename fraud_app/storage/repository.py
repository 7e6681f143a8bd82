"""Repository functions: everything the app reads from or writes to the database."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select

from fraud_app.storage.engine import get_engine
from fraud_app.storage.tables import SOURCES, predictions, training_runs

#: Columns of a stored prediction, in the order the API shows them.
PREDICTION_FIELDS = ("id", "created_at", "model", "model_version", "fraud_probability", "is_fraud",
                     "threshold", "source", "features")
TRAINING_RUN_FIELDS = ("id", "created_at", "model", "kind", "params", "metrics", "saved", "duration_s")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays become Python numbers/lists, NaN/inf become None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalar or array
        return to_jsonable(value.tolist())
    if isinstance(value, datetime):
        return _iso(value) if value.tzinfo else value.isoformat()
    return json.loads(json.dumps(value, default=str))


def _prediction_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "created_at": _iso(row["created_at"]),
        "model": row["model"],
        "model_version": row["model_version"],
        "fraud_probability": float(row["fraud_probability"]),
        "is_fraud": bool(row["is_fraud"]),
        "threshold": float(row["threshold"]),
        "source": row["source"],
        "features": dict(row["features"]),
    }


def insert_predictions(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Insert prediction rows in ONE transaction (all or none) and return them as stored.

    Each row needs ``model``, ``model_version``, ``features`` (dict), ``fraud_probability``,
    ``is_fraud``, ``threshold`` and ``source``; ``created_at`` defaults to now (UTC).
    """
    if not rows:
        return []
    now = utcnow()
    values = []
    for row in rows:
        source = row["source"]
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        values.append({
            "created_at": row.get("created_at") or now,
            "model": row["model"],
            "model_version": row.get("model_version"),
            "features": row["features"],
            "fraud_probability": float(row["fraud_probability"]),
            "is_fraud": bool(row["is_fraud"]),
            "threshold": float(row["threshold"]),
            "source": source,
        })
    statement = insert(predictions).returning(predictions.c.id, sort_by_parameter_order=True)
    with get_engine().begin() as conn:
        if len(values) == 1:
            ids = [conn.execute(statement, values[0]).scalar_one()]
        else:
            ids = conn.execute(statement, values).scalars().all()
    return [_prediction_dict({**value, "id": id_}) for value, id_ in zip(values, ids, strict=True)]


def list_predictions(limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Saved predictions, newest first."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    query = select(predictions).order_by(predictions.c.id.desc()).limit(limit).offset(offset)
    with get_engine().connect() as conn:
        return [_prediction_dict(row) for row in conn.execute(query).mappings()]


def count_predictions() -> int:
    """How many predictions are stored."""
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(predictions)).scalar_one())


def get_prediction(prediction_id: int) -> dict[str, Any] | None:
    """One saved prediction, or None."""
    with get_engine().connect() as conn:
        row = conn.execute(select(predictions).where(predictions.c.id == int(prediction_id))).mappings().first()
    return None if row is None else _prediction_dict(row)


def _training_run_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "created_at": _iso(row["created_at"]),
        "model": row["model"],
        "kind": row["kind"],
        "params": row["params"],
        "metrics": row["metrics"],
        "saved": bool(row["saved"]),
        "duration_s": None if row["duration_s"] is None else float(row["duration_s"]),
    }


def record_training_run(result: Any) -> int:
    """Save one training run (a ``TrainingResult`` or its ``to_dict()``) and return its id."""
    if hasattr(result, "to_dict"):
        data = result.to_dict(include_scores=False)
    elif isinstance(result, Mapping):
        data = dict(result)
    else:
        raise TypeError(f"expected a TrainingResult or a dict, got {type(result).__name__}")
    if not data.get("kind"):
        raise ValueError("a training run needs a 'kind'")
    duration = data.get("duration_s")
    values = {
        "created_at": utcnow(),
        "model": data.get("name"),
        "kind": str(data["kind"]),
        "params": to_jsonable(data.get("params") or {}),
        "metrics": to_jsonable(data.get("metrics") or {}),
        "saved": bool(data.get("saved", False)),
        "duration_s": None if duration is None else float(duration),
    }
    with get_engine().begin() as conn:
        return int(conn.execute(insert(training_runs).returning(training_runs.c.id), values).scalar_one())


def list_training_runs(limit: int = 100) -> list[dict[str, Any]]:
    """Recorded training runs, newest first."""
    if limit < 0:
        raise ValueError("limit must be >= 0")
    query = select(training_runs).order_by(training_runs.c.id.desc()).limit(limit)
    with get_engine().connect() as conn:
        return [_training_run_dict(row) for row in conn.execute(query).mappings()]
