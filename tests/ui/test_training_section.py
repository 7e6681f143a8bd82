"""The Training tab without a browser: build it, trigger its Events, check state, store and database.

Everything runs on the synthetic data set of the autouse ``app_env`` fixture. Outside a
server there is no session document, so results are handed back on the worker thread
itself; the tests wait for ``running`` to drop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import panel as pn
import param
import pytest

from fraud_app.data import MODEL_FEATURES, TARGET, load_transactions, make_synthetic
from fraud_app.models import (
    HYPERPARAMETERS,
    create,
    get_active_model_name,
    model_path,
    read_metadata,
    save_model,
)
from fraud_app.storage import list_training_runs
from fraud_app.training import TrainingPipeline, TrainingResult, cheapest_threshold, metrics_at_threshold
from fraud_app.ui.base import discover_sections, registered_sections
from fraud_app.ui.state import AppState
from fraud_app.ui.training import TrainingSection
from fraud_app.ui.training import section as section_module
from fraud_app.ui.training.plots import confusion_frame
from fraud_app.ui.training.worker import validation_scores


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def save_quick_model(name: str, seed: int = 1) -> None:
    """A small fitted decision tree saved as ``name`` (faster than a UI run)."""
    frame = make_synthetic(2_000, 0.05, seed)
    save_model(create("decision_tree").fit(frame[MODEL_FEATURES], frame[TARGET]), name)


class EventCounter:
    """Counts how often a param.Event fired."""

    def __init__(self, owner: param.Parameterized, name: str) -> None:
        self.count = 0
        owner.param.watch(self._bump, name)

    def _bump(self, _event: param.parameterized.Event) -> None:
        self.count += 1


@pytest.fixture
def state() -> AppState:
    return AppState()


@pytest.fixture
def section(state: AppState) -> TrainingSection:
    return TrainingSection(state=state)


def train(section: TrainingSection, timeout: float = 120.0) -> TrainingResult | None:
    section.param.trigger("train")
    return section.wait(timeout)


@pytest.fixture
def trained(section: TrainingSection) -> TrainingSection:
    """The section after one saved baseline run."""
    section.param.update(kind="decision_tree", model_name="baseline", save=True)
    assert train(section) is not None, section.last_error
    return section


# -- the view -------------------------------------------------------------------------------------

def test_the_training_tab_is_registered_and_renders(section: TrainingSection) -> None:
    discover_sections()
    assert TrainingSection in registered_sections()
    root = section.__panel__().get_root()
    assert root is not None
    assert section.running is False and section.result is None
    # Nothing trained yet: the placeholder shows, the results are hidden, Cancel is off.
    assert section._placeholder.visible and not section._results.visible
    assert section._cancel_button.disabled and not section._train_button.disabled


def test_hyperparameters_change_with_the_kind_and_are_bounded(section: TrainingSection) -> None:
    def shown_labels() -> list[str]:
        panel = section._hp_container.objects[0]
        return [w.label for w in panel.objects if isinstance(w, pn.widgets.Widget)]

    section.kind = "decision_tree"
    assert "Max depth" in shown_labels() and "Learning rate" not in shown_labels()
    section.kind = "lightgbm"
    assert "Learning rate" in shown_labels() and "Max depth" not in shown_labels()
    lgbm = section.hyperparameters["lightgbm"]
    assert lgbm.param.learning_rate.bounds == (0.001, 0.5)
    with pytest.raises(ValueError):
        lgbm.learning_rate = 2.0
    lgbm.n_estimators = 77
    assert section.make_pipeline().params["n_estimators"] == 77
    # The default name follows the kind until the user types one.
    assert section.model_name == "lightgbm_1"


def test_none_choices_are_shown_as_text_and_passed_as_none(section: TrainingSection) -> None:
    section.kind = "random_forest"
    forest = section.hyperparameters["random_forest"]
    assert "None" in forest.param.max_features.objects and None not in forest.param.max_features.objects
    forest.max_features = "None"
    params = section.make_pipeline().params
    assert params["max_features"] is None and params["class_weight"] is None
    assert params["max_depth"] is None  # the unlimited default of an optional integer
    forest.class_weight = "balanced"
    assert section.make_pipeline().params["class_weight"] == "balanced"


def test_aggregator_members_copies_weights_and_member_settings(section: TrainingSection) -> None:
    section.kind = "aggregator"
    aggregator = section.hyperparameters["aggregator"]
    # The model's default (three LightGBMs) is shown as one kind with three copies.
    default = HYPERPARAMETERS["aggregator"]["members"]["default"]
    assert aggregator.member_list() == list(default)
    aggregator.param.update(members=["decision_tree", "lightgbm"], copies=2, weight_lightgbm=3.0)
    section.hyperparameters["decision_tree"].max_depth = 6
    section.seed = 5
    pipeline = section.make_pipeline()
    params = pipeline.params
    assert [m["kind"] for m in params["members"]] == ["decision_tree", "decision_tree", "lightgbm", "lightgbm"]
    assert params["weights"] == [1.0, 1.0, 3.0, 3.0]
    assert params["members"][0]["params"]["max_depth"] == 6
    # Copies differ by seed: the aggregator seeds member i with the run's seed + i.
    model = create("aggregator", **params)
    assert [m.params["random_state"] for m in model.members] == [5, 6, 7, 8]
    aggregator.members = []
    with pytest.raises(ValueError, match="at least one member"):
        section.make_pipeline()


# -- name validation ------------------------------------------------------------------------------

def test_name_is_validated_live_and_existing_names_are_flagged(section: TrainingSection) -> None:
    save_quick_model("taken")
    section.save = True
    # Typing (value_input, every keystroke) updates the check without pressing Enter.
    section._name_input.value_input = "bad name!"
    assert section.model_name == "bad name!"
    assert not section.name_ok and section.name_level == "danger"
    assert "invalid model name" in section.name_status.lower()
    assert section._train_button.disabled

    section._name_input.value_input = "taken"
    assert not section.name_ok and section.name_level == "warning"
    assert "already exists" in section.name_status
    assert section._train_button.disabled

    section.overwrite = True
    assert section.name_ok and section.name_level == "warning" and "replaced" in section.name_status
    assert not section._train_button.disabled

    section.param.update(overwrite=False, model_name="fresh_name")
    assert section.name_ok and section.name_level == "success"

    section.model_name = ""
    assert not section.name_ok  # saving needs a name
    section.save = False
    assert section.name_ok  # an unsaved run does not


def test_training_with_a_bad_name_does_not_start(section: TrainingSection, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(TrainingPipeline, "run", lambda *a, **k: calls.append(a))
    section.model_name = "../escape"
    section.param.trigger("train")
    assert not section.running and calls == []
    assert "invalid model name" in section.last_error
    assert list_training_runs() == []


# -- training -------------------------------------------------------------------------------------

def test_train_with_save_publishes_metrics_saves_and_records(section: TrainingSection, state: AppState) -> None:
    models_changed = EventCounter(state, "models_changed")
    section.param.update(kind="decision_tree", model_name="baseline", save=True, seed=3)
    result = train(section)

    assert result is not None and section.last_error is None
    assert state.training_result is result
    for key in ("f1", "precision", "recall", "pr_auc", "roc_auc", "threshold", "confusion_matrix"):
        assert key in state.training_result.metrics
    assert 0.0 < result.metrics["f1"] <= 1.0 and result.seed == 3
    assert (model_path("baseline") / "metadata.json").is_file()
    assert models_changed.count >= 1
    assert "baseline" in [m["name"] for m in section.saved_models]

    runs = list_training_runs()
    assert len(runs) == 1 and runs[0]["model"] == "baseline" and runs[0]["saved"] is True
    assert section.run_id == runs[0]["id"]
    assert list(section.runs_table["model"]) == ["baseline"]
    assert section.runs_table["f1"].iloc[0] == pytest.approx(result.metrics["f1"])

    # Indicators, progress and busy state after the run.
    assert section._indicators["f1"].value == pytest.approx(result.metrics["f1"])
    assert section._indicators["roc_auc"].value == pytest.approx(result.metrics["roc_auc"])
    assert section.progress == 1.0 and section.stage == "done" and not section.running
    assert section._cancel_button.disabled and not section._kind_select.disabled
    assert section._results.visible and not section._placeholder.visible
    # The typed name is now taken: the next run needs another name or Overwrite.
    assert not section.name_ok and "already exists" in section.name_status
    assert section._train_button.disabled


def test_train_without_save_writes_no_model_folder(section: TrainingSection) -> None:
    section.param.update(kind="decision_tree", model_name="scratch", save=False)
    result = train(section)
    assert result is not None and not result.saved
    assert not model_path("scratch").exists()
    runs = list_training_runs()
    assert len(runs) == 1 and runs[0]["saved"] is False and runs[0]["model"] == "scratch"
    assert section._save_threshold_button.disabled  # nothing saved to attach a threshold to


def test_a_second_run_adds_a_row_to_the_runs_table(trained: TrainingSection) -> None:
    # The default-name flow: after saving "baseline" a custom name stays; pick another.
    trained.param.update(model_name="baseline_2", seed=1)
    train(trained)
    assert [r["model"] for r in list_training_runs()] == ["baseline_2", "baseline"]
    assert list(trained.runs_table["model"]) == ["baseline_2", "baseline"]
    # The saved-model buttons now act on the model just saved.
    assert trained.selected_model == "baseline_2"


def test_busy_state_resets_after_a_failure(section: TrainingSection, monkeypatch, caplog) -> None:
    started, release = threading.Event(), threading.Event()
    notified: list[tuple[str, BaseException | None]] = []

    def failing_run(self, frame, progress=None, cancel=None):
        started.set()
        assert release.wait(30)
        raise RuntimeError("disk on fire")

    def record_notify(message: str, exc: BaseException | None = None) -> None:
        notified.append((message, exc))
        original_notify(message, exc)

    original_notify = section_module.notify_error
    monkeypatch.setattr(TrainingPipeline, "run", failing_run)
    monkeypatch.setattr(section_module, "notify_error", record_notify)
    section.param.update(kind="decision_tree", model_name="will_fail", save=True)

    section.param.trigger("train")
    assert started.wait(30)
    # While it runs: everything that changes the run is disabled, Cancel is enabled.
    assert section.running
    assert section._train_button.disabled and not section._cancel_button.disabled
    assert section._kind_select.disabled and section._name_input.disabled
    section.param.trigger("train")  # a second click while running is ignored
    with caplog.at_level(logging.ERROR):
        release.set()
        section.wait(30)

    assert not section.running
    assert not section._train_button.disabled and section._cancel_button.disabled
    assert not section._kind_select.disabled and not section._name_input.disabled
    assert "disk on fire" in section.last_error and section.stage == "failed"
    assert [m for m, _ in notified] == ["Training failed"] and isinstance(notified[0][1], RuntimeError)
    assert any("Training failed" in r.getMessage() and r.exc_info for r in caplog.records)
    assert list_training_runs() == [] and not model_path("will_fail").exists()
    assert section.result is None


def test_cancel_stops_a_running_lightgbm(section: TrainingSection) -> None:
    section.param.update(kind="lightgbm", model_name="cancelled", save=True)
    section.hyperparameters["lightgbm"].param.update(n_estimators=5000, early_stopping_rounds=0,
                                                     learning_rate=0.001)
    seen_iterations: list[int] = []
    section.param.watch(lambda e: seen_iterations.append(e.new) if e.new else None, "iteration")
    section.param.trigger("train")
    # The progress follows LightGBM's boosting rounds.
    wait_until(lambda: len(seen_iterations) >= 2, timeout=120, what="two boosting rounds")
    assert section.stage == "fit" and section.total == 5000
    assert "boosting round" in section.status
    assert seen_iterations == sorted(seen_iterations)
    section.param.trigger("cancel")
    section.wait(60)

    assert not section.running and section.stage == "cancelled"
    assert "Cancelled" in section.status
    assert section.result is None and section.last_error is None
    assert not model_path("cancelled").exists()
    assert list_training_runs() == []
    assert not section._train_button.disabled and section._cancel_button.disabled


# -- threshold, costs and saving the threshold ----------------------------------------------------

def test_threshold_slider_recomputes_metrics_without_retraining(trained: TrainingSection, monkeypatch) -> None:
    result = trained.result
    monkeypatch.setattr(TrainingPipeline, "run", lambda *a, **k: pytest.fail("retrained"))
    assert trained.threshold == pytest.approx(result.threshold)
    assert trained.threshold_metrics["f1"] == pytest.approx(result.metrics["f1"])

    # Moving the slider widget updates the figures from the held-out scores.
    low = float(np.quantile(result.test_scores, 0.5))
    trained._threshold_slider.value = max(0.001, low)
    expected = metrics_at_threshold(result.y_test, result.test_scores, trained.threshold)
    got = trained.threshold_metrics
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    assert got["f1"] == pytest.approx(expected["f1"]) and got["recall"] == pytest.approx(expected["recall"])
    assert got["confusion_matrix"] != result.metrics["confusion_matrix"]  # a different operating point
    # Both plots follow (at once outside a server; a tick or two later on a server).
    assert trained.confusion_shown == got and trained.curve_shown == got
    assert trained._indicators["precision"].value == pytest.approx(expected["precision"])

    # The heat map shows these counts with Clear/Fraudulent labels.
    heat = trained._confusion_element(got).get(0)
    counts = {(r.Actual, r.Predicted): r.Count for r in heat.dframe().itertuples()}
    (tn, fp), (fn, tp) = expected["confusion_matrix"]
    assert counts == {("Clear", "Clear"): tn, ("Clear", "Fraudulent"): fp,
                      ("Fraudulent", "Clear"): fn, ("Fraudulent", "Fraudulent"): tp}
    # The PR curve marks the chosen point.
    chosen = trained._pr_element(got).get(2)
    assert chosen.label == "Chosen"
    assert tuple(chosen.array()[0][:2]) == pytest.approx((expected["recall"], expected["precision"]))
    assert len(list_training_runs()) == 1


def test_costs_suggest_the_cheapest_threshold_on_the_validation_split(trained: TrainingSection) -> None:
    result = trained.result
    y_val, val_scores = validation_scores(result, load_transactions())
    trained.param.update(cost_fn=500.0, cost_fp=1.0)
    assert trained.cheapest == pytest.approx(cheapest_threshold(y_val, val_scores, 500.0, 1.0))
    assert not trained._cheapest_button.disabled
    trained.param.trigger("use_cheapest")
    assert trained.threshold == pytest.approx(trained.cheapest)
    (_, fp), (fn, _) = trained.threshold_metrics["confusion_matrix"]
    assert trained.threshold_metrics["cost"] == pytest.approx(500.0 * fn + 1.0 * fp)


def test_validation_split_is_rebuilt_exactly(trained: TrainingSection) -> None:
    """The consistency check behind the cost suggestion: the rebuilt split gives the model's threshold."""
    rebuilt = validation_scores(trained.result, load_transactions())
    assert rebuilt is not None
    y_val, scores = rebuilt
    n_train = trained.result.n_train
    assert len(y_val) == pytest.approx(0.2 * n_train, abs=1)
    # A split that does not reproduce the model's threshold is refused, not used.
    trained.result.model.threshold = 0.123456
    assert validation_scores(trained.result, load_transactions()) is None


