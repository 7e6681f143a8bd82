"""The XGBoost kind: the study's defaults, its JSON model file, log-odds contributions, threads, the API.

Fitting, predicting, metadata and the store round trip of every kind (XGBoost included) are in
``test_kinds.py`` and ``test_store.py``; this file covers what is particular to XGBoost.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import MODEL_FEATURES
from fraud_app.models import ModelLoadError, TrainingCancelled, create, load_model
from fraud_app.models.calibration import logit
from fraud_app.models.xgb import MODEL_FILE, SMALL_BATCH_ROWS, XGBoostModel
from tests.api.conftest import _api_server, _reset_process_state, api, database  # noqa: F401  (fixtures)
from tests.models.test_store import _plant


def test_defaults_are_the_nested_studys_xgboost():
    """The kind's defaults are the configuration ``bench/tune_refit.py`` measured (one declaration)."""
    from bench.tune_refit import XGB_PARAMS, XGB_ROUNDS

    model = create("xgboost")
    params = model._xgb_params()
    study = {k: v for k, v in XGB_PARAMS.items() if k not in {"nthread", "verbosity"}}
    assert {k: params[k] for k in study} == study
    assert model.params["n_estimators"] == XGB_ROUNDS
    assert model.params == XGBoostModel.Params.defaults()


@pytest.mark.parametrize("name,value", [("max_delta_step", -1.0), ("learning_rate", 0.0), ("max_depth", 0),
                                        ("subsample", 1.5), ("n_estimators", 0), ("calibration", "platt")])
def test_a_value_outside_the_declared_limits_names_the_parameter(name, value):
    with pytest.raises(ValueError, match=name):
        create("xgboost", **{name: value})


