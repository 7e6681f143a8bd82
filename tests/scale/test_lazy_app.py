"""The app's tabs on a lazy data set (issue #14), without a browser: EDA, Training, Inference.

``lazy_env`` points ``FRAUD_APP_DATA_PATH`` at the 100,000-row set in 8 partitions with
``FRAUD_APP_MAX_IN_MEMORY_ROWS`` at half of it, so the set opens lazily on the session's 2-worker
LocalCluster; nothing may load it whole into this process.
"""

from __future__ import annotations

import threading
from pathlib import Path

import holoviews as hv
import numpy as np
import pytest

from fraud_app.data import LazyDataset, loader
from fraud_app.data import service as data_service
from fraud_app.eda import lazy_scatter
from fraud_app.models import load_model, model_exists
from fraud_app.ui.eda import FRAUD_CODE, SCATTER_SIZE, EDASection
from fraud_app.ui.state import AppState, dataset_ready, prepare_dataset
from fraud_app.ui.training.cluster import ClusterLink
from fraud_app.ui.training.controller import TrainingController
from tests.scale.conftest import PARTITIONS, ROWS

READ_TEXT = f"read {ROWS:,} rows in {PARTITIONS} partitions"


@pytest.fixture
def lazy_state(lazy_env: Path, cluster) -> AppState:
    """A session state with the lazy set published, as the app does it: prepared, then loaded."""
    data_service.clear()
    prepare_dataset()
    state = AppState()
    state.load_dataset()
    return state


def test_the_state_holds_the_lazy_set_and_its_info_without_loading_it(lazy_state: AppState) -> None:
    before = loader.load_count
    assert lazy_state.dataset is None and isinstance(lazy_state.lazy_dataset, LazyDataset)
    assert lazy_state.data is lazy_state.lazy_dataset
    info = lazy_state.dataset_info
    assert info.lazy and info.rows == ROWS and info.partitions == PARTITIONS
    assert info.fingerprint == lazy_state.lazy_dataset.fingerprint and 0 < info.frauds < ROWS
    assert info.read_text == READ_TEXT
    assert dataset_ready()  # a new session publishes it at once, without a worker thread
    again = AppState()
    again.load_dataset()
    assert again.lazy_dataset is lazy_state.lazy_dataset and again.dataset_info is info  # once per process
    assert loader.load_count == before


def test_the_eda_section_builds_every_card_from_the_lazy_set(lazy_state: AppState) -> None:
    before = loader.load_count
    section = EDASection(state=lazy_state)
    summary = section.summary
    assert summary is not None and summary.overview["rows"] == ROWS
    assert set(section.charts) == {"balance", "distribution", "correlation", "ranking", "amount", "buckets",
                                   "hourly_counts", "hourly_rate", "scatter"}
    for name, chart in section.charts.items():  # outside a server every chart is drawn at once
        assert chart.drawn == getattr(section, f"{name}_spec")() and chart.item is not None, name
    header = section.header_html()
    assert READ_TEXT in header and "on Dask" in header and f"{ROWS:,}" in header
    assert section._describe.value is summary.describe
    assert "Dask cluster" in section.scatter_text()
    # The scatter counts every row, on the cluster, and keeps the frauds visible.
    from fraud_app.ui.charts import chart_object

    image = chart_object(section.scatter_spec())
    assert isinstance(image, hv.Image) and (image.dimension_values("code") == FRAUD_CODE).any()
    computed = lazy_scatter.compute_count
    lazy_scatter.clear_memory()  # as after a restart: the counts come back from the disk cache
    x_range, y_range = section.scatter_spec().args[3:]
    counts = lazy_scatter.lazy_scatter_counts(lazy_state.lazy_dataset, section.scatter_x, section.scatter_y,
                                              width=SCATTER_SIZE[0], height=SCATTER_SIZE[1], x_range=x_range,
                                              y_range=y_range)
    assert lazy_scatter.compute_count == computed
    assert counts.rows == ROWS and int(counts.fraud.sum()) == summary.overview["frauds"]  # every row
    assert loader.load_count == before


def _train(ctrl: TrainingController, timeout: float = 120.0):
    ctrl.param.trigger("train")
    return ctrl.wait(timeout)


