"""The Training tab: choose and tune a model, train it off the event loop, inspect, compare, choose.

Everything a user sets is a Parameter of :class:`TrainingSection`; everything it shows is a
``constant`` output Parameter written with ``param.edit_constant``. Buttons are ``param.Event``s
and their side effects live in ``_on_*`` methods declared with ``@param.depends(..., watch=True)``.
Training runs on the process-wide runner of :mod:`fraud_app.ui.training.worker`; see that
module for how progress and results are handed back to the browser session.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import CancelledError, Future
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import BooleanFormatter, NumberFormatter

from fraud_app.models import (
    MODEL_KINDS,
    InvalidModelNameError,
    delete_model,
    get_active_model_name,
    list_models,
    model_exists,
    set_active_model,
    update_threshold,
    validate_model_name,
)
from fraud_app.storage import list_training_runs
from fraud_app.training import (
    ProgressEvent,
    TrainingCancelled,
    TrainingPipeline,
    TrainingResult,
    cheapest_threshold,
    metrics_at_threshold,
)
from fraud_app.ui.base import Section, catch_and_notify, notify_error, register_section
from fraud_app.ui.training import plots
from fraud_app.ui.training.hyperparameters import (
    AGGREGATOR,
    AggregatorHyperParameters,
    HyperParameters,
    hyperparameter_class,
    hyperparameter_widgets,
    widget_for,
)
from fraud_app.ui.training.worker import (
    RUNNER,
    ProgressRelay,
    SessionDispatcher,
    TrainingOutcome,
    run_training,
)

log = logging.getLogger(__name__)

#: How each kind is offered in the model choice.
KIND_LABELS = {
    "decision_tree": "Decision tree (baseline)",
    "lightgbm": "LightGBM",
    "random_forest": "Random forest",
    AGGREGATOR: "Aggregator (soft voting)",
}
#: How many runs the runs table shows.
RUNS_SHOWN = 200
#: Seconds between two pieces of UI work after a result or a threshold change (see _schedule_plots).
UI_STEP_PAUSE = 0.12
#: The slider's whole track stays visible (the theme draws only the part left of the handle).
_SLIDER_TRACK_CSS = ".noUi-target { background-color: #dfe5ec; border: 1px solid #c3ccd6; }"
_INDICATORS = (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall"),
               ("pr_auc", "PR-AUC"), ("roc_auc", "ROC-AUC"))


def _kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def _notify(level: str, message: str, duration: int = 5000) -> None:
    """Show a notification when a page is open (no-op in tests and notebooks without one)."""
    notifications = pn.state.notifications
    if notifications is not None:
        getattr(notifications, level)(message, duration=duration)


@register_section
class TrainingSection(Section):
    """Train, evaluate, compare and choose fraud models.

    Choose a kind and its hyper-parameters, a name (validated while typing), whether to save
    and the seed, then Train. Training runs on a worker thread; the progress bar follows its
    stages and LightGBM's boosting rounds, and Cancel stops it. The result shows F1, precision,
    recall, PR-AUC and ROC-AUC, the confusion matrix and the PR curve; a threshold slider
    recomputes the threshold-dependent figures from the held-out scores without retraining,
    costs suggest the cheapest threshold (on the validation split), and the chosen threshold can
    be saved with the model. Every run is recorded in ``training_runs`` and listed side by side;
    any saved model can be made the active one, or deleted.
    """

    title = "Training"
    icon = "⚙"
    order = 20

    # -- inputs -----------------------------------------------------------------------------
    kind = param.Selector(default="decision_tree", objects=list(MODEL_KINDS),
                          doc="Which kind of model to train.")
    model_name = param.String(
        default="", doc="Name to save the model under (letters, digits, '_' or '-', at most 64); "
                        "optional when the model is not saved.")
    save = param.Boolean(default=True, doc="Save the trained model to the model store (output/models/<name>/).")
    overwrite = param.Boolean(default=False, doc="Replace a saved model that has the same name.")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1),
                         doc="Seeds the train/test split and the model, so a run can be repeated.")
    train = param.Event(doc="Start training with the current choices.")
    cancel = param.Event(doc="Stop the running training (nothing is saved or recorded).")
    threshold = param.Number(default=0.5, bounds=(0.0, 1.0), step=0.001,
                             doc="Decision threshold: P(fraud) at or above it is flagged as fraud.")
    cost_fn = param.Number(default=100.0, bounds=(0.0, None), step=1.0,
                           doc="Cost of one missed fraud (false negative), in any currency unit.")
    cost_fp = param.Number(default=5.0, bounds=(0.0, None), step=1.0,
                           doc="Cost of one false alarm (false positive), in the same unit.")
    use_cheapest = param.Event(doc="Move the threshold to the cheapest one for the given costs.")
    save_threshold = param.Event(doc="Save the chosen threshold with the trained (saved) model.")
    selected_model = param.Selector(default=None, objects=[], allow_None=True,
                                    doc="The saved model the buttons below act on.")
    activate = param.Event(doc="Make the selected saved model the active one (Inference and API default).")
    delete = param.Event(doc="Ask to delete the selected saved model.")
    confirm_delete = param.Event(doc="Delete the model awaiting confirmation, for good.")
    keep_model = param.Event(doc="Abandon the pending deletion.")
    refresh = param.Event(doc="Reload the runs table and the saved models.")

    # -- outputs ----------------------------------------------------------------------------
    hyperparameters = param.Dict(default={}, constant=True,
                                 doc="Kind -> this tab's HyperParameters object for that kind.")
    running = param.Boolean(default=False, constant=True, doc="True while a training of this tab runs.")
    progress = param.Number(default=0.0, bounds=(0.0, 1.0), constant=True,
                            doc="Progress of the current training, 0 to 1.")
    stage = param.String(default="", constant=True, doc="Stage of the current training (e.g. 'fit').")
    status = param.String(default="Ready.", constant=True, doc="What the training is doing, in words.")
    iteration = param.Integer(default=None, allow_None=True, constant=True,
                              doc="Current boosting round / tree of an iterating fit (None otherwise).")
    total = param.Integer(default=None, allow_None=True, constant=True,
                          doc="Planned rounds / trees of an iterating fit (None otherwise).")
    name_ok = param.Boolean(default=True, constant=True, doc="Whether the name allows training now.")
    name_status = param.String(default="", constant=True, doc="What the name check says.")
    name_level = param.Selector(default="success", objects=["success", "warning", "danger"], constant=True,
                                doc="Severity of the name check (alert colour).")
    result = param.ClassSelector(class_=TrainingResult, default=None, allow_None=True, constant=True,
                                 doc="The latest successful training of this tab.")
    run_id = param.Integer(default=None, allow_None=True, constant=True,
                           doc="The training_runs row id of the latest result (None if not recorded).")
    threshold_metrics = param.Dict(default={}, constant=True,
                                   doc="F1, precision, recall, confusion matrix and test cost at the threshold.")
    confusion_shown = param.Dict(default={}, constant=True,
                                 doc="The figures the confusion-matrix plot shows (threshold_metrics, a tick later).")
    curve_shown = param.Dict(default={}, constant=True,
                             doc="The figures the PR-curve plot marks (threshold_metrics, two ticks later).")
    cheapest = param.Number(default=None, allow_None=True, constant=True,
                            doc="Threshold with the lowest cost on the validation split (None if unknown).")
    runs = param.DataFrame(default=None, allow_None=True, constant=True,
                           doc="The recorded training runs, newest first (see plots.RUN_COLUMNS).")
    saved_models = param.List(default=[], constant=True, doc="Metadata of the saved models, newest first.")
    active_name = param.String(default=None, allow_None=True, constant=True,
                               doc="The store's active model: the default of the Inference tab and the API.")
    pending_delete = param.String(default=None, allow_None=True, constant=True,
                                  doc="The saved model awaiting delete confirmation.")
    last_error = param.String(default=None, allow_None=True, constant=True,
                              doc="Why the latest training could not start or failed (None after a success).")

    def __init__(self, **params: Any) -> None:
        # Per-instance outputs, given at construction (constant afterwards).
        params["hyperparameters"] = {kind: hyperparameter_class(kind)() for kind in self.param.kind.objects}
        params["runs"] = plots.runs_frame([])
        super().__init__(**params)
        self._future: Future | None = None
        self._cancel_event: threading.Event | None = None
        self._started_at = 0.0
        self._destroy_hooked = False
        self._auto_name: str | None = None
        self._y_test = np.zeros(0, dtype=np.int8)
        self._scores = np.zeros(0)
        self._validation: tuple[np.ndarray, np.ndarray] | None = None
        self._plots_pending = False
        self._build_widgets()
        self._layout = self._build_layout()
        self._on_kind()
        self._update_name_status()
        self._update_controls()
        pn.state.onload(self._load)

    # -- widgets and layout -----------------------------------------------------------------
    def _build_widgets(self) -> None:
        self._kind_select = pn.widgets.Select.from_param(
            self.param.kind, label="Model", options={_kind_label(k): k for k in self.param.kind.objects},
            css_classes=["training-kind"])
        self._name_input = pn.widgets.TextInput.from_param(
            self.param.model_name, onkeyup=True, label="Model name", placeholder="e.g. lightgbm_1",
            css_classes=["training-name"])
        self._name_alert = pn.pane.Alert("", alert_type="success", margin=(0, 10), visible=False,
                                         css_classes=["training-name-status"])
        self._save_box = pn.widgets.Checkbox.from_param(self.param.save, label="Save the model",
                                                        css_classes=["training-save"])
        self._overwrite_box = pn.widgets.Checkbox.from_param(
            self.param.overwrite, label="Overwrite an existing model", css_classes=["training-overwrite"])
        self._seed_input = pn.widgets.IntInput.from_param(self.param.seed, label="Seed", css_classes=["training-seed"])
        self._hp_panels, hp_widgets = self._build_hyperparameter_panels()
        self._hp_container = pn.Column(sizing_mode="stretch_width", margin=0)
        self._train_button = pn.widgets.Button.from_param(
            self.param.train, label="Train", color="primary", width=120)
        self._cancel_button = pn.widgets.Button.from_param(
            self.param.cancel, label="Cancel", color="warning", width=120)
        self._progress_bar = pn.indicators.Progress(
            value=0, max=1000, active=False, bar_color="primary", sizing_mode="stretch_width", height=18,
            css_classes=["training-progress"])
        self._status_text = pn.pane.Markdown(self.status, margin=(0, 10), css_classes=["training-status"])
        self._config_widgets: list[pn.widgets.Widget] = [
            self._kind_select, self._name_input, self._save_box, self._overwrite_box, self._seed_input, *hp_widgets]

        # Results.
        self._placeholder = pn.pane.Markdown(
            "### No results yet\nChoose a model on the left and click **Train**. The metrics, the confusion "
            "matrix and the precision-recall curve of the held-out test split appear here.")
        self._indicators = {
            key: pn.indicators.Number(label=label, value=0.0, format="{value:.3f}", font_size="26pt",
                                      title_size="11pt", default_color="#1f4e79", margin=(0, 18),
                                      css_classes=[f"metric-{key}"])
            for key, label in _INDICATORS}
        self._result_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._confusion_pane = pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self._confusion_element, self.param.confusion_shown)),
            sizing_mode="stretch_width", min_width=320)
        self._pr_pane = pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self._pr_element, self.param.curve_shown)),
            sizing_mode="stretch_width", min_width=320)
        self._threshold_slider = pn.widgets.FloatSlider.from_param(
            self.param.threshold, label="Decision threshold", step=0.001, format="0.0000",
            sizing_mode="stretch_width", min_width=300, css_classes=["training-threshold"],
            stylesheets=[_SLIDER_TRACK_CSS])
        self._threshold_input = pn.widgets.FloatInput.from_param(
            self.param.threshold, label="Exact threshold", step=0.001, format="0.0000", width=140)
        self._cost_fn_input = pn.widgets.FloatInput.from_param(self.param.cost_fn, label="Cost of a missed fraud",
                                                               width=170)
        self._cost_fp_input = pn.widgets.FloatInput.from_param(self.param.cost_fp, label="Cost of a false alarm",
                                                               width=170)
        self._cheapest_text = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._cheapest_button = pn.widgets.Button.from_param(
            self.param.use_cheapest, label="Use the cheapest threshold", color="default")
        self._save_threshold_button = pn.widgets.Button.from_param(
            self.param.save_threshold, label="Save threshold with the model", color="success")

        # Runs and saved models.
        number = NumberFormatter(format="0.000")
        self._runs_table = pn.widgets.Tabulator(
            self.runs, disabled=True, show_index=False, pagination="local", page_size=8,
            sizing_mode="stretch_width", layout="fit_data_stretch", frozen_columns=["id"],
            css_classes=["training-runs"],
            formatters={**{key: number for key in plots.RUN_METRICS},
                        "duration_s": NumberFormatter(format="0.0"), "saved": BooleanFormatter()},
            titles={"created_at": "when (UTC)", "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC", "f1": "F1",
                    "duration_s": "seconds"})
        self._models_table = pn.widgets.Tabulator(
            plots.models_frame([], None), disabled=True, show_index=False, sizing_mode="stretch_width",
            css_classes=["saved-models"],
            layout="fit_data_stretch", pagination="local", page_size=6,
            formatters={"f1": number, "pr_auc": number, "threshold": NumberFormatter(format="0.0000")},
            titles={"pr_auc": "PR-AUC", "f1": "F1", "saved_at": "saved (UTC)"})
        self._model_select = pn.widgets.Select.from_param(self.param.selected_model, label="Saved model", width=240)
        self._activate_button = pn.widgets.Button.from_param(
            self.param.activate, label="Make active", color="primary")
        self._delete_button = pn.widgets.Button.from_param(
            self.param.delete, label="Delete…", color="danger", variant="outline")
        self._confirm_text = pn.pane.Markdown("")
        self._confirm_button = pn.widgets.Button.from_param(
            self.param.confirm_delete, label="Yes, delete it", color="danger")
        self._keep_button = pn.widgets.Button.from_param(self.param.keep_model, label="Keep it")
        self._confirm_row = pn.Row(self._confirm_text, self._confirm_button, self._keep_button, visible=False)
        self._active_text = pn.pane.Markdown("")
        self._refresh_button = pn.widgets.Button.from_param(
            self.param.refresh, label="Refresh", color="light", width=110)

    def _build_hyperparameter_panels(self) -> tuple[dict[str, pn.viewable.Viewable], list[pn.widgets.Widget]]:
        """One hyper-parameter panel per kind; the aggregator's shows its members' own settings."""
        panels: dict[str, pn.viewable.Viewable] = {}
        widgets: list[pn.widgets.Widget] = []
        for kind, values in self.hyperparameters.items():
            if isinstance(values, AggregatorHyperParameters):
                continue
            kind_widgets = hyperparameter_widgets(values, sizing_mode="stretch_width")
            widgets.extend(kind_widgets)
            panels[kind] = pn.Column(*kind_widgets, sizing_mode="stretch_width", margin=0)
        aggregator = self.hyperparameters.get(AGGREGATOR)
        if isinstance(aggregator, AggregatorHyperParameters):
            members = widget_for(aggregator, "members", label="Members (probabilities are averaged)",
                                 sizing_mode="stretch_width")
            copies = widget_for(aggregator, "copies", sizing_mode="stretch_width")
            widgets.extend([members, copies])
            weights, cards = [], []
            for member in aggregator.member_kinds:
                shown = pn.bind(lambda chosen, member=member: member in chosen, aggregator.param.members)
                weight = widget_for(aggregator, aggregator.weight_name(member), visible=shown,
                                    sizing_mode="stretch_width")
                weights.append(weight)
                member_values = self.hyperparameters.get(member)
                if isinstance(member_values, HyperParameters):
                    member_widgets = hyperparameter_widgets(member_values, sizing_mode="stretch_width")
                    widgets.extend(member_widgets)
                    cards.append(pn.Card(*member_widgets, title=f"{_kind_label(member)} member", collapsed=True,
                                         visible=shown, sizing_mode="stretch_width"))
            widgets.extend(weights)
            panels[AGGREGATOR] = pn.Column(
                members, copies, *weights,
                pn.pane.Markdown("Members share the aggregator's split; member *i* is seeded with the seed + *i*. "
                                 "Their settings below are the same as on their own kind.",
                                 styles={"font-size": "0.85em"}),
                *cards, sizing_mode="stretch_width", margin=0)
        return panels, widgets

    def _build_layout(self) -> pn.viewable.Viewable:
        config = pn.Column(
            pn.pane.Markdown("### Model"),
            self._kind_select, self._name_input, self._name_alert,
            pn.Row(self._save_box, self._overwrite_box), self._seed_input,
            pn.Card(self._hp_container, title="Hyper-parameters", sizing_mode="stretch_width", margin=(10, 5)),
            pn.Row(self._train_button, self._cancel_button),
            self._progress_bar, self._status_text,
            width=360, margin=(0, 20, 0, 0),
        )
        threshold_card = pn.Card(
            pn.pane.Markdown(
                "Figures above follow this threshold, recomputed from the held-out test scores without "
                "retraining. The cheapest threshold is found on the **validation** split (the one the model's "
                "own threshold came from), so the test split is never used to tune it.",
                styles={"font-size": "0.9em"}),
            self._threshold_slider,
            pn.Row(self._threshold_input, self._cost_fn_input, self._cost_fp_input),
            self._cheapest_text,
            pn.Row(self._cheapest_button, self._save_threshold_button),
            title="Threshold and costs", sizing_mode="stretch_width",
        )
        self._results = pn.Column(
            pn.Row(*self._indicators.values(), sizing_mode="stretch_width"),
            self._result_note,
            pn.Row(self._confusion_pane, self._pr_pane, sizing_mode="stretch_width"),
            threshold_card,
            visible=False, sizing_mode="stretch_width",
        )
        history = pn.Card(
            pn.Row(pn.pane.Markdown("Every run of every session, newest first."), pn.layout.HSpacer(),
                   self._refresh_button),
            self._runs_table, title="Training runs", sizing_mode="stretch_width",
        )
        models = pn.Card(
            self._active_text, self._models_table,
            pn.Row(self._model_select, self._activate_button, self._delete_button),
            self._confirm_row, title="Saved models", sizing_mode="stretch_width",
        )
        main = pn.Column(self._placeholder, self._results, history, models, sizing_mode="stretch_width")
        return pn.Row(config, main, sizing_mode="stretch_width", name=self.title)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _load(self) -> None:
        """Deferred start-up: fill the runs table and the saved models once the page is shown.

        The tables keep their columns (only rows change), so updating them while their
        JavaScript is still being built is safe. A failure is shown, not raised.
        """
        try:
            self._refresh_runs()
            self._refresh_models()
        except Exception as exc:
            notify_error("Could not read the training runs or the saved models", exc)

    # -- model choice, name and controls ----------------------------------------------------
    @param.depends("kind", watch=True)
    def _on_kind(self) -> None:
        panel = self._hp_panels.get(self.kind)
        self._hp_container.objects = [panel] if panel is not None else [
            pn.pane.Markdown("This kind has no tunable hyper-parameters.")]
        if not self.model_name or self.model_name == self._auto_name:
            self._auto_name = self._suggest_name(self.kind)
            self.model_name = self._auto_name

    @staticmethod
    def _suggest_name(kind: str) -> str:
        """``<kind>_<n>`` with the smallest n not taken by a saved model."""
        n = 1
        while model_exists(f"{kind}_{n}"):
            n += 1
        return f"{kind}_{n}"

    @param.depends("model_name", "save", "overwrite", "state.models_changed", watch=True)
    def _update_name_status(self) -> None:
        """Check the name against the store's rule and existing models, live."""
        name = self.model_name
        ok, level, message = True, "success", ""
        if not name:
            if self.save:
                ok, level, message = False, "danger", "Enter a name to save the model."
            else:
                message = "The model will not be saved; the run is recorded without a name."
        else:
            try:
                validate_model_name(name)
            except InvalidModelNameError as exc:
                ok, level, message = False, "danger", str(exc).capitalize()
            else:
                exists = model_exists(name)
                if exists and self.save and not self.overwrite:
                    ok, level = False, "warning"
                    message = f"A model named **{name}** already exists: tick *Overwrite* or choose another name."
                elif exists and self.save:
                    level, message = "warning", f"The saved model **{name}** will be replaced."
                elif self.save:
                    message = f"Will be saved as `output/models/{name}/`."
                else:
                    message = "The model will not be saved (the run is still recorded)."
        with param.edit_constant(self):
            self.param.update(name_ok=ok, name_level=level, name_status=message)

    @param.depends("name_status", "name_level", watch=True)
    def _show_name_status(self) -> None:
        self._name_alert.param.update(object=self.name_status, alert_type=self.name_level,
                                      visible=bool(self.name_status))

    @param.depends("running", "name_ok", "result", "cheapest", "selected_model", "pending_delete", watch=True)
    def _update_controls(self) -> None:
        """Enable what can be used now: nothing that changes the run while one is running."""
        busy = self.running
        for widget in self._config_widgets:
            widget.disabled = busy
        self._train_button.disabled = busy or not self.name_ok
        self._cancel_button.disabled = not busy
        self._progress_bar.active = busy
        self._save_threshold_button.disabled = self.result is None or not self.result.saved
        self._cheapest_button.disabled = self.cheapest is None
        no_model = self.selected_model is None
        self._activate_button.disabled = no_model
        self._delete_button.disabled = no_model or self.pending_delete is not None
        self._confirm_row.visible = self.pending_delete is not None
        self._confirm_text.object = (
            f"Delete **{self.pending_delete}** and its files for good?" if self.pending_delete else "")

    # -- training ---------------------------------------------------------------------------
    def _model_params(self) -> dict[str, Any]:
        """The hyper-parameters for ``create(kind, ...)``; aggregator members carry their own."""
        values = self.hyperparameters[self.kind].values()
        if self.kind != AGGREGATOR:
            return values
        if not values["members"]:
            raise ValueError("Choose at least one member model for the aggregator.")
        members = []
        for member in values["members"]:
            member_values = self.hyperparameters.get(member)
            params = member_values.values() if isinstance(member_values, HyperParameters) else {}
            # No random_state: the aggregator seeds member i with its seed + i (copies differ).
            members.append({"kind": member, "params": params})
        return {"members": members, "weights": values["weights"]}

    def make_pipeline(self) -> TrainingPipeline:
        """The TrainingPipeline for the current choices.

        Raises
        ------
        ValueError
            naming the problem: invalid name, taken name without overwrite, bad hyper-parameter.
        """
        name = self.model_name or None
        return TrainingPipeline(self.kind, self._model_params(), name=name, save=self.save,
                                overwrite=self.overwrite, seed=self.seed)

    @param.depends("train", watch=True)
    def _on_train(self) -> None:
        """Start a training on the process-wide runner (never on the event loop)."""
        if self.running:
            return
        try:
            pipeline = self.make_pipeline()
        except (ValueError, LookupError) as exc:
            with param.edit_constant(self):
                self.last_error = str(exc)
            notify_error("Cannot start training", exc)
            return
        dispatch = SessionDispatcher.for_current_session()
        self._hook_session_end(dispatch)
        cancel = threading.Event()
        relay = ProgressRelay(dispatch, self._apply_progress)
        self._set_running(True, status="Queued: waiting for a free training slot…" if RUNNER.full
                          else f"Starting {_kind_label(self.kind)}…")
        try:
            future = RUNNER.submit(run_training, pipeline, self.state.dataset, relay, cancel)
        except BaseException:
            self._set_running(False, status="Could not start the training.")
            raise
        self._future, self._cancel_event = future, cancel
        future.add_done_callback(lambda done: dispatch(lambda: self._finish(done, relay)))
        log.info("training %s (name %r, save %s, seed %d) submitted", self.kind, pipeline.name, pipeline.save,
                 pipeline.seed)

    def _hook_session_end(self, dispatch: SessionDispatcher) -> None:
        """Cancel this tab's training when its browser session ends (nobody would see it)."""
        if self._destroy_hooked or not dispatch.served:
            return
        self._destroy_hooked = True

        def on_destroyed(_session_context: Any) -> None:
            if self._cancel_event is not None:
                self._cancel_event.set()

        dispatch.doc.on_session_destroyed(on_destroyed)

    def _set_running(self, running: bool, status: str | None = None) -> None:
        if running:
            self._started_at = time.monotonic()
        # Held: the controls change together, in one message to the browser.
        with pn.io.hold(), param.edit_constant(self):
            updates: dict[str, Any] = {"running": running}
            if running:
                updates.update(progress=0.0, stage="queued", iteration=None, total=None, last_error=None)
            if status is not None:
                updates["status"] = status
            self.param.update(updates)

    def _apply_progress(self, event: ProgressEvent) -> None:
        """Show a progress event (runs on the session's event loop)."""
        if not self.running:
            return
        with pn.io.hold(), param.edit_constant(self):
            self.param.update(progress=min(1.0, max(0.0, float(event.fraction))), stage=event.stage,
                              iteration=event.iteration, total=event.total,
                              status=f"**{event.stage.capitalize()}** · {event.message}")

    @param.depends("progress", "status", "running", watch=True)
    def _show_progress(self) -> None:
        self._progress_bar.value = int(round(self.progress * self._progress_bar.max))
        elapsed = f" · {time.monotonic() - self._started_at:.1f} s" if self.running else ""
        self._status_text.object = f"{self.status}{elapsed}"

    @param.depends("cancel", watch=True)
    def _on_cancel(self) -> None:
        """Ask the running training to stop at its next check (each stage or boosting round)."""
        if not self.running or self._cancel_event is None:
            return
        self._cancel_event.set()
        if self._future is not None:
            self._future.cancel()  # only succeeds while it is still queued
        with param.edit_constant(self):
            self.status = "Cancelling…"

    def _finish(self, future: Future, relay: ProgressRelay) -> None:
        """Publish the outcome of a training job (on the session); the busy state always resets."""
        relay.close()
        with pn.io.hold():  # one combined patch to the browser instead of one message per change
            self._finish_held(future)

    def _finish_held(self, future: Future) -> None:
        try:
            outcome: TrainingOutcome = future.result()
            started = time.perf_counter()
            self._publish(outcome)
            log.info("published the %s result in %.0f ms", outcome.result.kind, (time.perf_counter() - started) * 1000)
        except (TrainingCancelled, CancelledError):
            log.info("training %s cancelled", self.kind)
            with param.edit_constant(self):
                self.param.update(status="Cancelled: nothing was saved or recorded.", stage="cancelled")
            _notify("info", "Training cancelled.")
        except Exception as exc:
            with param.edit_constant(self):
                self.param.update(last_error=str(exc), status=f"**Failed:** {exc}", stage="failed")
            notify_error("Training failed", exc)
        finally:
            self._future = self._cancel_event = None
            self._set_running(False)

    def _publish(self, outcome: TrainingOutcome) -> None:
        """Show a finished run: figures first; plots, tables and other tabs follow moments later.

        Splitting the work into short callbacks with pauses in between keeps the server
        answering other sessions and the REST API while a result is published.
        (There is no success toast: the status line says it, and adding a notification makes
        Bokeh re-walk the whole document.)
        """
        result = outcome.result
        self._y_test = np.asarray(result.y_test, dtype=np.int8)
        self._scores = np.asarray(result.test_scores, dtype=np.float64)
        self._validation = outcome.validation
        with param.edit_constant(self):
            self.param.update(
                result=result, run_id=outcome.run_id, threshold=float(result.threshold), last_error=None,
                progress=1.0, stage="done",
                status=(f"**Done** in {result.duration_s:.1f} s · F1 {result.metrics['f1']:.3f}"
                        + (f" · saved as `{result.name}`" if result.saved else " · not saved")))
        self._update_cheapest()
        self.state.set_training_result(result)
        SessionDispatcher.for_current_session().later(lambda: self._after_publish(outcome), UI_STEP_PAUSE)

    @catch_and_notify("Could not refresh the runs and the saved models")
    def _after_publish(self, outcome: TrainingOutcome) -> None:
        """The second half of publishing: the runs table, the saved models, the other tabs."""
        with pn.io.hold():
            self._after_publish_held(outcome)

    def _after_publish_held(self, outcome: TrainingOutcome) -> None:
        result = outcome.result
        self._refresh_runs()
        if outcome.record_error is not None:
            notify_error("The model was trained but the run could not be recorded", outcome.record_error)
        if result.saved:
            if self.model_name == self._auto_name:
                self._auto_name = self._suggest_name(self.kind)
                self.model_name = self._auto_name
            self.state.param.trigger("models_changed")

    # -- results ----------------------------------------------------------------------------
    @param.depends("threshold", "result", "cost_fn", "cost_fp", watch=True)
    def _update_threshold_metrics(self) -> None:
        """Recompute the threshold-dependent figures from the held-out scores (no retraining)."""
        if self.result is None or not len(self._scores):
            metrics: dict[str, Any] = {}
        else:
            metrics = metrics_at_threshold(self._y_test, self._scores, self.threshold)
            (_, fp), (fn, _) = metrics["confusion_matrix"]
            metrics["cost"] = self.cost_fn * fn + self.cost_fp * fp
        with param.edit_constant(self):
            self.threshold_metrics = metrics

    @param.depends("cost_fn", "cost_fp", watch=True)
    def _update_cheapest(self) -> None:
        """The cheapest threshold for the costs, on the validation split."""
        value = None
        if self.result is not None and self._validation is not None:
            y_val, val_scores = self._validation
            value = cheapest_threshold(y_val, val_scores, self.cost_fn, self.cost_fp)
        with param.edit_constant(self):
            self.cheapest = value

    @param.depends("threshold_metrics", "cheapest", watch=True)
    def _show_results(self) -> None:
        result, metrics = self.result, self.threshold_metrics
        self._placeholder.visible = result is None
        self._results.visible = result is not None
        if result is None or not metrics:
            return
        for key in ("f1", "precision", "recall"):
            self._indicators[key].value = float(metrics[key])
        for key in ("pr_auc", "roc_auc"):
            value = result.metrics.get(key)
            self._indicators[key].value = float("nan") if value is None else float(value)
        self._result_note.object = (
            f"**{_kind_label(result.kind)}**{f' `{result.name}`' if result.name else ''} · held-out test split: "
            f"{result.metrics['n_test']:,} transactions, {result.metrics['n_test_fraud']:,} frauds · "
            f"F1, precision and recall at threshold **{self.threshold:.4f}** (validation-chosen: "
            f"{result.threshold:.4f}) · trained in {result.duration_s:.1f} s"
            + (f" · run #{self.run_id}" if self.run_id is not None else ""))
        cost = metrics.get("cost")
        if self.cheapest is None:
            self._cheapest_text.object = (
                f"Cost on the test split at this threshold: **{cost:,.0f}**. No cheapest-threshold suggestion: "
                "the validation split could not be rebuilt (see the log).")
        else:
            self._cheapest_text.object = (
                f"Cost on the test split at this threshold: **{cost:,.0f}** · cheapest threshold for these "
                f"costs on the validation split: **{self.cheapest:.4f}**")

    @param.depends("threshold_metrics", watch=True)
    def _schedule_plots(self) -> None:
        """Redraw the plots a moment later, one plot at a time, coalescing slider moves.

        Redrawing a HoloViews plot takes tens of milliseconds; done one at a time with a short
        pause (``UI_STEP_PAUSE``) in between, the server answers other requests (other sessions,
        the REST API) meanwhile, and a fast-moving slider redraws only for the latest threshold.
        Outside a server they are redrawn at once.
        """
        if self._plots_pending:
            return
        self._plots_pending = True
        SessionDispatcher.for_current_session().later(self._show_confusion, UI_STEP_PAUSE)

    def _show_confusion(self) -> None:
        self._plots_pending = False
        with pn.io.hold(), param.edit_constant(self):
            self.confusion_shown = self.threshold_metrics
        SessionDispatcher.for_current_session().later(self._show_curve, UI_STEP_PAUSE)

    def _show_curve(self) -> None:
        with pn.io.hold(), param.edit_constant(self):
            self.curve_shown = self.threshold_metrics

    def _confusion_element(self, metrics: dict[str, Any]) -> hv.Overlay:
        matrix = metrics.get("confusion_matrix") if metrics else None
        return plots.confusion_heatmap(matrix, metrics.get("threshold") if metrics else None)

    def _pr_element(self, metrics: dict[str, Any]) -> hv.Overlay:
        result = self.result
        if result is None or not metrics:
            return plots.pr_curve_plot(None)
        chosen = {"recall": metrics["recall"], "precision": metrics["precision"], "threshold": metrics["threshold"]}
        own = {"recall": result.metrics["recall"], "precision": result.metrics["precision"],
               "threshold": result.threshold}
        return plots.pr_curve_plot(result.pr_curve, chosen, own)

    @param.depends("use_cheapest", watch=True)
    def _on_use_cheapest(self) -> None:
        if self.cheapest is not None:
            self.threshold = self.cheapest

    @param.depends("save_threshold", watch=True)
    @catch_and_notify("Could not save the threshold")
    def _on_save_threshold(self) -> None:
        """Write the chosen threshold into the saved model's metadata (bumps its version)."""
        result = self.result
        if result is None or not result.saved or not result.name:
            raise ValueError("only a saved model keeps a threshold: train with 'Save the model' ticked first")
        meta = update_threshold(result.name, self.threshold)
        result.model.threshold = float(meta["threshold"])
        result.model.version = meta.get("version")
        log.info("threshold of %r set to %.6f", result.name, self.threshold)
        _notify("success", f"Threshold {self.threshold:.4f} saved with {result.name}.")
        self.state.param.trigger("models_changed")

    # -- runs and saved models --------------------------------------------------------------
    @param.depends("refresh", watch=True)
    @catch_and_notify("Could not refresh")
    def _on_refresh(self) -> None:
        self._refresh_runs()
        self._refresh_models()

    def _refresh_runs(self) -> None:
        frame = plots.runs_frame(list_training_runs(limit=RUNS_SHOWN))
        with param.edit_constant(self):
            self.runs = frame

    @param.depends("runs", watch=True)
    def _show_runs(self) -> None:
        if not self.runs.equals(self._runs_table.value):
            self._runs_table.value = self.runs

    @param.depends("state.models_changed", watch=True)
    @catch_and_notify("Could not list the saved models")
    def _refresh_models(self) -> None:
        models = list_models()
        names = [meta["name"] for meta in models]
        active = get_active_model_name()
        known = set(self.param.selected_model.objects)
        with param.edit_constant(self):
            self.param.update(saved_models=models, active_name=active)
        new = [name for name in names if name not in known]  # newest first
        if new and known:
            selected = new[0]  # just saved: the buttons act on it
        elif self.selected_model in names:
            selected = self.selected_model
        else:
            selected = active or (names[0] if names else None)
        self.param.selected_model.objects = names
        self.selected_model = selected
        table = plots.models_frame(models, active)
        if not table.equals(self._models_table.value):
            self._models_table.value = table
        self._active_text.object = (
            f"Active model (used by Inference and the API by default): **{active}**" if active
            else "No saved model yet: train one with *Save the model* ticked.")

    @param.depends("activate", watch=True)
    @catch_and_notify("Could not change the active model")
    def _on_activate(self) -> None:
        name = self.selected_model
        if name is None:
            return
        set_active_model(name)
        self.state.active_model = name
        log.info("active model set to %r", name)
        _notify("success", f"{name} is now the active model.")
        self.state.param.trigger("models_changed")

    @param.depends("delete", watch=True)
    def _on_delete(self) -> None:
        with param.edit_constant(self):
            self.pending_delete = self.selected_model

    @param.depends("keep_model", watch=True)
    def _on_keep_model(self) -> None:
        with param.edit_constant(self):
            self.pending_delete = None

    @param.depends("confirm_delete", watch=True)
    def _on_confirm_delete(self) -> None:
        name = self.pending_delete
        if name is None:
            return
        try:
            delete_model(name)
        except Exception as exc:
            notify_error(f"Could not delete {name}", exc)
            return
        finally:
            with param.edit_constant(self):
                self.pending_delete = None
        if self.state.active_model == name:
            self.state.active_model = None
        log.info("deleted model %r", name)
        _notify("info", f"Deleted {name}.")
        self.state.param.trigger("models_changed")

    # -- helpers for callers ----------------------------------------------------------------
    def wait(self, timeout: float = 60.0) -> TrainingResult | None:
        """Block until the current training is finished and published (scripts, tests).

        Only for use off the event loop (outside a server, where the hand-back is immediate).
        """
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                raise TimeoutError(f"training still running after {timeout} s")
            time.sleep(0.02)
        return self.result

    @property
    def runs_table(self) -> pd.DataFrame:
        """What the runs table currently shows."""
        return self._runs_table.value


__all__ = ["KIND_LABELS", "TrainingSection"]
