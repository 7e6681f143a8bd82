"""Every kind fits, predicts, has a threshold in (0, 1), explains itself and rejects bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from fraud_app.data import MODEL_FEATURES, SchemaError
from fraud_app.models import (
    HYPERPARAMETERS,
    MODEL_KINDS,
    FraudModel,
    NotFittedError,
    UnknownModelKindError,
    best_f1_threshold,
    create,
    model_kinds,
    register_kind,
)
from fraud_app.models import base as models_base
from fraud_app.models.base import VALIDATION_FRACTION, stratified_split
from tests.models.conftest import FAST_PARAMS


def test_the_five_kinds_are_registered_baseline_first():
    assert MODEL_KINDS == ("decision_tree", "lightgbm", "random_forest", "xgboost", "aggregator")
    assert set(FAST_PARAMS) == set(MODEL_KINDS)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_kind_fits_predicts_and_has_a_threshold(kind, fitted, frame):
    model = fitted[kind]
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame),)
    assert np.all((proba >= 0) & (proba <= 1))
    assert 0.0 < model.threshold < 1.0
    labels = model.predict(frame)
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (proba >= model.threshold).astype(int))
    # It learned something: far better than the 2 % a random ranking would give.
    assert average_precision_score(frame["is_fraud"], proba) > 0.5
    assert model.trained_at is not None and model.data_fingerprint


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_metadata_is_json_and_complete(kind, fitted):
    meta = json.loads(json.dumps(fitted[kind].metadata, allow_nan=False))
    for key in ("name", "kind", "params", "features", "threshold", "metrics", "trained_at",
                "data_fingerprint", "version"):
        assert key in meta
    assert meta["kind"] == kind
    assert meta["features"] == MODEL_FEATURES


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_contributions_shape_and_additivity(kind, fitted, frame):
    model = fitted[kind]
    rows = frame.iloc[[3, 50, 500, 4000]]
    contrib = model.contributions(rows)
    assert isinstance(contrib, pd.DataFrame)
    assert contrib.shape == (4, 29)
    assert list(contrib.columns) == MODEL_FEATURES
    assert list(contrib.index) == list(rows.index)
    assert np.isfinite(contrib.to_numpy()).all()
    # Probability units: the contributions add up to P(fraud) minus the model's base value.
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy() + model.expected_value(),
                               model.predict_proba(rows), atol=1e-9)


def test_contributions_point_at_the_separating_features(fitted, frame):
    """On the synthetic data only some features separate the classes; they should dominate."""
    frauds = frame[frame["is_fraud"] == 1].head(40)
    mean_abs = fitted["lightgbm"].contributions(frauds).abs().mean()
    top = set(mean_abs.sort_values(ascending=False).index[:5])
    separating = {"feature3", "feature4", "feature7", "feature10", "feature11", "feature12", "feature14",
                  "feature17"}
    assert len(top & separating) >= 4


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_fit_rejects_a_frame_lacking_an_input(kind, frame):
    model = create(kind, **FAST_PARAMS[kind])
    with pytest.raises(SchemaError, match="feature13"):
        model.fit(frame.drop(columns=["feature13"]), frame["is_fraud"])
    with pytest.raises(SchemaError, match="amount"):
        model.fit(frame.drop(columns=["amount"]), frame["is_fraud"])
    assert not model.is_fitted


def test_fit_rejects_nan_non_numeric_and_one_class_labels(frame):
    model = create("decision_tree")
    bad = frame.copy()
    bad.loc[bad.index[5], "feature2"] = np.nan
    with pytest.raises(SchemaError, match="feature2"):
        model.fit(bad, bad["is_fraud"])
    text = frame.copy()
    text["feature9"] = text["feature9"].astype(str)
    with pytest.raises(SchemaError, match="feature9"):
        model.fit(text, text["is_fraud"])
    with pytest.raises(ValueError, match="frauds"):
        model.fit(frame, np.zeros(len(frame), dtype=int))
    with pytest.raises(ValueError, match="0 .*1"):
        model.fit(frame, np.full(len(frame), 2))


def test_predict_needs_a_fitted_model_and_the_inputs(frame, fitted):
    with pytest.raises(NotFittedError):
        create("lightgbm").predict_proba(frame)
    with pytest.raises(SchemaError, match="feature28"):
        fitted["decision_tree"].predict_proba(frame.drop(columns=["feature28"]))


def test_inputs_are_read_by_name_not_position(fitted, frame):
    shuffled = frame[list(reversed(frame.columns))]
    np.testing.assert_array_equal(fitted["lightgbm"].predict_proba(shuffled),
                                  fitted["lightgbm"].predict_proba(frame))


def test_threshold_is_the_f1_best_on_the_validation_split_carved_from_fit_data(frame):
    model = create("decision_tree", random_state=3).fit(frame, frame["is_fraud"], threshold_method="validation")
    y = frame["is_fraud"].to_numpy()
    _, val = stratified_split(len(frame), y, VALIDATION_FRACTION, 3)
    expected = best_f1_threshold(y[val], model.predict_proba(frame.iloc[val]))
    assert model.threshold == pytest.approx(expected)
    assert model.fit_info["n_validation"] == len(val)
    assert model.fit_info["threshold_method"] == model.metadata["threshold_method"] == "validation"


def test_oof_threshold_is_the_f1_best_on_out_of_fold_scores_then_the_model_fits_all_rows(frame):
    """Rebuild the folds by hand: each row is scored by a tree fitted without it; the threshold is the
    F1-best on those scores; the final tree is the one fitted on every row."""
    from sklearn.tree import DecisionTreeClassifier

    from fraud_app.models.base import stratified_folds

    model = create("decision_tree", random_state=3).fit(frame, frame["is_fraud"], folds=4)
    X = frame[MODEL_FEATURES].to_numpy(dtype=float)
    y = frame["is_fraud"].to_numpy()
    oof = np.empty(len(y))
    for fit_rows, held in stratified_folds(y, 4, 3):
        tree = DecisionTreeClassifier(max_depth=4, criterion="entropy", random_state=3).fit(X[fit_rows], y[fit_rows])
        oof[held] = tree.predict_proba(X[held])[:, 1]
    np.testing.assert_allclose(model.threshold_scores[1], oof)
    assert model.threshold == pytest.approx(best_f1_threshold(y, oof))
    final = DecisionTreeClassifier(max_depth=4, criterion="entropy", random_state=3).fit(X, y)
    np.testing.assert_allclose(model.predict_proba(frame), final.predict_proba(X)[:, 1])
    assert model.fit_info["threshold_method"] == "oof" and model.fit_info["folds"] == 4
    assert model.fit_info["n_train"] == len(frame)


def test_early_stopping_watches_the_folds_and_the_final_fit_uses_their_mean_rounds(frame):
    model = create("lightgbm", n_estimators=400, early_stopping_rounds=10, learning_rate=0.2, n_jobs=1,
                   random_state=1, final_model="refit").fit(frame, frame["is_fraud"], folds=3)
    rounds = model.fit_info["fold_best_iterations"]
    assert len(rounds) == 3 and max(rounds) < 400  # each fold stopped on its held-out fold
    assert model.fit_info["final_rounds"] == round(np.mean(rounds) * 3 / 2)
    assert model.booster_.current_iteration() == model.fit_info["final_rounds"]


def test_unknown_threshold_method_and_bad_folds_are_refused(frame):
    with pytest.raises(ValueError, match="threshold_method"):
        create("decision_tree").fit(frame, frame["is_fraud"], threshold_method="test")
    with pytest.raises(ValueError, match="folds"):
        create("decision_tree").fit(frame, frame["is_fraud"], folds=1)


def test_best_f1_threshold_on_a_known_case():
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9])
    # Flagging >= 0.5 gives tp=3, fp=1 (F1 0.857); >= 0.7 gives tp=2, fp=0 (F1 0.8).
    t = best_f1_threshold(y, s)
    assert 0.4 < t <= 0.5
    assert ((s >= t) == [0, 0, 0, 0, 1, 1, 1, 1]).all()


def test_unknown_kind_and_parameter_are_named():
    with pytest.raises(UnknownModelKindError, match="'svm'.*decision_tree"):
        create("svm")
    with pytest.raises(ValueError, match="num_leafs"):
        create("lightgbm", num_leafs=31)
    with pytest.raises(ValueError, match="learning_rate"):
        create("lightgbm", learning_rate=-1)


def test_hyperparameters_describe_every_kind_with_the_real_defaults():
    assert set(HYPERPARAMETERS) >= set(MODEL_KINDS)
    for kind in MODEL_KINDS:
        defaults = create(kind).params
        assert HYPERPARAMETERS[kind], kind
        for name, spec in HYPERPARAMETERS[kind].items():
            assert spec["doc"]
            assert ("bounds" in spec) or ("objects" in spec)
            default = defaults[name]
            if (kind, name) == ("aggregator", "members"):  # normalised to {"kind", "params"} specs
                default = [member["kind"] for member in default]
            assert spec["default"] == default, (kind, name)


def test_a_new_kind_is_one_class_and_one_registration(frame):
    @register_kind
    class MeanAmount(FraudModel):
        kind = "test_mean_amount"
        default_params = {"random_state": 0}
        hyperparameters = {}

        def fit_estimator(self, X_train, y_train, X_val, y_val, reporter):
            self.scale_ = float(np.max(X_train[:, -1]))

        def predict_scores(self, X):
            return np.clip(X[:, -1] / self.scale_, 0, 1)

        def raw_contributions(self, X):
            out = np.zeros_like(X)
            out[:, -1] = self.predict_scores(X)
            return out, 0.0

        def save_artifacts(self, folder):
            (folder / "scale.txt").write_text(repr(self.scale_))

        def load_artifacts(self, folder):
            self.scale_ = float((folder / "scale.txt").read_text())

    try:
        assert "test_mean_amount" in model_kinds()
        model = create("test_mean_amount").fit(frame, frame["is_fraud"])
        assert 0 < model.threshold < 1
        model.save("custom_kind")
        from fraud_app.models import load_model

        np.testing.assert_array_equal(load_model("custom_kind").predict_proba(frame), model.predict_proba(frame))
        with pytest.raises(ValueError, match="scale"):  # a kind without Params still refuses unknown names
            create("test_mean_amount", scale=2)
    finally:
        models_base._KINDS.pop("test_mean_amount", None)
        models_base.HYPERPARAMETERS.pop("test_mean_amount", None)


def test_refit_keeps_the_validation_threshold_and_uses_all_rows(frame):
    params = {**FAST_PARAMS["lightgbm"], "random_state": 4}
    plain = create("lightgbm", **params).fit(frame, frame["is_fraud"], threshold_method="validation")
    events = []
    refitted = create("lightgbm", **params, refit=True).fit(frame, frame["is_fraud"], threshold_method="validation",
                                                            progress=events.append)
    assert refitted.threshold == plain.threshold  # chosen before the refit, on the validation split
    assert refitted.fit_info["refitted_on"] == len(frame)
    assert refitted.booster_.current_iteration() == refitted.fit_info["refit_rounds"]
    assert not np.array_equal(refitted.predict_proba(frame), plain.predict_proba(frame))
    assert "refit" in [e.stage for e in events]
    with pytest.raises(NotImplementedError):
        create("decision_tree").refit(np.zeros((4, 29)), np.array([0, 1, 0, 1]))


def test_aggregator_members_refit_only_after_its_threshold(frame):
    lgb = {"kind": "lightgbm", "params": {**FAST_PARAMS["lightgbm"]}}
    lgb_refit = {"kind": "lightgbm", "params": {**FAST_PARAMS["lightgbm"], "refit": True}}
    plain = create("aggregator", members=[lgb, "decision_tree"]).fit(frame, frame["is_fraud"],
                                                                     threshold_method="validation")
    refitted = create("aggregator", members=[lgb_refit, "decision_tree"]).fit(frame, frame["is_fraud"],
                                                                              threshold_method="validation")
    assert refitted.threshold == plain.threshold
    assert refitted.members[0].fit_info["refitted_on"] == len(frame)


@pytest.mark.parametrize("class_weight", ["balanced", "balanced_subsample"])
def test_forest_class_weight_presets_match_a_one_shot_fit(class_weight, frame):
    """Growing in chunks (for progress) gives the same forest as sklearn's one-shot fit."""
    from sklearn.ensemble import RandomForestClassifier

    model = create("random_forest", n_estimators=30, n_jobs=1, class_weight=class_weight, random_state=1,
                   calibration="none")
    model.fit(frame, frame["is_fraud"], threshold_method="validation")
    y = frame["is_fraud"].to_numpy()
    train, _ = stratified_split(len(frame), y, VALIDATION_FRACTION, 1)
    X = frame[list(model.features)].to_numpy(dtype=float)
    one_shot = RandomForestClassifier(n_estimators=30, max_features="sqrt", max_samples=0.25, n_jobs=1,
                                      class_weight=class_weight, random_state=1).fit(X[train], y[train])
    np.testing.assert_allclose(model.predict_proba(frame), one_shot.predict_proba(X)[:, 1])
