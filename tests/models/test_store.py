"""The model store: round trips, names, path traversal, active model, and planted pickles."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from fraud_app.config import get_settings
from fraud_app.models import (
    MODEL_KINDS,
    active_model_status,
    InvalidModelNameError,
    ModelExistsError,
    ModelLoadError,
    ModelNotFoundError,
    create,
    delete_model,
    get_active_model_name,
    list_models,
    load_model,
    model_exists,
    save_model,
    set_active_model,
    update_threshold,
    validate_model_name,
)
from fraud_app.models.store import _sha256

BAD_NAMES = ["../evil", "..", ".", "a/b", "a\\b", "/abs", "", "x" * 65, "has space", "dot.name", "ümlaut",
             "name\n", "~home", None, 42]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_save_load_round_trip_gives_identical_probabilities(kind, fitted, frame):
    model = fitted[kind]
    folder = model.save(f"rt_{kind}", overwrite=True)
    assert folder == get_settings().models_dir.resolve() / f"rt_{kind}"
    assert (folder / "metadata.json").is_file()
    loaded = load_model(f"rt_{kind}")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    np.testing.assert_allclose(loaded.contributions(frame.head(5)), model.contributions(frame.head(5)))
    assert loaded.threshold == model.threshold
    assert loaded.name == f"rt_{kind}" and loaded.version == model.version and loaded.version
    assert loaded.metadata["params"] == model.params
    # No pickle anywhere: sklearn kinds use skops archives, LightGBM its text format.
    for path in folder.rglob("*"):
        if path.is_file():
            assert path.suffix in {".json", ".skops", ".txt"}, path


def test_saving_again_needs_overwrite_and_bumps_the_version(fitted):
    model = fitted["decision_tree"]
    save_model(model, "dt")
    first = model.version
    with pytest.raises(ModelExistsError, match="'dt' already exists"):
        save_model(model, "dt")
    save_model(model, "dt", overwrite=True)
    assert model.version != first
    assert load_model("dt").version == model.version
    leftovers = [p.name for p in get_settings().models_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_unfitted_models_cannot_be_saved():
    from fraud_app.models import NotFittedError

    with pytest.raises(NotFittedError):
        create("decision_tree").save("nope")
    assert not model_exists("nope")


@pytest.mark.parametrize("name", ["a", "My_model-2", "x" * 64, "0"])
def test_valid_names(name):
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_and_path_traversal_get_a_clear_error(name, fitted, tmp_path):
    with pytest.raises(InvalidModelNameError, match="invalid model name"):
        validate_model_name(name)
    with pytest.raises(InvalidModelNameError):
        save_model(fitted["decision_tree"], name)
    with pytest.raises(InvalidModelNameError):
        load_model(name)
    with pytest.raises(InvalidModelNameError):
        delete_model(name)
    with pytest.raises(InvalidModelNameError):
        model_exists(name)
    with pytest.raises(InvalidModelNameError):
        update_threshold(name, 0.5)
    with pytest.raises(InvalidModelNameError):
        set_active_model(name)


def test_traversal_cannot_reach_a_model_saved_outside(fitted, monkeypatch, tmp_path):
    # A valid model lives next to the models folder; "../outside" must not reach it.
    outside = tmp_path / "outside_store"
    monkeypatch.setenv("FRAUD_APP_MODELS_DIR", str(outside))
    fitted["decision_tree"].save("outside")
    monkeypatch.setenv("FRAUD_APP_MODELS_DIR", str(tmp_path / "store"))
    for name in ("../outside_store/outside", "../outside_store", f"{outside}/outside"):
        with pytest.raises(InvalidModelNameError):
            load_model(name)
    with pytest.raises(ModelNotFoundError):
        load_model("outside")


def test_listed_files_must_stay_inside_the_model_folder(fitted):
    folder = fitted["decision_tree"].save("sneaky", overwrite=True)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["files"] = {"../../etc/passwd": "0" * 64}
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="outside the model folder"):
        load_model("sneaky")


def test_unknown_model_and_delete(fitted):
    with pytest.raises(ModelNotFoundError, match="no saved model named 'ghost'"):
        load_model("ghost")
    with pytest.raises(ModelNotFoundError):
        delete_model("ghost")
    fitted["decision_tree"].save("to_delete")
    assert model_exists("to_delete")
    delete_model("to_delete")
    assert not model_exists("to_delete")
    assert "to_delete" not in [m["name"] for m in list_models()]


def test_the_first_saved_model_is_pinned_and_only_an_explicit_choice_changes_it(fitted):
    """Issue 16: saving (training) another model must never change the model the API serves."""
    assert list_models() == [] and get_active_model_name() is None
    assert active_model_status()["how"] is None
    fitted["decision_tree"].save("older")
    status = active_model_status()
    assert (status["name"], status["how"]) == ("older", "first_saved") and status["description"]
    fitted["lightgbm"].save("newer")
    names = [m["name"] for m in list_models()]
    assert names == ["newer", "older"]
    assert all(m["kind"] in MODEL_KINDS and 0 < m["threshold"] < 1 for m in list_models())
    assert get_active_model_name() == "older"  # the newer save did not take over
    fitted["decision_tree"].save("older", overwrite=True)  # re-saving the active one keeps it active
    assert active_model_status()["how"] == "first_saved"
    set_active_model("newer")
    assert active_model_status()["name"] == "newer" and active_model_status()["how"] == "explicit"
    fitted["random_forest"].save("newest")
    assert get_active_model_name() == "newer"
    active_file = get_settings().models_dir / "active.json"
    assert json.loads(active_file.read_text())["name"] == "newer"
    with pytest.raises(ModelNotFoundError):
        set_active_model("missing")
    assert get_active_model_name() == "newer"
    delete_model("newer")  # the active one is gone: the newest left is pinned, as a recorded fallback
    status = active_model_status()
    assert (status["name"], status["how"]) == ("newest", "fallback")
    fitted["decision_tree"].save("later")
    assert get_active_model_name() == "newest"
    for name in ("newest", "older", "later"):
        delete_model(name)
    assert get_active_model_name() is None


def test_a_store_from_before_the_rule_keeps_serving_its_newest_model(fitted):
    fitted["decision_tree"].save("old_a")
    fitted["decision_tree"].save("old_b")
    (get_settings().models_dir / "active.json").unlink()  # as a store written before the rule
    fitted["lightgbm"].save("fresh")
    status = active_model_status()
    assert (status["name"], status["how"]) == ("old_b", "fallback")


def test_models_saved_before_oof_thresholds_still_load(fitted, frame):
    """A model_format 1 folder (no calibration, no threshold_method) loads and predicts as it did."""
    folder = fitted["lightgbm"].save("legacy", overwrite=True)
    meta = json.loads((folder / "metadata.json").read_text())
    for key in ("calibration", "threshold_method", "model_format"):
        meta.pop(key)
    meta["params"].pop("calibration")
    meta["fit_info"].pop("threshold_method")
    meta["contribution_units"] = "probability"
    (folder / "metadata.json").write_text(json.dumps(meta))
    loaded = load_model("legacy")
    assert loaded.calibration is None and loaded.params["calibration"] == "none"
    assert loaded.fit_info["threshold_method"] == "validation"
    np.testing.assert_allclose(loaded.predict_proba(frame), fitted["lightgbm"].predict_scores(
        frame[loaded.features].to_numpy(dtype=float)))


def test_a_saved_model_the_code_cannot_rebuild_says_to_retrain(fitted):
    folder = fitted["decision_tree"].save("too_old", overwrite=True)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["params"]["splitter_v0"] = "best"
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="retrain it"):
        load_model("too_old")


def test_update_threshold_rewrites_metadata_and_bumps_version(fitted, frame):
    model = fitted["random_forest"]
    model.save("thr", overwrite=True)
    before = load_model("thr")
    meta = update_threshold("thr", 0.123)
    after = load_model("thr")
    assert meta["threshold"] == after.threshold == 0.123
    assert after.version != before.version
    np.testing.assert_array_equal(after.predict(frame), (after.predict_proba(frame) >= 0.123).astype(int))
    for bad in (0, 1, -0.5, 1.5, "x", None, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            update_threshold("thr", bad)
    assert load_model("thr").threshold == 0.123


# -- loading never runs code from a file ---------------------------------------------------------

class _Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(folder: Path, filename: str, data: bytes) -> None:
    """Replace a model file and fix its checksum, so only the loader's own safety stands in the way."""
    (folder / filename).write_bytes(data)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["files"][filename] = _sha256(folder / filename)
    (folder / "metadata.json").write_text(json.dumps(meta))


