"""Training on Dask: lightgbm.dask on the cluster, saved in the normal store; other kinds on a sample."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import MODEL_FEATURES
from fraud_app.data.partitioned import open_lazy
from fraud_app.models import TrainingCancelled, list_models, load_model, model_exists
from fraud_app.training import TrainingPipeline
from tests.scale.conftest import ROWS

SMALL = {"n_estimators": 40}


def test_lightgbm_trains_on_the_cluster_and_is_saved_like_any_model(synth_dir: Path, cluster, app_env: Path) -> None:
    dataset = open_lazy(str(synth_dir))
    events = []
    result = TrainingPipeline("lightgbm", SMALL, name="on_dask", save=True, split="time").run(
        dataset, progress=events.append)
    info = result.model.fit_info
    assert info["engine"] == "dask" and info["workers"] == 2 and info["partitions"] == 8
    assert result.metrics["n_test"] == pytest.approx(0.2 * ROWS, rel=0.01)  # the latest 20 % of times
    assert result.metrics["f1"] > 0.8
    assert 0.0 < result.threshold < 1.0 and info["n_validation"] > 0
    assert [e.stage for e in events][-1] == "done" and {"split", "fit", "threshold", "evaluate", "save"} <= {
        e.stage for e in events}
    # the normal store and format: inference loads it and scores the same as on the cluster
    loaded = load_model("on_dask")
    assert loaded.kind == "lightgbm" and loaded.data_fingerprint == dataset.fingerprint
    frame = pd.read_parquet(synth_dir)
    test = frame[frame["time"] >= frame["time"].quantile(0.8)].tail(500)
    np.testing.assert_allclose(loaded.predict_proba(test[MODEL_FEATURES]),
                               result.model.predict_proba(test[MODEL_FEATURES]), rtol=1e-12)
    assert "on_dask" in [m["name"] for m in list_models()]


def test_a_kind_that_cannot_train_distributed_trains_on_a_stratified_sample(synth_dir: Path, cluster) -> None:
    from fraud_app.training.distributed import run_distributed

    dataset = open_lazy(str(synth_dir))
    pipeline = TrainingPipeline("decision_tree", name="tree_sample", save=True)
    result = run_distributed(pipeline, dataset, sample_rows=20_000)
    note = result.model.fit_info["trained_on"]
    assert note.startswith("stratified sample of ") and f"of {ROWS:,} rows" in note
    assert result.n_train + result.metrics["n_test"] == pytest.approx(20_000, rel=0.02)
    assert result.saved and load_model("tree_sample").fit_info["trained_on"] == note


def test_cancel_during_the_fit_stops_it_and_saves_nothing(synth_dir: Path, cluster) -> None:
    dataset = open_lazy(str(synth_dir))
    cancel = threading.Event()

    def progress(event) -> None:
        if event.stage == "fit":
            cancel.set()

    with pytest.raises(TrainingCancelled):
        TrainingPipeline("lightgbm", {"n_estimators": 2000}, name="cancelled", save=True).run(
            dataset, progress=progress, cancel=cancel)
    assert not model_exists("cancelled")
    assert cluster.status == "running"  # the LocalCluster was restarted, not lost
    cluster.wait_for_workers(2, timeout=60)