def test_contributions_add_up_to_the_log_odds_of_the_probability(fitted, frame):
    model = fitted["xgboost"]
    rows = frame.iloc[[0, 10, 200, 3000, 5999]]
    fraud_rows = frame[frame["is_fraud"] == 1].head(3)
    rows = pd.concat([rows, fraud_rows])
    contrib = model.contributions(rows, units="log_odds")
    total = contrib.sum(axis=1).to_numpy() + model.expected_value("log_odds")
    proba = np.clip(model.predict_proba(rows), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(total, logit(proba), atol=1e-5)
    # The booster's own TreeSHAP values add up to its margin (XGBoost computes in float32).
    raw, base = model.raw_contributions(rows[MODEL_FEATURES].to_numpy())
    margin = model.booster_.inplace_predict(rows[MODEL_FEATURES].to_numpy(), predict_type="margin")
    np.testing.assert_allclose(raw.sum(axis=1) + base, margin, atol=1e-4)
    # Frauds are pushed towards fraud: their log-odds are above the base value.
    assert (contrib.loc[fraud_rows.index].sum(axis=1) > 0).all()


def test_small_predictions_use_one_thread_and_never_change_the_shared_booster(frame):
    model = create("xgboost", n_estimators=5, n_jobs=2).fit(frame, frame["is_fraud"], threshold_method="validation")

    def threads(booster) -> int:
        return int(json.loads(booster.save_config())["learner"]["generic_param"]["nthread"])

    small, large = model._booster(1), model._booster(SMALL_BATCH_ROWS + 1)
    assert (threads(small), threads(large)) == (1, 2)
    assert threads(model.booster_) == 2 and small is not model.booster_
    assert model._booster(SMALL_BATCH_ROWS) is small  # made once, then reused
    values = frame[MODEL_FEATURES].to_numpy()
    big = np.vstack([values, values])[: SMALL_BATCH_ROWS + 1]
    np.testing.assert_allclose(model.predict_scores(big)[: len(values)], model.predict_scores(values), rtol=1e-6)


def test_cancelling_stops_boosting_between_rounds(frame):
    cancel = threading.Event()
    rounds = []

    def progress(event) -> None:
        if event.stage == "fit" and event.iteration:
            rounds.append(event.iteration)
            if event.iteration == 3:
                cancel.set()

    with pytest.raises(TrainingCancelled):
        create("xgboost", n_estimators=200, n_jobs=1).fit(frame, frame["is_fraud"], progress=progress, cancel=cancel)
    assert max(rounds) == 3


def test_the_saved_file_is_xgboost_json(fitted):
    folder = fitted["xgboost"].save("xgb_json", overwrite=True)
    model = json.loads((folder / MODEL_FILE).read_text())
    assert set(model) >= {"learner", "version"}
    assert model["learner"]["feature_names"] == MODEL_FEATURES
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["file_format"] == "xgboost-json"
    assert meta["library_versions"]["xgboost"]


@pytest.mark.parametrize("content,message", [
    (b'{"learner": {"gradient_booster": {}, ', "not an XGBoost JSON model"),   # cut short
    (b'{"tree": [1, 2, 3]}', "not an XGBoost JSON model"),                     # JSON, but not a model
    (b"\x00\x01binary\xff", "not an XGBoost JSON model"),                      # not text
    (b'{"learner": {"gradient_booster": 1}, "version": [3, 2, 0]}', "could not be parsed"),
])
def test_a_file_that_is_not_an_xgboost_json_model_is_refused_clearly(fitted, content, message):
    folder = fitted["xgboost"].save("xgb_bad", overwrite=True)
    _plant(folder, MODEL_FILE, content)
    with pytest.raises(ModelLoadError, match=f"{MODEL_FILE}.*{message}|{message}.*") as info:
        load_model("xgb_bad")
    assert MODEL_FILE in str(info.value)


def test_a_model_on_other_inputs_is_refused(fitted):
    folder = fitted["xgboost"].save("xgb_inputs", overwrite=True)
    model = json.loads((folder / MODEL_FILE).read_text())
    model["learner"]["feature_names"] = [f"x{i}" for i in range(len(MODEL_FEATURES))]
    _plant(folder, MODEL_FILE, json.dumps(model).encode())
    with pytest.raises(ModelLoadError, match="other inputs"):
        load_model("xgb_inputs")


@pytest.mark.usefixtures("database")
def test_the_api_scores_and_explains_with_a_saved_xgboost_model(api, fitted, frame):  # noqa: F811
    from fraud_app import inference

    model = fitted["xgboost"]
    model.save("xgb_api", overwrite=True)
    rows = frame[MODEL_FEATURES].iloc[[5, int(np.flatnonzero(frame["is_fraud"])[0])]]
    body = [{k: float(v) for k, v in r.items()} for r in rows.to_dict(orient="records")]
    resp = api.post("/api/predictions", {"model": "xgb_api", "transactions": body})
    assert resp.status == 201, resp.body
    assert resp.json["model"] == "xgb_api"
    created = resp.json["predictions"]
    expected = model.predict_proba(rows)
    assert [c["fraud_probability"] for c in created] == pytest.approx(expected, abs=1e-12)
    assert [c["is_fraud"] for c in created] == [bool(p >= model.threshold) for p in expected]
    why = inference.explain(body[1], top=29, units="log_odds")
    assert why["contribution"].sum() + model.expected_value("log_odds") == pytest.approx(
        logit(np.clip(expected[1:], 1e-7, 1 - 1e-7))[0], abs=1e-5)


def test_an_aggregator_with_an_xgboost_member_fits_and_round_trips(frame):
    members = [{"kind": "xgboost", "params": {"n_estimators": 20, "n_jobs": 1}}, "decision_tree"]
    model = create("aggregator", members=members, selection="fixed").fit(frame, frame["is_fraud"], folds=3)
    folder = model.save("agg_xgb")
    assert (folder / "members" / "0" / MODEL_FILE).is_file()
    loaded = load_model("agg_xgb")
    assert [m.kind for m in loaded.members] == ["xgboost", "decision_tree"]
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