def test_the_payload_really_executes_when_unpickled(tmp_path):
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(marker)))  # the control: plain pickle runs it
    assert marker.exists()


@pytest.mark.parametrize("kind,filename", [("decision_tree", "model.skops"), ("random_forest", "model.skops"),
                                           ("lightgbm", "model.lgb.txt"), ("xgboost", "model.xgb.json")])
def test_a_planted_pickle_fails_safely_without_running(kind, filename, fitted, tmp_path):
    folder = fitted[kind].save(f"planted_{kind}", overwrite=True)
    marker = tmp_path / "pwned"
    _plant(folder, filename, pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelLoadError, match=f"{filename}"):
        load_model(f"planted_{kind}")
    assert not marker.exists()


def test_a_skops_file_with_an_untrusted_type_is_refused(fitted, tmp_path):
    import skops.io as sio

    folder = fitted["decision_tree"].save("untrusted", overwrite=True)
    marker = tmp_path / "pwned"
    # A valid skops archive that references os.system (a function skops would import and return).
    (folder / "model.skops").unlink()
    sio.dump({"estimator": os.system, "marker": str(marker)}, folder / "model.skops")
    _plant(folder, "model.skops", (folder / "model.skops").read_bytes())
    with pytest.raises(ModelLoadError, match="untrusted type.*system"):
        load_model("untrusted")
    assert not marker.exists()


