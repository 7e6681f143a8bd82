"""Monitoring aggregates written in the same transaction as the predictions they count.

:func:`record` is called once per insert transaction by the storage's writer. It adds, per
model version and hour, the volume and flagged count per source, the score histogram, and each
input's count per bin of the model's training reference (``monitoring_volume`` and
``monitoring_bins``, upserted with ``count = count + new``). ``GET /api/monitoring`` then reads a
few thousand aggregate rows instead of scanning and parsing every stored prediction.

Keys are upserted in sorted order, so concurrent PostgreSQL transactions take the row locks in
the same order (no deadlock). A model with no reference (saved before references, or deleted)
gets volume and scores only.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection

from fraud_app.data import MODEL_FEATURES
from fraud_app.monitoring.reference import SCORE_FEATURE, reference_of, score_bins

log = logging.getLogger(__name__)

_cache_lock = threading.Lock()
_references: dict[tuple[str, str], dict[str, Any] | None] = {}
_MAX_CACHED = 256


def model_reference(name: str, version: str | None) -> dict[str, Any] | None:
    """The training reference of saved model ``name`` at ``version`` (cached), or None."""
    key = (name, version or "")
    if key in _references:
        return _references[key]
    from fraud_app.models.errors import ModelLoadError, ModelNotFoundError
    from fraud_app.models.store import read_metadata

    try:
        meta = read_metadata(name)
    except (ModelLoadError, ModelNotFoundError, OSError, ValueError) as exc:
        log.debug("no reference for %r: %s", name, exc)
        meta = {}
    reference = reference_of(meta) if (meta.get("version") or "") == (version or "") else None
    with _cache_lock:
        if len(_references) >= _MAX_CACHED:
            _references.clear()
        _references[key] = reference
    return reference


def warm_references(values: Sequence[Mapping[str, Any]]) -> None:
    """Look up (and cache) the references of the models of ``values`` BEFORE the write transaction, so
    :func:`record` never reads a file (or imports the model stack) while holding the database's write lock."""
    for key in {(row["model"], row.get("model_version") or "") for row in values}:
        if key not in _references:
            model_reference(key[0], key[1] or None)


def clear_reference_cache() -> None:
    """Forget the cached references (tests)."""
    with _cache_lock:
        _references.clear()


def hour_of(moment: datetime) -> datetime:
    """``moment`` truncated to its UTC hour."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


#: The upsert statements, built once per dialect and table (building one costs more than running it).
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _upsert(conn: Connection, table, keys: Sequence[str], rows: list[dict[str, Any]],  # noqa: ANN001
            counters: Sequence[str]) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    statement = _STATEMENTS.get((dialect, table.name))
    if statement is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise RuntimeError(f"monitoring aggregates need SQLite or PostgreSQL, not {dialect}")
        statement = insert(table)
        statement = _STATEMENTS[(dialect, table.name)] = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + statement.excluded[name] for name in counters})
    conn.execute(statement, rows)


#: A reference's inner cut points as float64 arrays, by ``id`` of the reference (kept with it).
_EDGES: dict[int, tuple[dict[str, Any], list[np.ndarray]]] = {}


def _edges(reference: dict[str, Any]) -> list[np.ndarray]:
    """The reference's inner cut points as float64 arrays, in ``MODEL_FEATURES`` order, converted once."""
    cached = _EDGES.get(id(reference))
    if cached is None or cached[0] is not reference:
        if len(_EDGES) > 64:
            _EDGES.clear()
        cached = _EDGES[id(reference)] = (reference, [
            np.asarray(reference["features"][name]["edges"], dtype=np.float64) for name in MODEL_FEATURES])
    return cached[1]


def record(conn: Connection, values: Sequence[Mapping[str, Any]]) -> None:
    """Add the prediction rows ``values`` (as inserted) to the aggregates, on ``conn``'s transaction."""
    if not values:
        return
    # imported here: fraud_app.storage's writer imports this module while fraud_app.storage initialises
    from fraud_app.storage.tables import monitoring_bins, monitoring_volume

    volume: Counter = Counter()
    flagged: Counter = Counter()
    bins: Counter = Counter()
    groups: dict[tuple[str, str, datetime], list[int]] = {}
    for i, row in enumerate(values):
        version = row.get("model_version") or ""
        hour = hour_of(row["created_at"])
        key = (row["model"], version, hour, row["source"])
        volume[key] += 1
        flagged[key] += bool(row["is_fraud"])
        groups.setdefault((row["model"], version, hour), []).append(i)
    for (model, version, hour), rows in groups.items():
        # Counting with a Counter over plain ints: np.unique sorts, which costs more for the
        # one to a few dozen rows a group commit usually carries.
        probabilities = np.fromiter((float(values[i]["fraud_probability"]) for i in rows), np.float64, len(rows))
        for b, n in Counter(score_bins(probabilities).tolist()).items():
            bins[(model, version, hour, SCORE_FEATURE, b)] += n
        reference = model_reference(model, version or None)
        if reference is None:
            continue
        matrix = np.array([[float(values[i]["features"][name]) for name in MODEL_FEATURES] for i in rows],
                          dtype=np.float64)
        for j, (name, edges) in enumerate(zip(MODEL_FEATURES, _edges(reference), strict=True)):
            for b, n in Counter(np.searchsorted(edges, matrix[:, j], side="right").tolist()).items():
                bins[(model, version, hour, name, b)] += n
    _upsert(conn, monitoring_volume, ("model", "model_version", "hour", "source"),
            [{"model": k[0], "model_version": k[1], "hour": k[2], "source": k[3], "count": n, "flagged": flagged[k]}
             for k, n in sorted(volume.items())], ("count", "flagged"))
    _upsert(conn, monitoring_bins, ("model", "model_version", "hour", "feature", "bin"),
            [{"model": k[0], "model_version": k[1], "hour": k[2], "feature": k[3], "bin": k[4], "count": n}
             for k, n in sorted(bins.items())], ("count",))
