"""The Training tab without a browser: drive its controller, assert on its Parameters, store and database.

Everything runs on the synthetic data set of the autouse ``app_env`` fixture. Outside a
server there is no session document, so results are handed back on the worker thread
itself; the tests wait for ``running`` to drop. No test reads a private widget: the views
are reached through Panel's public ``select`` and their CSS classes.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import panel as pn
import param
import pytest

from fraud_app.data import MODEL_FEATURES, TARGET, load_transactions, make_synthetic
from fraud_app.models import (
    create,
    model_class,
    get_active_model_name,
    model_path,
    read_metadata,
    save_model,
)
from fraud_app.storage import list_training_runs
from fraud_app.training import TrainingPipeline, TrainingResult, cheapest_threshold, metrics_at_threshold
from fraud_app.ui.base import discover_sections, registered_sections
from fraud_app.ui.charts import EmbeddedChart
from fraud_app.ui.state import AppState
from fraud_app.ui.training import TrainingController, TrainingSection
from fraud_app.ui.training import controller as controller_module
from fraud_app.ui.training.charts import confusion_frame, confusion_heatmap, models_frame
from fraud_app.ui.training.hyperparameters import widget_for
from fraud_app.ui.training.controller import DEFAULT_COST_FN, DEFAULT_COST_FP, slider_floor
from fraud_app.ui.training.results import alerts_text, cost_text, result_note
from fraud_app.ui.training.saved_models import active_text
from fraud_app.ui.training.worker import SessionDispatcher, threshold_scores, transactions_per_day
from tests.ui.chart_items import item_objects


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


def chart_panes(layout: pn.viewable.Viewable) -> list[EmbeddedChart]:
    """The off-loop charts in ``layout`` (each an OffloopChart's component: a placeholder, then the chart's item)."""
    return [p for p in layout.select(EmbeddedChart) if "fds-chart" in p.css_classes]


class _Drawn:
    """A drawn chart as its rendered item says it: the figure's title text."""

    def __init__(self, item: str) -> None:
        doc = json.loads(item)["doc"]
        titles = [o["attributes"]["text"] for o in item_objects(doc) if o.get("name") == "Title"
                  and isinstance(o.get("attributes", {}).get("text"), str)]
        self.title = type("Title", (), {"text": titles[0] if titles else ""})()
        labels = [o["attributes"].get("label") for o in item_objects(doc) if o.get("name") == "LegendItem"]
        self.legend_labels = [label.get("value") if isinstance(label, dict) else label for label in labels]


def drawn(layout: pn.viewable.Viewable) -> list[Any]:
    """The charts drawn so far (placeholders left out), each with its figure's ``title.text``."""
    return [_Drawn(p.item) for p in chart_panes(layout) if p.item]


def widget(section: TrainingSection, css_class: str) -> pn.widgets.Widget:
    """The one widget of the rendered tab carrying ``css_class``."""
    found = [w for w in section.__panel__().select(pn.widgets.Widget) if css_class in w.css_classes]
    assert len(found) == 1, f"expected one widget with class {css_class!r}, found {len(found)}"
    return found[0]


@pytest.fixture
def state() -> AppState:
    return AppState()


@pytest.fixture
def section(state: AppState) -> TrainingSection:
    return TrainingSection(state=state)


@pytest.fixture
def ctrl(section: TrainingSection) -> TrainingController:
    return section.controller


def train(ctrl: TrainingController, timeout: float = 120.0) -> TrainingResult | None:
    ctrl.param.trigger("train")
    return ctrl.wait(timeout)


@pytest.fixture
def trained(ctrl: TrainingController) -> TrainingController:
    """The controller after one saved baseline run."""
    ctrl.param.update(kind="decision_tree", model_name="baseline", save=True)
    assert train(ctrl) is not None, ctrl.last_error
    return ctrl


# -- the tab --------------------------------------------------------------------------------------

def test_the_training_tab_is_registered_and_renders(section: TrainingSection) -> None:
    discover_sections()
    assert TrainingSection in registered_sections()
    assert section.__panel__().get_root() is not None
    ctrl = section.controller
    assert ctrl.running is False and ctrl.result is None and not ctrl.has_result
    # Nothing trained yet: Cancel is off, Train is on; the buttons follow the controller by reference.
    assert widget(section, "training-cancel").disabled and not widget(section, "training-train").disabled
    ctrl.model_name = "bad name!"
    assert widget(section, "training-train").disabled


