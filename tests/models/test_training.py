"""TrainingPipeline: split, evaluation, JSON, progress order, cancellation, saving; metrics helpers."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from fraud_app.data import SchemaError
from fraud_app.models import ModelExistsError, create, load_model, model_exists
from fraud_app.models.base import stratified_split
from fraud_app.training import (
    ProgressEvent,
    TrainingCancelled,
    TrainingPipeline,
    TrainingResult,
    cheapest_threshold,
    metrics_at_threshold,
    pr_curve,
)
from tests.models.conftest import FAST_PARAMS

LGB = FAST_PARAMS["lightgbm"]


@pytest.fixture(scope="module")
def lgb_result(frame) -> tuple[TrainingResult, list[ProgressEvent]]:
    events: list[ProgressEvent] = []
    # The validation protocol here (its stages and threshold are checked below); the default is "oof".
    pipeline = TrainingPipeline("lightgbm", LGB, seed=2, threshold_method="validation")
    result = pipeline.run(frame, progress=events.append)
    return result, events


def test_the_pipeline_defaults_to_out_of_fold_thresholds():
    assert TrainingPipeline("decision_tree").threshold_method == "oof"


def test_result_metrics_and_stratified_split(lgb_result, frame):
    result, _ = lgb_result
    m = result.metrics
    for key in ("f1", "precision", "recall", "pr_auc", "roc_auc", "threshold", "confusion_matrix", "n_test",
                "n_test_fraud"):
        assert key in m
    frauds = int(frame["is_fraud"].sum())
    assert m["n_test"] == 1200 and m["n_test_fraud"] == round(0.2 * frauds)
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    assert tn + fp + fn + tp == m["n_test"] and fn + tp == m["n_test_fraud"]
    assert m["precision"] == pytest.approx(tp / (tp + fp))
    assert m["recall"] == pytest.approx(tp / (tp + fn))
    assert m["f1"] > 0.8 and m["pr_auc"] > 0.8
    assert result.threshold == result.model.threshold
    assert len(result.y_test) == len(result.test_scores) == 1200
    # The held-out scores are the model's scores for the seed-2 test rows.
    _, test = stratified_split(len(frame), frame["is_fraud"].to_numpy(), 0.2, 2)
    np.testing.assert_allclose(result.test_scores, result.model.predict_proba(frame.iloc[test]))


def test_result_is_json_serialisable(lgb_result):
    result, _ = lgb_result
    data = json.loads(result.to_json())
    assert data["kind"] == "lightgbm" and data["seed"] == 2 and data["saved"] is False
    assert "y_test" not in data and "model" not in data
    full = json.loads(result.to_json(include_scores=True))
    assert len(full["y_test"]) == len(full["test_scores"]) == 1200
    curve = data["pr_curve"]
    assert 2 <= len(curve["precision"]) <= 500
    assert len(curve["precision"]) == len(curve["recall"]) == len(curve["thresholds"])


def test_threshold_never_sees_the_test_split(lgb_result, frame):
    """The pipeline's model is exactly a model fitted on the training rows alone."""
    result, _ = lgb_result
    y = frame["is_fraud"].to_numpy()
    train, _ = stratified_split(len(frame), y, 0.2, 2)
    alone = create("lightgbm", **LGB, random_state=2).fit(frame.iloc[train], y[train], threshold_method="validation")
    assert alone.threshold == result.threshold


def test_progress_arrives_in_order_with_lightgbm_iterations(lgb_result):
    _, events = lgb_result
    stages = [e.stage for e in events]
    order = ["prepare", "split", "validation_split", "fit", "threshold", "fitted", "evaluate", "done"]
    seen = list(dict.fromkeys(stages))
    assert seen == order
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    rounds = [e.iteration for e in events if e.stage == "fit" and e.iteration]
    assert rounds[: len(rounds) - 1] == list(range(1, len(rounds)))  # 1, 2, 3, ... as they run
    assert all(e.total == LGB["n_estimators"] for e in events if e.stage == "fit")
    assert all(isinstance(e.message, str) and e.message for e in events)