def test_the_training_tab_trains_lightgbm_on_the_cluster_and_saves_it(lazy_state: AppState) -> None:
    ctrl = TrainingController(state=lazy_state)
    ctrl.load()
    ctrl.param.update(kind="lightgbm", model_name="lazy_lgbm")
    ctrl.hyperparameters["lightgbm"].n_estimators = 10
    stages: list[str] = []
    ctrl.param.watch(lambda event: stages.append(event.new), "stage")
    result = _train(ctrl)
    assert result is not None and ctrl.last_error is None, ctrl.status
    assert result.model.fit_info["engine"] == "dask" and result.model.fit_info["partitions"] == PARTITIONS
    assert "trained on the Dask cluster (2 workers, 8 partitions)" in ctrl.status
    assert {"fit", "threshold", "evaluate"} <= set(stages)  # progress came through the tab's relay
    assert ctrl.threshold_metrics and ctrl.run_id is not None  # figures at the threshold; run recorded
    link = ClusterLink(controller=ctrl).text  # the tab says how a lazy set trains, and links the dashboard
    assert f"too big for memory ({READ_TEXT})" in link and "dashboard</a>" in link
    model = load_model("lazy_lgbm")  # the normal store: Inference and the API load it as any model
    assert model.kind == "lightgbm" and model.data_fingerprint == lazy_state.lazy_dataset.fingerprint
    saved = next(meta for meta in ctrl.saved_models if meta["name"] == "lazy_lgbm")
    assert set(saved["reference"]["features"]) >= {"amount", "feature1"}  # the Monitoring tab's reference
    assert saved["reference"]["scores"]["rows"] > 0
    sample = data_service.reference_frame().head(50)
    np.testing.assert_allclose(model.predict_proba(sample), result.model.predict_proba(sample), rtol=1e-12)


def test_a_kind_that_cannot_train_distributed_says_it_used_a_sample(lazy_state: AppState) -> None:
    ctrl = TrainingController(state=lazy_state)
    ctrl.load()
    ctrl.param.update(kind="decision_tree", model_name="lazy_tree", threshold_method="validation")
    result = _train(ctrl)
    assert result is not None, ctrl.status
    assert result.model.fit_info["engine"] == "dask-sample"
    assert "trained on a stratified sample of" in ctrl.status and f"of {ROWS:,} rows" in ctrl.status


def test_cancel_stops_the_distributed_fit_and_saves_nothing(lazy_state: AppState, cluster) -> None:
    ctrl = TrainingController(state=lazy_state)
    ctrl.load()
    ctrl.param.update(kind="lightgbm", model_name="lazy_cancelled")
    ctrl.hyperparameters["lightgbm"].n_estimators = 5000
    ctrl.hyperparameters["lightgbm"].early_stopping_rounds = 0
    fitting = threading.Event()
    ctrl.param.watch(lambda event: event.new == "fit" and fitting.set(), "stage")
    ctrl.param.trigger("train")
    assert "on the Dask cluster" in ctrl.status or ctrl.stage != "queued"
    assert fitting.wait(60), ctrl.status
    ctrl.param.trigger("cancel")
    assert ctrl.wait(90) is None
    assert ctrl.stage == "cancelled" and ctrl.status.startswith("Cancelled") and not ctrl.running
    assert not model_exists("lazy_cancelled")
    cluster.wait_for_workers(2, timeout=60)  # the LocalCluster was restarted, not lost


def test_the_inference_reference_comes_from_sampled_partitions(lazy_state: AppState) -> None:
    from fraud_app.inference.reference import random_transaction, reference_data

    before = loader.load_count
    data = reference_data()
    assert data.fingerprint == f"{lazy_state.lazy_dataset.fingerprint}-partitions"
    rows = len(data.clear_rows) + len(data.fraud_rows)
    assert 0 < rows < ROWS and rows == len(data_service.reference_frame())  # 3 of the 8 partitions
    assert set(data.reference) >= {"amount", "feature1"} and len(data.fraud_rows) > 0
    assert random_transaction("fraud", rng=1).is_fraud
    assert loader.load_count == before


def test_the_detailed_health_check_reports_a_lazy_set_from_its_footers_and_cached_summary(lazy_env: Path) -> None:
    from fraud_app.api.handlers import _dataset_info

    data_service.clear()
    before = loader.load_count
    # Before the app has the summary: the footers' rows and partitions, no pass over the data.
    assert _dataset_info() == {"rows": ROWS, "lazy": True, "partitions": PARTITIONS}
    assert loader.load_count == before


def test_the_detailed_health_check_reports_a_lazy_sets_frauds_once_the_app_has_its_summary(
        lazy_state: AppState) -> None:
    from fraud_app.api.handlers import _dataset_info

    assert _dataset_info() == {"rows": ROWS, "frauds": lazy_state.dataset_info.frauds, "lazy": True,
                               "partitions": PARTITIONS}
