"""The monitoring aggregates are exact however the rows arrive (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, select

from fraud_app.data import MODEL_FEATURES, make_synthetic
from fraud_app.monitoring.reference import SCORE_FEATURE, bin_indices, score_bins


def _tables() -> tuple[list[tuple], list[tuple]]:
    from fraud_app.storage import get_engine
    from fraud_app.storage.tables import monitoring_bins, monitoring_volume

    with get_engine().connect() as conn:
        return (sorted(tuple(r) for r in conn.execute(select(monitoring_volume))),
                sorted(tuple(r) for r in conn.execute(select(monitoring_bins))))


def _clear() -> None:
    from fraud_app.storage import get_engine, predictions
    from fraud_app.storage.tables import monitoring_bins, monitoring_volume

    with get_engine().begin() as conn:
        for table in (predictions, monitoring_volume, monitoring_bins):
            conn.execute(delete(table))


def test_a_batch_adds_the_same_aggregates_as_its_rows_written_one_by_one(monitored_model, database):
    from fraud_app.inference import score_array
    from fraud_app.monitoring.aggregates import model_reference
    from fraud_app.storage import ScoredRows, insert_predictions, insert_scored

    values = make_synthetic(160, 0.15, 11)[MODEL_FEATURES].to_numpy(dtype=np.float64, copy=True)
    reference = model_reference(monitored_model, score_array(values[:1], monitored_model)[0].version)
    for j, name in enumerate(MODEL_FEATURES):  # a few inputs exactly on a cut point (bin i holds e[i-1] <= x < e[i])
        edges = reference["features"][name]["edges"]
        values[:12:2, j] = [edges[i % len(edges)] for i in range(6)]
    fitted, scores, flagged = score_array(values, monitored_model)
    assert 0 < flagged.sum() < len(flagged), "both flagged and clear rows are counted"
    first = datetime(2026, 5, 1, 9, 59, 59, tzinfo=UTC)
    second = first + timedelta(seconds=2)  # the next hour
    halves = [(slice(0, 80), first, "api"), (slice(80, 160), second, "batch")]
    rows = [{"model": fitted.name, "model_version": fitted.version, "created_at": at, "features": dict(
        zip(MODEL_FEATURES, values[i].tolist(), strict=True)), "fraud_probability": float(scores[i]),
        "is_fraud": bool(flagged[i]), "threshold": fitted.threshold, "source": source}
        for part, at, source in halves for i in range(160)[part]]

    # the REST path: columnar, one transaction per created_at
    for part, at, source in halves:
        insert_scored([ScoredRows(fitted.name, fitted.version, fitted.threshold, source, values[part], scores[part])],
                      created_at=at)
    columnar = _tables()
    _clear()
    insert_predictions(rows)  # every other writer: dicts, in one transaction
    in_one = _tables()
    _clear()
    for row in rows:  # one by one: a transaction each
        insert_predictions([row])
    one_by_one = _tables()

    assert columnar == in_one == one_by_one
    volume, bins = one_by_one
    assert [(r[2].hour, r[3], r[4], r[5]) for r in volume] == [
        (9, "api", 80, int(flagged[:80].sum())), (10, "batch", 80, int(flagged[80:].sum()))]
    # and they are the bins the reference defines (np.searchsorted on its cut points), counted by hand
    for part, at, _ in halves:
        hour = at.replace(minute=0, second=0)
        stored = {(r[3], r[4]): r[5] for r in bins if r[2] == hour}
        expected = {(SCORE_FEATURE, b): n for b, n in enumerate(np.bincount(score_bins(scores[part]))) if n}
        for j, name in enumerate(MODEL_FEATURES):
            counted = np.bincount(bin_indices(values[part, j], reference["features"][name]["edges"]))
            expected.update({(name, b): int(n) for b, n in enumerate(counted) if n})
        assert stored == expected