def test_cancel_during_lightgbm_iterations_stops_and_saves_nothing(frame):
    cancel = threading.Event()
    rounds: list[int] = []

    def progress(event: ProgressEvent) -> None:
        if event.stage == "fit" and event.iteration:
            rounds.append(event.iteration)
            if event.iteration == 5:
                cancel.set()

    pipeline = TrainingPipeline("lightgbm", {**LGB, "early_stopping_rounds": 0}, name="cancelled", save=True)
    with pytest.raises(TrainingCancelled):
        pipeline.run(frame, progress=progress, cancel=cancel)
    assert rounds == [1, 2, 3, 4, 5]
    assert not model_exists("cancelled")


def test_cancel_between_stages_with_a_callable(frame):
    stages: list[str] = []

    def progress(event: ProgressEvent) -> None:
        stages.append(event.stage)

    with pytest.raises(TrainingCancelled):
        TrainingPipeline("decision_tree").run(frame, progress=progress, cancel=lambda: "evaluate" in stages)
    assert stages[-1] == "evaluate"


def test_cancel_stops_the_random_forest_between_chunks(frame):
    cancel = threading.Event()
    grown: list[int] = []

    def progress(event: ProgressEvent) -> None:
        if event.stage == "fit" and event.iteration:
            grown.append(event.iteration)
            cancel.set()

    with pytest.raises(TrainingCancelled):
        TrainingPipeline("random_forest", {"n_estimators": 100, "n_jobs": 1}).run(frame, progress, cancel)
    assert grown == [25]


def test_save_and_name_checks(frame):
    result = TrainingPipeline("decision_tree", name="piped", save=True, seed=1).run(frame)
    assert result.saved and result.name == "piped"
    loaded = load_model("piped")
    assert loaded.metrics["f1"] == pytest.approx(result.metrics["f1"])
    assert loaded.data_fingerprint == result.data_fingerprint == frame.attrs.get("fingerprint", loaded.data_fingerprint)
    with pytest.raises(ModelExistsError):  # fails before any training
        TrainingPipeline("decision_tree", name="piped", save=True)
    TrainingPipeline("decision_tree", name="piped", save=True, overwrite=True).run(frame)
    with pytest.raises(ValueError, match="name"):
        TrainingPipeline("decision_tree", save=True)
    with pytest.raises(ValueError, match="invalid model name"):
        TrainingPipeline("decision_tree", name="../up", save=True)
    with pytest.raises(ValueError, match="unknown model kind"):
        TrainingPipeline("svm")
    with pytest.raises(SchemaError, match="is_fraud"):
        TrainingPipeline("decision_tree").run(frame.drop(columns=["is_fraud"]))
    with pytest.raises(SchemaError, match="feature5"):
        TrainingPipeline("decision_tree").run(frame.drop(columns=["feature5"]))


def test_metrics_at_threshold_known_values():
    y = [0, 0, 1, 1, 1, 0]
    s = [0.1, 0.6, 0.7, 0.4, 0.9, 0.2]
    m = metrics_at_threshold(y, s, 0.5)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    none = metrics_at_threshold(y, s, 0.95)
    assert none["precision"] == 0.0 and none["f1"] == 0.0


def test_cheapest_threshold_weighs_the_two_errors():
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])
    # Missing a fraud is very expensive: flag everything down to the lowest fraud (0.5).
    t = cheapest_threshold(y, s, cost_fn=100, cost_fp=1)
    assert 0.4 < t <= 0.5
    # False alarms are very expensive: flag only the frauds above every legitimate score.
    t = cheapest_threshold(y, s, cost_fn=1, cost_fp=100)
    assert 0.6 < t <= 0.7
    with pytest.raises(ValueError):
        cheapest_threshold(y, s, -1, 1)


def test_pr_curve_is_downsampled_and_keeps_its_ends():
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.3).astype(int)
    s = np.clip(y * 0.3 + rng.random(20_000) * 0.7, 0, 1)
    curve = pr_curve(y, s, max_points=100)
    assert len(curve["recall"]) <= 100
    assert curve["recall"][0] == 1.0 and curve["recall"][-1] == 0.0
