"""PSI, the training reference, the aggregates and the drift scenario (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fraud_app.data import MODEL_FEATURES, make_synthetic
from fraud_app.monitoring.reference import bin_indices, build_reference, psi, score_bins


def test_psi_matches_a_hand_computed_example():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, rel=1e-12)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.2746530722, rel=1e-9)
    assert psi([10, 30, 60], [10, 30, 60]) == 0.0
    assert psi([1, 1], [1, 3]) == pytest.approx(expected)  # counts are normalised
    # an empty bin is floored at epsilon, never infinite
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        psi([0.5, 0.5], [0.0, 0.0])


def test_bins_are_open_ended_and_scores_have_twenty_bins():
    assert bin_indices(np.array([-1e30, -5.0, 0.0, 0.5, 1.0, 99.0, 1e30]), [0.0, 1.0]).tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert score_bins(np.array([0.0, 0.049, 0.05, 0.999, 1.0])).tolist() == [0, 0, 1, 19, 19]


def test_reference_has_deciles_and_validation_scores():
    frame = make_synthetic(5000, 0.02, 1)
    scores = np.linspace(0, 1, 1000)
    reference = build_reference(frame, scores, 0.9)
    assert set(reference["features"]) == set(MODEL_FEATURES)
    f1 = reference["features"]["feature1"]
    assert len(f1["edges"]) == 9 and len(f1["proportions"]) == 10
    assert f1["proportions"] == pytest.approx([0.1] * 10, abs=0.002)
    assert sum(reference["scores"]["proportions"]) == pytest.approx(1.0)
    assert reference["scores"]["flagged_rate"] == pytest.approx(0.1, abs=0.002)
    with pytest.raises(ValueError, match="feature3"):
        build_reference(frame.drop(columns=["feature3"]), scores, 0.5)


def test_a_trained_model_carries_its_reference_and_an_old_one_says_retrain(monitored_model, fitted_tree, database):
    from fraud_app.models.store import read_metadata
    from fraud_app.monitoring.report import NO_REFERENCE, monitoring_report

    meta = read_metadata(monitored_model)
    assert meta["reference"]["rows"] == 4800  # the training rows (80 % of 6,000)
    assert meta["fit_info"]["feedback_rows"] == 0
    report = monitoring_report(monitored_model)
    assert report["reference"] is True and report["message"] is None

    fitted_tree.save("old", overwrite=True)  # saved without the pipeline: no reference, like older models
    old = monitoring_report("old")
    assert old["reference"] is False and old["message"] == NO_REFERENCE == "no reference: retrain"
    assert old["psi"] == {} and old["score_histogram"]["reference"] is None


def _store(model: str, frame, when: datetime, source: str = "api") -> list[dict]:
    from fraud_app.inference import score_array
    from fraud_app.storage import insert_predictions

    values = frame[MODEL_FEATURES].to_numpy(dtype=np.float64)
    fitted, scores, flagged = score_array(values, model)
    rows = [{"model": fitted.name, "model_version": fitted.version, "created_at": when,
             "features": dict(zip(MODEL_FEATURES, row, strict=True)), "fraud_probability": float(s),
             "is_fraud": bool(f), "threshold": fitted.threshold, "source": source}
            for row, s, f in zip(values.tolist(), scores.tolist(), flagged.tolist(), strict=True)]
    return insert_predictions(rows)


def test_drift_only_the_shifted_feature_crosses_the_threshold(monitored_model, database):
    from fraud_app.monitoring.report import monitoring_report

    live = make_synthetic(3000, 0.03, 99)
    day1 = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    # the data set's distribution, in chunks over three hours, from two sources
    for i, part in enumerate((live.iloc[:1000], live.iloc[1000:2000], live.iloc[2000:])):
        _store(monitored_model, part, day1 + timedelta(hours=i), "api" if i else "batch")
    shifted = live.copy()
    shifted["feature14"] = shifted["feature14"] + 3 * shifted["feature14"].std()
    _store(monitored_model, shifted, day2)

    before = monitoring_report(monitored_model, since=day1 - timedelta(hours=1), until=day1 + timedelta(hours=5))
    assert sum(v["count"] for v in before["volume"]) == 3000
    assert {(v["bucket"], v["source"]) for v in before["volume"]} == {
        ("2026-03-01T10:00:00Z", "batch"), ("2026-03-01T11:00:00Z", "api"), ("2026-03-01T12:00:00Z", "api")}
    assert set(before["psi"]) == set(MODEL_FEATURES)
    assert max(before["psi"].values()) < 0.05
    assert [a for a in before["alerts"] if a["kind"] == "psi"] == []
    assert before["score_histogram"]["count"] == 3000
    assert sum(before["score_histogram"]["live"]) == pytest.approx(1.0)

    after = monitoring_report(monitored_model, since=day2 - timedelta(hours=1), until=day2 + timedelta(hours=1))
    psi_alerts = [a for a in after["alerts"] if a["kind"] == "psi"]
    assert [a["feature"] for a in psi_alerts] == ["feature14"]
    assert after["psi"]["feature14"] > 0.25 > max(v for k, v in after["psi"].items() if k != "feature14")
    assert "feature14" in psi_alerts[0]["message"] and psi_alerts[0]["threshold"] == 0.25

    both = monitoring_report(monitored_model, since=day1 - timedelta(hours=1), until=day2 + timedelta(hours=1),
                             bucket="day")
    assert [(v["bucket"], v["source"], v["count"]) for v in both["volume"]] == [
        ("2026-03-01T00:00:00Z", "api", 2000), ("2026-03-01T00:00:00Z", "batch", 1000),
        ("2026-03-02T00:00:00Z", "api", 3000)]
    assert both["labels"] == {"fraud": 0, "legitimate": 0, "unlabeled": 6000}


def test_flagged_rate_and_precision_alerts(monitored_model, database):
    from fraud_app.monitoring.report import Thresholds, monitoring_report, review_queue
    from fraud_app.storage import set_label

    live = make_synthetic(400, 0.4, 3)  # 40 % frauds: far more flagged than at validation
    when = datetime.now(UTC) - timedelta(hours=1)
    rows = _store(monitored_model, live, when)
    report = monitoring_report(monitored_model)
    kinds = [a["kind"] for a in report["alerts"]]
    assert "flagged_rate" in kinds
    flagged_alert = next(a for a in report["alerts"] if a["kind"] == "flagged_rate")
    assert flagged_alert["value"] > flagged_alert["threshold"]

    queue = review_queue(monitored_model, limit=15)
    probabilities = [r["fraud_probability"] for r in queue]
    assert probabilities == sorted(probabilities, reverse=True) and len(queue) == 15
    flagged_ids = [r["id"] for r in rows if r["is_fraud"]][:12]
    for i, prediction_id in enumerate(flagged_ids):
        set_label(prediction_id, "fraud" if i < 3 else "legitimate", "test")
    report = monitoring_report(monitored_model, thresholds=Thresholds(min_labels=10))
    assert report["labels"]["fraud"] == 3 and report["labels"]["legitimate"] == 9
    assert report["labels"]["unlabeled"] == 400 - 12
    assert report["realized"]["precision"] == pytest.approx(3 / 12)
    assert report["realized"]["recall"] == 1.0
    alert = next(a for a in report["alerts"] if a["kind"] == "precision")
    assert alert["value"] == pytest.approx(0.25) and alert["threshold"] == 0.5
    assert all(r["id"] not in flagged_ids for r in review_queue(monitored_model, limit=50))


def test_report_rejects_bad_requests(monitored_model, database):
    from fraud_app.monitoring.report import MonitoringError, monitoring_report, parse_time

    with pytest.raises(MonitoringError, match="bucket"):
        monitoring_report(monitored_model, bucket="week")
    with pytest.raises(MonitoringError, match="no saved model named 'nope'") as info:
        monitoring_report("nope")
    assert info.value.status == 404
    with pytest.raises(MonitoringError, match="before until"):
        monitoring_report(monitored_model, since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(MonitoringError, match="ISO 8601"):
        parse_time("yesterday", "since")
    assert parse_time("2026-01-01T00:00:00Z", "since") == datetime(2026, 1, 1, tzinfo=UTC)