def test_first_render_is_light_and_charts_follow_one_per_tick(state: AppState, monkeypatch) -> None:
    queued: list[Callable[[], None]] = []  # as on a server: later() waits for another event-loop callback
    monkeypatch.setattr(SessionDispatcher, "later", lambda self, fn, delay: queued.append(fn))
    section = TrainingSection(state=state)
    layout = section.__panel__()
    # The first render: the form, the runs and the saved models; no figures and no chart yet.
    results = [o for o in layout.select(pn.Column) if "training-results" in o.css_classes][0]
    assert not chart_panes(results) and not layout.select(pn.indicators.Number)
    assert not layout.select(pn.pane.HoloViews)  # no chart is ever rendered on the event loop
    assert not widget(section, "training-train").disabled
    built = []
    while queued:  # each step is its own event-loop callback
        queued.pop(0)()
        built.append((len(layout.select(pn.indicators.Number)), len(chart_panes(results))))
    assert built == [(6, 0), (6, 0), (6, 1), (6, 2), (6, 3)]
    assert not layout.select(pn.pane.HoloViews)
    assert widget(section, "training-threshold").visible


def test_train_waits_for_a_name_before_the_store_is_read(state: AppState) -> None:
    ctrl = TrainingController(state=state)  # the section calls load() once the page is shown
    assert ctrl.model_name == "" and not ctrl.name_ok
    ctrl.load()
    assert ctrl.model_name == "decision_tree_1" and ctrl.name_ok


def test_the_controller_holds_no_widgets(ctrl: TrainingController) -> None:
    assert not isinstance(ctrl, pn.viewable.Viewable)
    for value in vars(ctrl).values():
        assert not isinstance(value, pn.viewable.Viewable)
    assert all(not isinstance(getattr(ctrl, name), pn.viewable.Viewable) for name in ctrl.param)


def test_hyperparameters_change_with_the_kind_and_are_bounded(section: TrainingSection,
                                                              ctrl: TrainingController) -> None:
    ctrl.kind = "lightgbm"
    assert widget(section, "hp-lightgbm-learning_rate").visible
    lgbm = ctrl.hyperparameters["lightgbm"]
    assert widget(section, "hp-lightgbm-learning_rate").end == lgbm.param.learning_rate.softbounds[1] == 0.5
    with pytest.raises(ValueError):
        lgbm.learning_rate = 2.0  # beyond the declared hard bounds
    lgbm.n_estimators = 77
    assert ctrl.make_pipeline().params["n_estimators"] == 77
    # The default name follows the kind until the user types one.
    assert ctrl.model_name == "lightgbm_1"
    ctrl.model_name = "mine"
    ctrl.kind = "decision_tree"
    assert ctrl.model_name == "mine"


def test_one_declaration_drives_validation_ui_and_cli(section: TrainingSection, ctrl: TrainingController,
                                                     monkeypatch) -> None:
    """Change LightGBM's declared num_leaves once: the model's validation, the tab's widget and the CLI help follow."""
    from fraud_app.models.lgbm import LightGBMModel
    from fraud_app.training.cli import hyperparameter_help
    from fraud_app.ui.training.form import hyperparameter_panel

    declared = LightGBMModel.Params.param["num_leaves"]
    monkeypatch.setattr(declared, "bounds", (2, 40))
    monkeypatch.setattr(declared, "softbounds", (4, 32))
    monkeypatch.setattr(declared, "doc", "Leaves per tree, redeclared.")
    # Validation: the model refuses a value beyond the new hard bound.
    with pytest.raises(ValueError, match="num_leaves"):
        create("lightgbm", num_leaves=41)
    # UI: a fresh tab's values are the declared Params; its widget's range and help are the declaration's.
    values = TrainingController(state=AppState()).hyperparameters["lightgbm"]
    assert isinstance(values, LightGBMModel.Params)
    with pytest.raises(ValueError):
        values.num_leaves = 41
    panel = hyperparameter_panel("lightgbm", {"lightgbm": values})
    leaves = [w for w in panel.select(pn.widgets.Widget) if "hp-lightgbm-num_leaves" in w.css_classes]
    assert len(leaves) == 1 and (leaves[0].start, leaves[0].end) == (4, 32)
    assert leaves[0].description == "Leaves per tree, redeclared."
    # The tab shows every declared tunable and nothing else (settings such as n_jobs stay hidden).
    shown = {c.removeprefix("hp-lightgbm-") for w in panel.select(pn.widgets.Widget) for c in w.css_classes
             if c.startswith("hp-lightgbm-")}
    assert shown == set(LightGBMModel.Params.tunables()) and "n_jobs" not in shown
    # CLI: the help reads the same declaration.
    assert "num_leaves: Leaves per tree, redeclared; default 15; limits [2, 40]" in hyperparameter_help()