def test_save_threshold_updates_the_saved_model(trained: TrainingSection, state: AppState) -> None:
    models_changed = EventCounter(state, "models_changed")
    version = read_metadata("baseline")["version"]
    trained.threshold = 0.3141
    trained.param.trigger("save_threshold")
    meta = read_metadata("baseline")
    assert meta["threshold"] == pytest.approx(0.3141)
    assert meta["version"] != version
    assert trained.result.model.threshold == pytest.approx(0.3141)
    assert models_changed.count == 1


# -- saved models ---------------------------------------------------------------------------------

def test_set_active_updates_the_store_and_the_state(section: TrainingSection, state: AppState) -> None:
    save_quick_model("first", seed=1)
    save_quick_model("second", seed=2)
    section.param.trigger("refresh")
    assert set(section.param.selected_model.objects) == {"first", "second"}
    models_changed = EventCounter(state, "models_changed")

    section.selected_model = "first"
    section.param.trigger("activate")
    assert get_active_model_name() == "first"
    assert state.active_model == "first" and section.active_name == "first"
    assert models_changed.count == 1
    table = section._models_table.value
    assert list(table.loc[table["active"] == "✓", "name"]) == ["first"]


def test_delete_asks_for_confirmation(section: TrainingSection, state: AppState) -> None:
    save_quick_model("doomed")
    section.param.trigger("refresh")
    section.selected_model = "doomed"
    section.param.trigger("activate")

    section.param.trigger("delete")
    assert section.pending_delete == "doomed" and section._confirm_row.visible
    section.param.trigger("keep_model")
    assert section.pending_delete is None and model_path("doomed").exists()

    section.param.trigger("delete")
    section.param.trigger("confirm_delete")
    assert not model_path("doomed").exists()
    assert state.active_model is None and section.selected_model is None
    assert section.saved_models == [] and not section._confirm_row.visible


def test_confusion_frame_labels() -> None:
    frame = confusion_frame([[90, 3], [2, 5]])
    cells = {(r.Actual, r.Predicted): (r.Cell, r.Count) for r in frame.itertuples()}
    assert cells == {("Clear", "Clear"): ("TN", 90), ("Clear", "Fraudulent"): ("FP", 3),
                     ("Fraudulent", "Clear"): ("FN", 2), ("Fraudulent", "Fraudulent"): ("TP", 5)}