def test_a_planted_pickle_in_an_aggregator_member_fails_safely(fitted, tmp_path):
    folder = fitted["aggregator"].save("agg_planted", overwrite=True)
    marker = tmp_path / "pwned"
    _plant(folder, "members/1/model.skops", pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelLoadError):
        load_model("agg_planted")
    assert not marker.exists()


def test_a_modified_model_file_is_detected(fitted):
    folder = fitted["lightgbm"].save("tampered", overwrite=True)
    text = (folder / "model.lgb.txt").read_text()
    (folder / "model.lgb.txt").write_text(text.replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(ModelLoadError, match="checksum"):
        load_model("tampered")


def test_corrupt_metadata_is_a_load_error_and_skipped_by_list(fitted):
    folder = fitted["decision_tree"].save("corrupt", overwrite=True)
    fitted["decision_tree"].save("fine", overwrite=True)
    (folder / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="metadata.json"):
        load_model("corrupt")
    assert [m["name"] for m in list_models()] == ["fine"]


def test_the_aggregators_chosen_weights_round_trip_and_older_aggregators_keep_their_mix(fitted, frame):
    """The weights chosen inside fit are saved; an aggregator saved before ``selection`` loads as 'fixed'."""
    model = fitted["aggregator"]
    assert model.fit_info["selection"]["chosen"]
    loaded = load_model(model.save("agg_selection", overwrite=True).name)
    np.testing.assert_array_equal(loaded.weights, model.weights)
    assert loaded.fit_info["selection"] == model.fit_info["selection"]
    folder = model.save("agg_before_selection", overwrite=True)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["params"].pop("selection")
    for key in ("selection", "chosen_weights"):
        meta["fit_info"].pop(key, None)
    (folder / "metadata.json").write_text(json.dumps(meta))
    old = load_model("agg_before_selection")
    assert old.params["selection"] == "fixed"
    np.testing.assert_allclose(old.weights, [0.5, 0.5])
    np.testing.assert_allclose(old.predict_proba(frame.head(50)),
                               old.member_probabilities(frame.head(50)).mean(axis=1))