def test_none_choices_are_shown_as_text_and_passed_as_none(ctrl: TrainingController) -> None:
    ctrl.kind = "random_forest"
    forest = ctrl.hyperparameters["random_forest"]
    assert None in forest.param.max_features.objects
    forest.max_features = None
    params = ctrl.make_pipeline().params
    assert params["max_features"] is None and params["class_weight"] is None
    assert params["max_depth"] is None  # the unlimited default of an optional integer
    forest.class_weight = "balanced"
    assert ctrl.make_pipeline().params["class_weight"] == "balanced"
    # The widget shows None as the text "None" (Panel's Select would send an empty selection) and
    # hands the real None back to the declaration.
    select = widget_for(forest, "class_weight")
    assert select.value == "balanced" and select.options[:2] == ["None", "balanced"]
    select.value = "None"
    assert forest.class_weight is None and select.get_root().value == "None"
    forest.class_weight = "balanced"
    assert select.value == "balanced"


def test_aggregator_members_copies_weights_and_member_settings(ctrl: TrainingController) -> None:
    ctrl.kind = "aggregator"
    aggregator = ctrl.hyperparameters["aggregator"]
    # The model's declared default (LightGBM copies) is shown as one kind with copies.
    default = model_class("aggregator").Params.param["members"].default
    assert aggregator.member_list() == list(default)
    aggregator.param.update(members=["decision_tree", "lightgbm"], copies=2, weight_lightgbm=3.0)
    ctrl.hyperparameters["decision_tree"].max_depth = 6
    ctrl.seed = 5
    params = ctrl.make_pipeline().params
    assert [m["kind"] for m in params["members"]] == ["decision_tree", "decision_tree", "lightgbm", "lightgbm"]
    assert params["weights"] == [1.0, 1.0, 3.0, 3.0]
    assert params["members"][0]["params"]["max_depth"] == 6
    # Copies differ by seed: the aggregator seeds member i with the run's seed + i.
    model = create("aggregator", **params)
    assert [m.params["random_state"] for m in model.members] == [5, 6, 7, 8]
    aggregator.members = []
    with pytest.raises(ValueError, match="at least one member"):
        ctrl.make_pipeline()


# -- name validation ------------------------------------------------------------------------------

def test_name_is_validated_live_and_existing_names_are_flagged(section: TrainingSection,
                                                               ctrl: TrainingController) -> None:
    save_quick_model("taken")
    ctrl.save = True
    # Typing (value_input, every keystroke) updates the check without pressing Enter.
    widget(section, "training-name").value_input = "bad name!"
    assert ctrl.model_name == "bad name!"
    assert not ctrl.name_ok and ctrl.name_level == "danger"
    assert "invalid model name" in ctrl.name_status.lower()

    ctrl.model_name = "taken"
    assert not ctrl.name_ok and ctrl.name_level == "warning"
    assert "already exists" in ctrl.name_status

    ctrl.overwrite = True
    assert ctrl.name_ok and ctrl.name_level == "warning" and "replaced" in ctrl.name_status

    ctrl.param.update(overwrite=False, model_name="fresh_name")
    assert ctrl.name_ok and ctrl.name_level == "success"

    ctrl.model_name = ""
    assert not ctrl.name_ok  # saving needs a name
    ctrl.save = False
    assert ctrl.name_ok  # an unsaved run does not


