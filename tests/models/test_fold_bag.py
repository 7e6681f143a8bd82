"""LightGBM's final model under out-of-fold thresholds: the fold bag (default) or a refit on all rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fraud_app.data import MODEL_FEATURES
from fraud_app.models import ModelLoadError, create, load_model
from fraud_app.models.base import best_f1_threshold, stratified_folds
from fraud_app.models.calibration import logit, sigmoid
from fraud_app.models.lgbm import LightGBMModel
from tests.models.conftest import FAST_PARAMS

LGB = {**FAST_PARAMS["lightgbm"], "random_state": 2}


@pytest.fixture(scope="module")
def bag(frame):
    return create("lightgbm", **LGB).fit(frame, frame["is_fraud"], folds=3)


def test_the_fold_bag_is_the_fold_models_that_chose_the_threshold(bag, frame, monkeypatch):
    """No final fit; P(fraud) = sigmoid of the mean log-odds of exactly the models behind the OOF scores."""
    assert bag.params["final_model"] == "fold_bag"
    assert bag.fit_info["final_model"] == "fold_bag" and bag.fit_info["bag_size"] == 3
    assert len(bag.boosters_) == 3 and bag.fold_models == []
    X, y = frame[MODEL_FEATURES].to_numpy(dtype=float), frame["is_fraud"].to_numpy()
    # Each booster is its fold model: it reproduces the out-of-fold scores of its held-out fold.
    raw_oof = np.empty(len(y))
    for booster, (_, held) in zip(bag.boosters_, stratified_folds(y, 3, 2), strict=True):
        raw_oof[held] = booster.predict(X[held])
    calibrated = bag.calibration(raw_oof)
    np.testing.assert_allclose(bag.threshold_scores[1], calibrated)
    assert bag.threshold == best_f1_threshold(y, calibrated)
    mean_log_odds = np.mean([b.predict(X, raw_score=True) for b in bag.boosters_], axis=0)
    np.testing.assert_allclose(bag.predict_proba(frame), bag.calibration(sigmoid(mean_log_odds)))
    # A fold bag has no single booster to hand out.
    with pytest.raises(AttributeError, match="3 boosters"):
        bag.booster_  # noqa: B018


def test_fold_bag_contributions_add_up_to_the_log_odds(bag, frame):
    rows = frame.iloc[:30]
    contrib = bag.contributions(rows, units="log_odds")
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy() + bag.expected_value("log_odds"),
                               logit(bag.predict_proba(rows)), atol=1e-6)
    raw = np.mean([b.predict(rows[MODEL_FEATURES].to_numpy(dtype=float), pred_contrib=True)
                   for b in bag.boosters_], axis=0)
    uncalibrated = create("lightgbm", **LGB, calibration="none")
    uncalibrated.boosters_, uncalibrated.fitted = bag.boosters_, True
    np.testing.assert_allclose(uncalibrated.contributions(rows, units="log_odds").to_numpy(), raw[:, :-1])


def test_refit_is_one_model_on_all_rows(frame, monkeypatch):
    fitted_rows = []
    real_fit = LightGBMModel.fit_estimator

    def spy(self, X_train, *args):
        fitted_rows.append(len(X_train))
        return real_fit(self, X_train, *args)

    monkeypatch.setattr(LightGBMModel, "fit_estimator", spy)
    model = create("lightgbm", **LGB, final_model="refit").fit(frame, frame["is_fraud"], folds=3)
    assert fitted_rows[-1] == len(frame) and len(fitted_rows) == 4
    assert model.fit_info["final_model"] == "refit" and len(model.boosters_) == 1
    assert model.metadata["params"]["final_model"] == "refit"


def test_a_fold_bag_round_trips_through_the_store(bag, frame):
    folder = bag.save("bag3", overwrite=True)
    assert sorted(p.name for p in folder.glob("model*.lgb.txt")) == ["model.2.lgb.txt", "model.3.lgb.txt",
                                                                     "model.lgb.txt"]
    loaded = load_model("bag3")
    assert loaded.fit_info["bag_size"] == 3 and loaded.params["final_model"] == "fold_bag"
    np.testing.assert_array_equal(loaded.predict_proba(frame), bag.predict_proba(frame))
    np.testing.assert_allclose(loaded.contributions(frame.iloc[:5], units="log_odds"),
                               bag.contributions(frame.iloc[:5], units="log_odds"))
    (folder / "model.3.lgb.txt").unlink()
    with pytest.raises(ModelLoadError, match="model.3.lgb.txt"):
        load_model("bag3")


def test_a_lightgbm_saved_before_final_model_existed_loads_as_a_refit(frame):
    model = create("lightgbm", **LGB, final_model="refit").fit(frame, frame["is_fraud"], folds=3)
    folder = model.save("before_bags", overwrite=True)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["params"].pop("final_model")
    meta["fit_info"].pop("final_model")
    (folder / "metadata.json").write_text(json.dumps(meta))
    loaded = load_model("before_bags")
    assert loaded.params["final_model"] == "refit" and len(loaded.boosters_) == 1
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_validation_thresholds_keep_one_model_and_bad_values_are_refused(frame):
    model = create("lightgbm", **LGB).fit(frame, frame["is_fraud"], threshold_method="validation")
    assert len(model.boosters_) == 1 and "bag_size" not in model.fit_info
    with pytest.raises(ValueError, match="final_model"):
        create("lightgbm", final_model="average")
