"""The shared prediction service: validation, scoring, the model cache, explain."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fraud_app import inference, storage
from fraud_app.data import MODEL_FEATURES
from fraud_app.inference import NoModelError, PredictionInputError
from fraud_app.models import InvalidModelNameError, ModelNotFoundError
from tests.conftest import ROOT


def _frame(rows):
    return pd.DataFrame(rows)[MODEL_FEATURES]


def test_score_and_save_matches_the_model_and_stores_rows(saved_model, fitted_tree, sample_rows):
    stored = inference.score_and_save(sample_rows[:20], source="batch")
    expected = fitted_tree.predict_proba(_frame(sample_rows[:20]))
    assert [r["fraud_probability"] for r in stored] == pytest.approx(expected.tolist(), abs=1e-12)
    assert [r["is_fraud"] for r in stored] == (expected >= fitted_tree.threshold).tolist()
    assert any(r["is_fraud"] for r in stored) and not all(r["is_fraud"] for r in stored)
    assert {r["source"] for r in stored} == {"batch"}
    assert {r["model"] for r in stored} == {"tree"}
    assert stored[0]["features"] == sample_rows[0]
    assert storage.count_predictions() == 20
    assert storage.get_prediction(stored[5]["id"]) == stored[5]


def test_single_mapping_may_name_its_model(saved_model, sample_rows):
    (row,) = inference.score_and_save({**sample_rows[0], "model": "tree"}, source="ui")
    assert row["model"] == "tree" and row["source"] == "ui"
    with pytest.raises(PredictionInputError) as info:
        inference.score_and_save({**sample_rows[0], "model": "tree"}, model="other")
    assert info.value.field == "model"


def test_dataframe_input_ignores_extra_columns(saved_model, sample_rows):
    frame = _frame(sample_rows[:3]).assign(time=1.0, is_fraud=0)
    stored = inference.score_and_save(frame, source="batch")
    assert len(stored) == 3 and set(stored[0]["features"]) == set(MODEL_FEATURES)
    bad = _frame(sample_rows[:3])
    bad.loc[1, "feature4"] = np.nan
    with pytest.raises(PredictionInputError) as info:
        inference.score_and_save(bad, source="batch")
    assert info.value.field == "transactions[1].feature4"
    assert storage.count_predictions() == 3


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda r: r.pop("feature9"), "feature9"),
    (lambda r: r.update(feature30=1.0), "feature30"),
    (lambda r: r.update(amount="12.5"), "amount"),
    (lambda r: r.update(amount=True), "amount"),
    (lambda r: r.update(feature1=None), "feature1"),
    (lambda r: r.update(feature2=float("nan")), "feature2"),
    (lambda r: r.update(feature3=float("-inf")), "feature3"),
    (lambda r: r.update(feature4=10**400), "feature4"),
    (lambda r: r.update(feature5=np.bool_(True)), "feature5"),
])
def test_validation_names_the_field_and_writes_nothing(saved_model, sample_rows, mutate, field):
    row = dict(sample_rows[0])
    mutate(row)
    with pytest.raises(PredictionInputError) as info:
        inference.score_and_save(row)
    assert info.value.field == field
    assert field in str(info.value)
    batch = [dict(sample_rows[1]), row]
    with pytest.raises(PredictionInputError) as info:
        inference.score_and_save(batch)
    assert info.value.field == f"transactions[1].{field}"
    assert storage.count_predictions() == 0


def test_numpy_numbers_are_accepted(saved_model, sample_rows):
    row = {k: np.float32(v) for k, v in sample_rows[0].items()}
    row["amount"] = np.int64(12)
    (stored,) = inference.score_and_save(row, source="ui")
    assert stored["features"]["amount"] == 12.0


def test_batch_limits(saved_model, sample_rows):
    with pytest.raises(PredictionInputError, match="at least one"):
        inference.score_and_save([])
    with pytest.raises(PredictionInputError, match="10,000"):
        inference.score_and_save([sample_rows[0]] * 10_001)
    with pytest.raises(ValueError, match="source"):
        inference.score_and_save(sample_rows[0], source="web")
    assert storage.count_predictions() == 0


def test_no_model_unknown_model_and_bad_name(sample_rows):
    with pytest.raises(NoModelError):
        inference.score_and_save(sample_rows[0])
    with pytest.raises(ModelNotFoundError):
        inference.get_model("missing")
    with pytest.raises(InvalidModelNameError):
        inference.get_model("../etc")
    assert inference.active_model_info() is None


def test_model_is_loaded_once_and_reloaded_when_it_changes(saved_model, fitted_tree, sample_rows, monkeypatch):
    from fraud_app.inference import service
    from fraud_app.models import set_active_model, update_threshold

    loads = []
    real_load = service.load_model
    monkeypatch.setattr(service, "load_model", lambda name: loads.append(name) or real_load(name))
    first = inference.get_model()
    for _ in range(5):
        assert inference.get_model() is first
        assert inference.get_model("tree") is first
    assert loads == ["tree"]

    update_threshold("tree", 0.123)  # new version on disk: the next call must see it
    second = inference.get_model("tree")
    assert second is not first and second.threshold == pytest.approx(0.123)
    assert second.version != first.version
    (row,) = inference.score_and_save(sample_rows[0])
    assert row["threshold"] == pytest.approx(0.123) and row["model_version"] == second.version

    fitted_tree.save("other")
    set_active_model("other")
    assert inference.get_model().name == "other"
    assert inference.active_model_info()["name"] == "other"
    assert loads == ["tree", "tree", "other"]


def test_model_cache_is_thread_safe(saved_model, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from fraud_app.inference import service

    loads = []
    real_load = service.load_model
    monkeypatch.setattr(service, "load_model", lambda name: loads.append(name) or real_load(name))
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: inference.get_model(), range(64)))
    assert len({id(m) for m in models}) == 1
    assert loads == ["tree"]


def test_explain_orders_by_absolute_contribution(saved_model, fitted_tree, sample_rows):
    frame = inference.explain(sample_rows[0], top=29)
    assert list(frame.columns) == ["feature", "value", "contribution"]
    assert sorted(frame["feature"]) == sorted(MODEL_FEATURES)
    magnitudes = frame["contribution"].abs().to_numpy()
    assert (np.diff(magnitudes) <= 1e-15).all()
    total = frame["contribution"].sum() + fitted_tree.expected_value()
    assert total == pytest.approx(fitted_tree.predict_proba(_frame(sample_rows[:1]))[0], abs=1e-9)
    assert len(inference.explain(sample_rows[0], top=3)) == 3
    assert storage.count_predictions() == 0  # explaining saves nothing


def test_core_packages_do_not_import_panel():
    code = ("import sys, fraud_app.storage, fraud_app.inference; "
            "bad = [m for m in ('panel', 'bokeh', 'tornado') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