def test_training_with_a_bad_name_does_not_start(ctrl: TrainingController, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(TrainingPipeline, "run", lambda *a, **k: calls.append(a))
    ctrl.model_name = "../escape"
    ctrl.param.trigger("train")
    assert not ctrl.running and calls == []
    assert "invalid model name" in ctrl.last_error
    assert list_training_runs() == []


# -- training -------------------------------------------------------------------------------------

def test_train_with_save_publishes_metrics_saves_and_records(ctrl: TrainingController, state: AppState) -> None:
    models_changed = EventCounter(state, "models_changed")
    ctrl.param.update(kind="decision_tree", model_name="baseline", save=True, seed=3)
    result = train(ctrl)

    assert result is not None and ctrl.last_error is None
    assert state.training_result is result and ctrl.has_result
    for key in ("f1", "precision", "recall", "pr_auc", "roc_auc", "threshold", "confusion_matrix"):
        assert key in result.metrics
    assert 0.0 < result.metrics["f1"] <= 1.0 and result.seed == 3
    assert (model_path("baseline") / "metadata.json").is_file()
    assert models_changed.count >= 1
    assert "baseline" in [m["name"] for m in ctrl.saved_models]

    runs = list_training_runs()
    assert len(runs) == 1 and runs[0]["model"] == "baseline" and runs[0]["saved"] is True
    assert ctrl.run_id == runs[0]["id"]
    assert list(ctrl.runs["model"]) == ["baseline"]
    assert ctrl.runs["f1"].iloc[0] == pytest.approx(result.metrics["f1"])

    # The figures at the validation-chosen threshold are the result's; progress and busy state reset.
    assert ctrl.threshold == pytest.approx(result.threshold)
    assert ctrl.threshold_metrics["f1"] == pytest.approx(result.metrics["f1"])
    assert ctrl.progress == 1.0 and ctrl.stage == "done" and not ctrl.running
    # The typed name is now taken: the next run needs another name or Overwrite.
    assert not ctrl.name_ok and "already exists" in ctrl.name_status


def test_results_view_binds_the_controller(section: TrainingSection, trained: TrainingController) -> None:
    """The indicators and charts (built after the first render) show the controller's figures."""
    f1 = [n for n in section.__panel__().select(pn.indicators.Number) if "metric-f1" in n.css_classes]
    assert len(f1) == 1 and f1[0].value == pytest.approx(trained.threshold_metrics["f1"])
    assert len(chart_panes(section.__panel__())) == 5  # the result's three, the comparison's two
    titles = [f.title.text for f in drawn(section.__panel__())]
    assert len(titles) == 3  # the comparison's charts wait for a comparison
    assert any(t.startswith("Reliability") for t in titles) and any(t.startswith("Precision-recall") for t in titles)
    trained.threshold = 0.01
    assert f1[0].value == pytest.approx(trained.threshold_metrics["f1"])


def test_train_without_save_writes_no_model_folder(section: TrainingSection, ctrl: TrainingController) -> None:
    ctrl.param.update(kind="decision_tree", model_name="scratch", save=False)
    result = train(ctrl)
    assert result is not None and not result.saved
    assert not model_path("scratch").exists()
    runs = list_training_runs()
    assert len(runs) == 1 and runs[0]["saved"] is False and runs[0]["model"] == "scratch"
    ctrl.threshold = 0.2
    assert widget(section, "training-save-threshold").disabled  # nothing saved to attach a threshold to
    assert ctrl.offered_model is None


def test_a_second_run_adds_a_row_to_the_runs_table(trained: TrainingController) -> None:
    trained.param.update(model_name="baseline_2", seed=1)
    train(trained)
    assert [r["model"] for r in list_training_runs()] == ["baseline_2", "baseline"]
    assert list(trained.runs["model"]) == ["baseline_2", "baseline"]
    # The saved-model buttons now act on the model just saved.
    assert trained.selected_model == "baseline_2"


def test_busy_state_resets_after_a_failure(section: TrainingSection, ctrl: TrainingController, monkeypatch,
                                           caplog) -> None:
    started, release = threading.Event(), threading.Event()
    notified: list[tuple[str, BaseException | None]] = []

    def failing_run(self, frame, progress=None, cancel=None):
        started.set()
        assert release.wait(30)
        raise RuntimeError("disk on fire")

    def record_notify(message: str, exc: BaseException | None = None) -> None:
        notified.append((message, exc))
        original_notify(message, exc)

    original_notify = controller_module.notify_error
    monkeypatch.setattr(TrainingPipeline, "run", failing_run)
    monkeypatch.setattr(controller_module, "notify_error", record_notify)
    ctrl.param.update(kind="decision_tree", model_name="will_fail", save=True)

    ctrl.param.trigger("train")
    assert started.wait(30)
    # While it runs: everything that changes the run is disabled, Cancel is enabled.
    assert ctrl.running
    assert widget(section, "training-train").disabled and not widget(section, "training-cancel").disabled
    assert widget(section, "training-kind").disabled and widget(section, "training-name").disabled
    assert widget(section, "hp-decision_tree-max_depth").disabled
    ctrl.param.trigger("train")  # a second click while running is ignored
    with caplog.at_level(logging.ERROR):
        release.set()
        ctrl.wait(30)

    assert not ctrl.running
    assert not widget(section, "training-train").disabled and widget(section, "training-cancel").disabled
    assert not widget(section, "training-kind").disabled and not widget(section, "hp-decision_tree-max_depth").disabled
    assert "disk on fire" in ctrl.last_error and ctrl.stage == "failed"
    assert [m for m, _ in notified] == ["Training failed"] and isinstance(notified[0][1], RuntimeError)
    assert any("Training failed" in r.getMessage() and r.exc_info for r in caplog.records)
    assert list_training_runs() == [] and not model_path("will_fail").exists()
    assert ctrl.result is None


def test_cancel_stops_a_running_lightgbm(ctrl: TrainingController) -> None:
    ctrl.param.update(kind="lightgbm", model_name="cancelled", save=True)
    ctrl.hyperparameters["lightgbm"].param.update(n_estimators=5000, early_stopping_rounds=0, learning_rate=0.001)
    seen_iterations: list[int] = []
    ctrl.param.watch(lambda e: seen_iterations.append(e.new) if e.new else None, "iteration")
    ctrl.param.trigger("train")
    # The progress follows LightGBM's boosting rounds.
    wait_until(lambda: len(seen_iterations) >= 2, timeout=120, what="two boosting rounds")
    assert ctrl.stage == "fit" and ctrl.total == 5000
    assert "boosting round" in ctrl.status
    assert seen_iterations == sorted(seen_iterations)
    ctrl.param.trigger("cancel")
    ctrl.wait(60)

    assert not ctrl.running and ctrl.stage == "cancelled"
    assert "Cancelled" in ctrl.status
    assert ctrl.result is None and ctrl.last_error is None
    assert not model_path("cancelled").exists()
    assert list_training_runs() == []


# -- the active model (issue 16, item 1) ----------------------------------------------------------

def test_the_first_saved_model_becomes_active_and_says_so(trained: TrainingController) -> None:
    assert get_active_model_name() == "baseline"
    assert trained.active_name == "baseline" and trained.active_how == "first_saved"
    assert trained.offered_model is None  # already active: nothing to offer
    assert "the first saved model" in active_text(trained.active_name, trained.active_how)


def test_training_never_changes_the_active_model_it_offers_to(ctrl: TrainingController, state: AppState) -> None:
    save_quick_model("lgb")
    ctrl.param.trigger("refresh")
    # The first saved model was pinned by the store when it was saved, and the tab says so.
    assert ctrl.active_name == "lgb" and ctrl.active_how == "first_saved"

    ctrl.param.update(kind="decision_tree", model_name="decision_tree_1", save=True)
    assert train(ctrl) is not None
    # What the API serves did not move to the newer, weaker model ...
    assert get_active_model_name() == "lgb"
    assert ctrl.active_name == "lgb" and ctrl.active_how == "first_saved"
    # ... the tab asks instead.
    assert ctrl.offered_model == "decision_tree_1"
    ctrl.param.trigger("dismiss_offer")
    assert ctrl.offered_model is None and get_active_model_name() == "lgb"

    ctrl.param.update(model_name="decision_tree_2", seed=1)
    train(ctrl)
    assert ctrl.offered_model == "decision_tree_2"
    models_changed = EventCounter(state, "models_changed")
    ctrl.param.trigger("activate_offered")
    assert get_active_model_name() == "decision_tree_2" and state.active_model == "decision_tree_2"
    assert ctrl.active_name == "decision_tree_2" and ctrl.active_how == "explicit"
    assert ctrl.offered_model is None and models_changed.count == 1


def test_active_model_origin_is_one_method(ctrl: TrainingController, monkeypatch) -> None:
    """The views and the offer read how the model became active from active_model_origin only."""
    save_quick_model("one")
    monkeypatch.setattr(TrainingController, "active_model_origin", lambda self, models=None: ("one", "explicit"))
    ctrl.param.trigger("refresh")
    assert (ctrl.active_name, ctrl.active_how) == ("one", "explicit")


# -- threshold, costs and saving the threshold (issue 16, item 5) ---------------------------------

def test_threshold_slider_recomputes_metrics_without_retraining(section: TrainingSection, trained: TrainingController,
                                                                monkeypatch) -> None:
    result = trained.result
    monkeypatch.setattr(TrainingPipeline, "run", lambda *a, **k: pytest.fail("retrained"))
    assert trained.threshold == pytest.approx(result.threshold)
    assert trained.threshold_log == pytest.approx(math.log10(result.threshold))
    # The slider's range was fitted to this result's scores.
    floor = slider_floor(np.asarray(result.test_scores), result.threshold)
    assert trained.param.threshold_log.bounds == (floor, 0.0)
    slider = widget(section, "training-threshold")
    assert (slider.start, slider.end, slider.value) == (floor, 0.0, pytest.approx(trained.threshold_log))
    assert trained.threshold_metrics["f1"] == pytest.approx(result.metrics["f1"])

    # Moving the (log-scaled) slider updates the threshold and the figures from the held-out scores.
    low = float(np.quantile(result.test_scores, 0.5))
    trained.threshold_log = math.log10(max(low, 10 ** trained.param.threshold_log.bounds[0], 0.001))
    assert trained.threshold == pytest.approx(10 ** trained.threshold_log)
    expected = metrics_at_threshold(result.y_test, result.test_scores, trained.threshold)
    got = trained.threshold_metrics
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    assert got["f1"] == pytest.approx(expected["f1"]) and got["recall"] == pytest.approx(expected["recall"])
    assert got["confusion_matrix"] != result.metrics["confusion_matrix"]  # a different operating point
    # Both charts follow (at once outside a server; a tick or two later on a server).
    assert trained.confusion_shown == got and trained.curve_shown == got
    # The exact threshold moves the slider.
    trained.threshold = 0.05
    assert trained.threshold_log == pytest.approx(math.log10(0.05))

    # The heat map shows these counts with Clear/Fraudulent labels.
    heat = confusion_heatmap(got["confusion_matrix"], got["threshold"]).get(0)
    counts = {(r.Actual, r.Predicted): r.Count for r in heat.dframe().itertuples()}
    (tn, fp), (fn, tp) = expected["confusion_matrix"]
    assert counts == {("Clear", "Clear"): tn, ("Clear", "Fraudulent"): fp,
                      ("Fraudulent", "Clear"): fn, ("Fraudulent", "Fraudulent"): tp}
    assert len(list_training_runs()) == 1


def test_the_slider_fits_lightgbm_like_scores() -> None:
    """Scores of a well-separated model: most near 1e-5, the useful thresholds 0.0007-0.08."""
    rng = np.random.default_rng(0)
    scores = np.r_[10 ** rng.normal(-5, 0.7, 50_000), rng.uniform(0.3, 1.0, 90)]
    low, high = slider_floor(scores, 0.02), 0.0
    useful = (math.log10(0.08) - math.log10(0.0007)) / (high - low)
    assert low <= math.log10(0.0007) and useful >= 0.3  # a linear 0-1 slider gives it 8 %
    # The model's own threshold is always inside the range, zero scores included.
    assert slider_floor(np.zeros(100), 1e-5) <= -5


def test_costs_breakdown_reference_and_alerts_per_day(trained: TrainingController) -> None:
    frame = load_transactions()
    assert trained.transactions_per_day == pytest.approx(transactions_per_day(frame))
    span_days = float(frame["time"].max() - frame["time"].min()) / 86_400
    assert trained.transactions_per_day == pytest.approx(len(frame) / span_days)

    trained.param.update(cost_fn=250.0, cost_fp=2.0, threshold=0.3)
    metrics = trained.threshold_metrics
    (_, fp), (fn, tp) = metrics["confusion_matrix"]
    assert metrics["cost"] == pytest.approx(250.0 * fn + 2.0 * fp)
    assert metrics["cost_missed"] == pytest.approx(250.0 * fn) and metrics["cost_alarms"] == pytest.approx(2.0 * fp)
    assert metrics["cost_reference"] == pytest.approx(250.0 * (fn + tp))  # flag nothing: every fraud missed
    assert metrics["saving"] == pytest.approx(metrics["cost_reference"] - metrics["cost"])
    n_test = len(trained.result.y_test)
    assert metrics["flagged"] == fp + tp and metrics["flag_rate"] == pytest.approx((fp + tp) / n_test)
    assert metrics["alerts_per_day"] == pytest.approx((fp + tp) / n_test * trained.transactions_per_day)

    text = cost_text(metrics, 250.0, 2.0)
    assert f"{fn:,} missed frauds × €250" in text and f"{fp:,} false alarms × €2" in text
    assert "Flag nothing" in text and f"€{metrics['cost_reference']:,.0f}" in text
    assert "alerts per day" in alerts_text(metrics, trained.transactions_per_day)
    assert "the data set's volume" in alerts_text(metrics, trained.transactions_per_day)


def test_costs_reset_for_a_new_model(trained: TrainingController) -> None:
    trained.param.update(cost_fn=900.0, cost_fp=40.0)
    trained.param.update(model_name="baseline_2", seed=2)
    train(trained)
    assert (trained.cost_fn, trained.cost_fp) == (DEFAULT_COST_FN, DEFAULT_COST_FP)
    (_, fp), (fn, _) = trained.threshold_metrics["confusion_matrix"]
    assert trained.threshold_metrics["cost"] == pytest.approx(DEFAULT_COST_FN * fn + DEFAULT_COST_FP * fp)


def test_costs_suggest_the_cheapest_threshold_on_the_training_rows(section: TrainingSection,
                                                                    trained: TrainingController) -> None:
    result = trained.result
    y_val, val_scores = threshold_scores(result)
    trained.param.update(cost_fn=500.0, cost_fp=1.0)
    assert trained.cheapest == pytest.approx(cheapest_threshold(y_val, val_scores, 500.0, 1.0))
    assert not widget(section, "training-use-cheapest").disabled
    trained.param.trigger("use_cheapest")
    assert trained.threshold == pytest.approx(trained.cheapest)
    (_, fp), (fn, _) = trained.threshold_metrics["confusion_matrix"]
    assert trained.threshold_metrics["cost"] == pytest.approx(500.0 * fn + 1.0 * fp)


def test_the_tab_trains_out_of_fold_and_the_cost_suggestion_never_sees_test_rows(
        trained: TrainingController) -> None:
    """The UI's default protocol is out-of-fold; the cheapest threshold uses the training rows' scores only."""
    result = trained.result
    assert trained.threshold_method == "oof" and result.threshold_method == "oof"
    assert result.model.fit_info["threshold_method"] == "oof"
    labels, scores = threshold_scores(result)
    # Out-of-fold: one score per training row, none of them a test row's.
    assert len(labels) == len(scores) == result.n_train
    result.threshold_scores = []
    assert threshold_scores(result) is None


def test_the_time_ordered_evaluation_is_passed_to_the_pipeline(ctrl: TrainingController) -> None:
    ctrl.param.update(kind="decision_tree", model_name="timed", save=False, split="time",
                      threshold_method="validation")
    pipeline = ctrl.make_pipeline()
    assert (pipeline.split, pipeline.threshold_method) == ("time", "validation")
    result = train(ctrl)
    assert result is not None and result.split == "time" and result.threshold_method == "validation"
    frame = load_transactions()
    train_rows, test_rows = pipeline.split_rows(frame)
    assert frame["time"].to_numpy()[train_rows].max() < frame["time"].to_numpy()[test_rows].min()
    assert "time-ordered split" in result_note(result, result.threshold, None)


def test_compare_saved_models_on_the_same_test_rows(section: TrainingSection, trained: TrainingController) -> None:
    """Two saved models, compared off the event loop: metrics side by side, curves overlaid, same rows."""
    trained.param.update(kind="lightgbm", model_name="lgb_cmp", save=True)
    trained.hyperparameters["lightgbm"].param.update(n_estimators=30)
    assert train(trained) is not None, trained.last_error
    assert set(trained.param.compare_names.objects) == {"baseline", "lgb_cmp"}
    button = widget(section, "training-compare")
    table = [t for t in section.__panel__().select(pn.widgets.Tabulator)
             if "training-compare-table" in t.css_classes][0]
    assert not table.visible  # no empty table before the first comparison
    trained.compare_names = ["baseline"]
    assert button.disabled
    trained.param.trigger("compare")
    assert trained.comparison is None and "at least two" in trained.compare_status

    trained.compare_names = ["lgb_cmp", "baseline"]
    assert not button.disabled
    trained.param.trigger("compare")
    comparison = trained.wait_compare(120)
    assert comparison is not None and not trained.comparing
    assert [m["name"] for m in comparison.models] == ["lgb_cmp", "baseline"]
    assert comparison.all_held_out  # both trained with the same split and seed
    # The rows are the ones each model was tested on: LightGBM's figures equal its training result's.
    assert comparison.models[0]["metrics"]["f1"] == pytest.approx(trained.result.metrics["f1"])
    assert comparison.models[0]["metrics"]["brier"] == pytest.approx(trained.result.metrics["brier"])
    assert table.visible and list(table.value["name"]) == ["lgb_cmp", "baseline"] and "brier" in table.value
    compared = [f for f in drawn(section.__panel__()) if "same test rows" in f.title.text]
    assert len(compared) == 2
    legend = {label for f in compared for label in f.legend_labels}
    assert any(label.startswith("lgb_cmp") for label in legend) and any(label.startswith("baseline") for label in legend)


def test_save_threshold_marks_unsaved_changes_and_updates_the_saved_model(
        section: TrainingSection, trained: TrainingController, state: AppState) -> None:
    save_button = widget(section, "training-save-threshold")
    # Nothing changed yet: no marker, nothing to save.
    assert not trained.threshold_unsaved and save_button.disabled
    models_changed = EventCounter(state, "models_changed")
    version = read_metadata("baseline")["version"]
    validation_chosen = trained.threshold

    trained.threshold = 0.3141
    assert trained.threshold_unsaved and not save_button.disabled
    trained.threshold = validation_chosen  # back where it was saved: nothing to save again
    assert not trained.threshold_unsaved and save_button.disabled

    trained.threshold = 0.3141
    trained.param.trigger("save_threshold")
    meta = read_metadata("baseline")
    assert meta["threshold"] == pytest.approx(0.3141) and meta["version"] != version
    assert trained.result.model.threshold == pytest.approx(0.3141)
    assert trained.saved_threshold == pytest.approx(0.3141) and not trained.threshold_unsaved
    assert save_button.disabled and models_changed.count == 1


# -- saved models ---------------------------------------------------------------------------------

def test_set_active_updates_the_store_and_the_state(ctrl: TrainingController, state: AppState) -> None:
    save_quick_model("first", seed=1)
    save_quick_model("second", seed=2)
    ctrl.param.trigger("refresh")
    assert set(ctrl.param.selected_model.objects) == {"first", "second"}
    models_changed = EventCounter(state, "models_changed")

    ctrl.selected_model = "second"
    ctrl.param.trigger("activate")
    assert get_active_model_name() == "second"
    assert state.active_model == "second" and ctrl.active_name == "second" and ctrl.active_how == "explicit"
    assert models_changed.count == 1
    table = models_frame(ctrl.saved_models, ctrl.active_name)
    assert list(table.loc[table["active"] == "✓", "name"]) == ["second"]
    ctrl.selected_model = "first"
    ctrl.param.trigger("activate")
    assert (ctrl.active_name, ctrl.active_how) == ("first", "explicit")


def test_delete_asks_for_confirmation(ctrl: TrainingController, state: AppState) -> None:
    save_quick_model("doomed")
    ctrl.param.trigger("refresh")
    ctrl.selected_model = "doomed"
    ctrl.param.trigger("activate")

    ctrl.param.trigger("delete")
    assert ctrl.pending_delete == "doomed"
    ctrl.param.trigger("keep_model")
    assert ctrl.pending_delete is None and model_path("doomed").exists()

    ctrl.param.trigger("delete")
    ctrl.param.trigger("confirm_delete")
    assert not model_path("doomed").exists()
    assert state.active_model is None and ctrl.selected_model is None
    assert ctrl.saved_models == [] and ctrl.pending_delete is None and ctrl.active_name is None


def test_confusion_frame_labels() -> None:
    frame = confusion_frame([[90, 3], [2, 5]])
    cells = {(r.Actual, r.Predicted): (r.Cell, r.Count) for r in frame.itertuples()}
    assert cells == {("Clear", "Clear"): ("TN", 90), ("Clear", "Fraudulent"): ("FP", 3),
                     ("Fraudulent", "Clear"): ("FN", 2), ("Fraudulent", "Fraudulent"): ("TP", 5)}
