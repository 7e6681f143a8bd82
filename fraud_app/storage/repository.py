"""Repository functions: everything the app reads from or writes to the database."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, insert, select, text, update

from fraud_app.data import MODEL_FEATURES
from fraud_app.monitoring.aggregates import Counts, count_rows, count_scored
from fraud_app.monitoring.aggregates import write_counts as record_monitoring
from fraud_app.storage.engine import get_engine
from fraud_app.storage.tables import LABELS, SOURCES, predictions, training_runs
from fraud_app.storage.writer import (  # noqa: F401 - re-exported: the write path's errors and helpers
    DatabaseBusyError,
    DatabaseUnavailableError,
    GroupWriter,
    ScoredRows,
    bind_rows,
    bind_scored,
    close_writers,
    is_busy_error,
    is_transient_error,
    write_wait_seconds,
    writer_of,
)

log = logging.getLogger(__name__)

#: Columns of a stored prediction, in the order the API shows them.
PREDICTION_FIELDS = ("id", "created_at", "model", "model_version", "fraud_probability", "is_fraud",
                     "threshold", "source", "features", "label", "labeled_at", "labeled_by")
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
        "label": row.get("label"),
        "labeled_at": None if row.get("labeled_at") is None else _iso(row["labeled_at"]),
        "labeled_by": row.get("labeled_by"),
    }


def probe_database() -> None:
    """Run a trivial query (raises when the database cannot be reached)."""
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


def _record(conn: Connection, counts: Counts) -> None:
    # ``record_monitoring`` is looked up at each write (a benchmark replaces it to time writes without it)
    record_monitoring(conn, counts)


def _writer() -> GroupWriter:
    return writer_of(get_engine(), _record)


def insert_predictions(rows: Sequence[Mapping[str, Any]], deadline: float | None = None) -> list[dict[str, Any]]:
    """Insert prediction rows in ONE transaction (all or none) and return them as stored.

    Each row needs ``model``, ``model_version``, ``features`` (dict), ``fraud_probability``,
    ``is_fraud``, ``threshold`` and ``source``; ``created_at`` defaults to now (UTC).
    Concurrent calls may share a transaction (group commit) but each call's rows are
    saved all together or not at all. The call waits for database locks (and for this process's
    other writes) until ``deadline`` (a ``time.monotonic()`` value; default: now plus
    ``FRAUD_APP_DB_BUSY_TIMEOUT``), then raises :class:`DatabaseBusyError`, having written nothing.
    """
    if not rows:
        return []
    now = utcnow()
    values = []
    for row in rows:
        source = row["source"]
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        probability = float(row["fraud_probability"])
        if not 0.0 <= probability <= 1.0:  # checked here, so that no row can fail a whole group commit
            raise ValueError(f"fraud_probability must lie in [0, 1], got {probability!r}")
        if not isinstance(row["features"], Mapping) or not row["model"]:
            raise ValueError("a prediction row needs a model name and its features as a mapping")
        values.append({
            "created_at": row.get("created_at") or now,
            "model": row["model"],
            "model_version": row.get("model_version"),
            "features": row["features"],
            "fraud_probability": probability,
            "is_fraud": bool(row["is_fraud"]),
            "threshold": float(row["threshold"]),
            "source": source,
        })
    counts = count_rows(values)  # the monitoring increments, counted before the write transaction
    writer = _writer()
    ids = writer.write(bind_rows(writer.engine.dialect, values), counts, deadline)
    stamps: dict[datetime, str] = {}
    out = []
    for value, id_ in zip(values, ids, strict=True):
        created = value["created_at"]
        stamp = stamps.get(created)
        if stamp is None:
            stamp = stamps[created] = _iso(created)
        out.append({"id": id_, "created_at": stamp, "model": value["model"], "model_version": value["model_version"],
                    "fraud_probability": value["fraud_probability"], "is_fraud": value["is_fraud"],
                    "threshold": value["threshold"], "source": value["source"], "features": dict(value["features"]),
                    "label": None, "labeled_at": None, "labeled_by": None})  # a new row has no analyst label yet
    return out


@dataclass
class StoredRows:
    """Scored rows as stored (:func:`insert_scored`): their ids and time, with the rows they were made of."""

    scored: ScoredRows
    ids: list[int]
    #: ISO 8601 UTC, as every stored row shows it.
    created_at: str

    def created(self) -> list[dict[str, Any]]:
        """The rows as ``POST /api/predictions`` answers them: every field but the inputs and the label."""
        part, at = self.scored, self.created_at
        model, version, threshold, source = part.model, part.model_version, part.threshold, part.source
        return [{"id": i, "created_at": at, "model": model, "model_version": version, "fraud_probability": p,
                 "is_fraud": f, "threshold": threshold, "source": source}
                for i, p, f in zip(self.ids, part.scores.tolist(), part.flagged.tolist(), strict=True)]

    def rows(self) -> list[dict[str, Any]]:
        """The rows as :func:`insert_predictions` returns them (with their inputs)."""
        names = MODEL_FEATURES
        return [{**row, "features": dict(zip(names, features, strict=True)), "label": None, "labeled_at": None,
                 "labeled_by": None} for row, features in zip(self.created(), self.scored.features.tolist(), strict=True)]


def insert_scored(parts: Sequence[ScoredRows], deadline: float | None = None,
                  created_at: datetime | None = None) -> list[StoredRows]:
    """Insert scored rows, columnar, in ONE transaction (all or none): the REST API's write path.

    The same rows and monitoring increments as :func:`insert_predictions` would store for them, without a
    dict per row: rows are bound for the driver straight from the arrays and the aggregates are counted
    with NumPy. All rows are written at the same ``created_at`` (timezone-aware; default now). Returns one
    :class:`StoredRows` per part, in order. Raises like :func:`insert_predictions`.
    """
    for part in parts:
        if part.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {part.source!r}")
        if not part.model:
            raise ValueError("scored rows need a model name")
        if part.features.shape != (len(part), len(MODEL_FEATURES)):
            raise ValueError(f"scored rows need one row of {len(MODEL_FEATURES)} inputs per score, got "
                             f"{part.features.shape} for {len(part)} scores")
        if len(part) and not (part.scores.min() >= 0.0 and part.scores.max() <= 1.0):  # also catches NaN
            raise ValueError("fraud_probability must lie in [0, 1]")
    if created_at is not None and created_at.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware UTC timestamp")
    now = created_at or utcnow()
    counts = Counts()
    # counted once per model version and source (a micro-batch's requests mostly share both)
    groups: dict[tuple[str, str | None, str], list[ScoredRows]] = {}
    for part in parts:
        groups.setdefault((part.model, part.model_version, part.source), []).append(part)
    for (model, version, source), same in groups.items():
        if len(same) == 1:
            scores, flagged, features = same[0].scores, same[0].flagged, same[0].features
        else:
            scores = np.concatenate([part.scores for part in same])
            flagged = np.concatenate([part.flagged for part in same])
            features = np.concatenate([part.features for part in same])
        count_scored(model, version, now, source, scores, flagged, features, counts)
    writer = _writer()
    dialect = writer.engine.dialect
    params = [row for part in parts for row in bind_scored(dialect, part, now)]
    ids = writer.write(params, counts, deadline) if params else []
    stamp, out, start = _iso(now), [], 0
    for part in parts:
        out.append(StoredRows(part, ids[start:start + len(part)], stamp))
        start += len(part)
    return out


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


def set_label(prediction_id: int, label: str | None, labeled_by: str | None = None) -> dict[str, Any] | None:
    """Set (or clear, with None) the analyst's label of one prediction; return the updated row, or None
    when there is no such prediction. One short transaction (``UPDATE ... WHERE id``).

    Raises ValueError for a label other than ``"fraud"``, ``"legitimate"`` or None.
    """
    if label is not None and label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)} or null, got {label!r}")
    if labeled_by is not None:
        labeled_by = str(labeled_by)[:128]
    values = {"label": label, "labeled_at": utcnow() if label is not None else None,
              "labeled_by": labeled_by if label is not None else None}
    with get_engine().begin() as conn:
        row = conn.execute(update(predictions).where(predictions.c.id == int(prediction_id)).values(**values)
                           .returning(*predictions.c)).mappings().first()
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
