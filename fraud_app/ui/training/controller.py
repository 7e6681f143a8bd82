"""The Training tab's controller: its state, outputs and actions, and no widgets.

:class:`TrainingController` is what the views of this package (``form``, ``results``,
``saved_models``) read and write, and what the unit tests drive:

* **inputs** are plain Parameters (kind, name, hyper-parameters, threshold, costs, the selected
  saved model) that the views edit with ``Widget.from_param``;
* **outputs** are ``constant`` Parameters written with ``param.edit_constant`` (progress, the
  result, the figures at the threshold, the runs, the saved models, the active model and how it
  became active); the views bind them by reference;
* **actions** are ``param.Event`` Parameters (train, cancel, use the cheapest threshold, save the
  threshold, make active, delete ...).

Every ``watch=True`` method is named ``_handle_<what>``: it writes outputs, talks to the model
store or schedules work. Training runs on :data:`~fraud_app.ui.training.worker.RUNNER`, never on
the event loop; a result is published over several short event-loop callbacks (see ``_publish``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import CancelledError, Future
from typing import Any

import numpy as np
import panel as pn
import param

from fraud_app.data import load_transactions
from fraud_app.models import (
    DEFAULT_FOLDS,
    MODEL_KINDS,
    InvalidModelNameError,
    delete_model,
    list_models,
    model_exists,
    set_active_model,
    update_threshold,
    validate_model_name,
)
from fraud_app.models.store import ACTIVE_HOW as STORE_ACTIVE_HOW
from fraud_app.models.store import active_model_status as store_active_model_status
from fraud_app.storage import list_training_runs
from fraud_app.training import (
    ModelComparison,
    ProgressEvent,
    TrainingCancelled,
    TrainingPipeline,
    TrainingResult,
    cheapest_threshold,
    compare_models,
    metrics_at_threshold,
)
from fraud_app.training.distributed import engine_note, plan_text
from fraud_app.ui.base import catch_and_notify, notify_error
from fraud_app.ui.state import AppState
from fraud_app.ui.training import charts
from fraud_app.ui.training.hyperparameters import AGGREGATOR, AggregatorMembers, hyperparameter_values, tunables
from fraud_app.ui.training.worker import RUNNER, ProgressRelay, SessionDispatcher, TrainingOutcome, run_training

log = logging.getLogger(__name__)

#: How each kind is offered in the model choice.
KIND_LABELS = {
    "decision_tree": "Decision tree (baseline)",
    "lightgbm": "LightGBM",
    "random_forest": "Random forest",
    "xgboost": "XGBoost",
    "aggregator": "Aggregator (soft voting)",
}
#: How many runs the runs table shows.
RUNS_SHOWN = 200
#: Seconds between two pieces of UI work after a result or a threshold change (see _handle_plots).
UI_STEP_PAUSE = 0.12
#: The unit of the costs: the data set's amounts are in euros.
CURRENCY = "€"
#: Costs a new model starts with (one missed fraud, one false alarm), in CURRENCY.
DEFAULT_COST_FN = 100.0
DEFAULT_COST_FP = 5.0
#: The lowest threshold the log-scaled slider reaches (scores of 0 sit at its left end).
MIN_THRESHOLD = 1e-6
#: How an active model became active: the store's words (see fraud_app.models.active_model_status).
ACTIVE_HOW = tuple(STORE_ACTIVE_HOW)


def kind_label(kind: str) -> str:
    """How ``kind`` is named on screen."""
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def _notify(level: str, message: str, duration: int = 5000) -> None:
    """Show a notification when a page is open (no-op in tests and notebooks without one)."""
    notifications = pn.state.notifications
    if notifications is not None:
        getattr(notifications, level)(message, duration=duration)


def slider_floor(scores: np.ndarray, threshold: float) -> float:
    """The log10 lower end of the threshold slider for these scores.

    The slider spans the scores' useful range: from the median score (most transactions are
    clear and score far below any useful threshold) up to 1, always including the model's
    own threshold, never below ``MIN_THRESHOLD``. Rounded down to a tenth of a decade.
    """
    low = float(np.quantile(scores, 0.5)) if len(scores) else 0.0
    low = min(max(low, MIN_THRESHOLD), float(threshold) / 3 if threshold > 0 else 0.5, 0.5)
    return math.floor(math.log10(max(low, MIN_THRESHOLD)) * 10) / 10


def costs_at(metrics: dict[str, Any], cost_fn: float, cost_fp: float) -> dict[str, float]:
    """The cost breakdown of a confusion matrix: FN × cost + FP × cost, and 'flag nothing'."""
    (_, fp), (fn, tp) = metrics["confusion_matrix"]
    missed, alarms = cost_fn * fn, cost_fp * fp
    reference = cost_fn * (fn + tp)  # flag nothing: every fraud is missed, no false alarm
    return {"cost": missed + alarms, "cost_missed": missed, "cost_alarms": alarms,
            "cost_reference": reference, "saving": reference - (missed + alarms)}


#: The evaluation choices: how the data set is split into training and test rows.
SPLIT_LABELS = {"random": "Stratified random (80/20)", "time": "Time-ordered (train on earlier, test on later)"}
#: How the threshold (and calibration) is chosen, on training rows only.
THRESHOLD_METHOD_LABELS = {"oof": f"Out-of-fold ({DEFAULT_FOLDS} folds, then a fit on all training rows)",
                           "validation": "One validation split (faster)"}


def compare_saved_models(names: list[str], frame: Any = None) -> ModelComparison:
    """The job of a comparison (runs on a worker thread): load the data set if needed, then compare."""
    return compare_models(names, load_transactions() if frame is None else frame)


def hyperparameter_sets(kinds: list[str]) -> dict[str, Any]:
    """This tab's hyper-parameters, one instance of each kind's declared ``Params`` (the aggregator's members)."""
    return {kind: hyperparameter_values(kind) for kind in kinds}


def model_params(kind: str, sets: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameters for ``create(kind, ...)``; aggregator members carry their own."""
    chosen = sets[kind]
    if not isinstance(chosen, AggregatorMembers):
        return tunables(chosen)
    values = chosen.values()
    if not values["members"]:
        raise ValueError("Choose at least one member model for the aggregator.")
    members = []
    for member in values["members"]:
        member_values = sets.get(member)
        params = tunables(member_values) if member_values is not None else {}
        # No random_state: the aggregator seeds member i with its seed + i (copies differ).
        members.append({"kind": member, "params": params})
    return {**values, "members": members}


class TrainingController(param.Parameterized):
    """State, outputs and actions of the Training tab (one per session; no widgets).

    Choose a kind, its hyper-parameters and a name, then trigger ``train``. The result's
    threshold-dependent figures follow ``threshold`` (recomputed from the held-out test scores
    without retraining); ``cheapest`` is found on the scores the threshold was chosen on (out-of-fold
    scores of the training rows by default), never on the test split.
    """

    state = param.ClassSelector(class_=AppState, doc="The session's shared state.")

    # -- inputs: the run --------------------------------------------------------------------
    kind = param.Selector(default="decision_tree", objects=list(MODEL_KINDS), doc="Which kind of model to train.")
    model_name = param.String(
        default="", doc="Name to save the model under (letters, digits, '_' or '-', at most 64); "
                        "optional when the model is not saved.")
    save = param.Boolean(default=True, doc="Save the trained model to the model store (output/models/<name>/).")
    overwrite = param.Boolean(default=False, doc="Replace a saved model that has the same name.")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1),
                         doc="Seeds the train/test split and the model, so a run can be repeated.")
    split = param.Selector(default="random", objects=list(SPLIT_LABELS),
                           doc="Evaluation: 'random' is the assignment's stratified 80/20 split; 'time' trains on "
                               "the earliest 80 % of transactions and tests on the latest 20 % (fraud changes "
                               "over time, and a random split flatters every model).")
    threshold_method = param.Selector(
        default="oof", objects=list(THRESHOLD_METHOD_LABELS),
        doc="How the calibration and threshold are chosen, on training rows only: 'oof' on out-of-fold scores "
            "of a stratified k-fold, then the model is fitted on all training rows; 'validation' on one held-out "
            "20 % of the training rows (faster; the model sees 80 % of them).")
    train = param.Event(doc="Start training with the current choices.")
    cancel = param.Event(doc="Stop the running training (nothing is saved or recorded).")

    # -- inputs: threshold and costs ----------------------------------------------------------
    threshold = param.Number(default=0.5, bounds=(0.0, 1.0), step=0.0001,
                             doc="Decision threshold: P(fraud) at or above it is flagged as fraud.")
    threshold_log = param.Number(default=math.log10(0.5), bounds=(math.log10(MIN_THRESHOLD), 0.0), step=0.01,
                                 doc="log10 of the threshold: the slider's position (its range fits the scores).")
    cost_fn = param.Number(default=DEFAULT_COST_FN, bounds=(0.0, None), step=1.0,
                           doc=f"Cost of one missed fraud (false negative), in {CURRENCY}; reset for each new model.")
    cost_fp = param.Number(default=DEFAULT_COST_FP, bounds=(0.0, None), step=1.0,
                           doc=f"Cost of one false alarm (false positive), in {CURRENCY}; reset for each new model.")
    use_cheapest = param.Event(doc="Move the threshold to the cheapest one for the costs (on the training rows' "
                                   "out-of-fold or validation scores).")
    save_threshold = param.Event(doc="Save the chosen threshold with the trained (saved) model.")

    # -- inputs: saved models -----------------------------------------------------------------
    selected_model = param.Selector(default=None, objects=[], allow_None=True,
                                    doc="The saved model the buttons below act on.")
    activate = param.Event(doc="Make the selected saved model the active one (Inference and API default).")
    activate_offered = param.Event(doc="Make the model just trained the active one (answers the offer).")
    dismiss_offer = param.Event(doc="Keep the active model as it is (answers the offer).")
    delete = param.Event(doc="Ask to delete the selected saved model.")
    confirm_delete = param.Event(doc="Delete the model awaiting confirmation, for good.")
    keep_model = param.Event(doc="Abandon the pending deletion.")
    refresh = param.Event(doc="Reload the runs table and the saved models.")

    # -- inputs: compare saved models --------------------------------------------------------------
    compare_names = param.ListSelector(default=[], objects=[],
                                       doc="Saved models to compare (two or more), on the same test rows.")
    compare = param.Event(doc="Score the chosen saved models on the same test rows (off the event loop).")

    # -- outputs --------------------------------------------------------------------------------
    hyperparameters = param.Dict(default={}, constant=True,
                                 doc="Kind -> this tab's instance of the kind's declared Params (the aggregator: "
                                     "its AggregatorMembers).")
    running = param.Boolean(default=False, constant=True, doc="True while a training of this tab runs.")
    started_at = param.Number(default=0.0, constant=True, doc="time.monotonic() when the running training started.")
    progress = param.Number(default=0.0, bounds=(0.0, 1.0), constant=True, doc="Progress of the training, 0 to 1.")
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
    last_error = param.String(default=None, allow_None=True, constant=True,
                              doc="Why the latest training could not start or failed (None after a success).")
    result = param.ClassSelector(class_=TrainingResult, default=None, allow_None=True, constant=True,
                                 doc="The latest successful training of this tab.")
    has_result = param.Boolean(default=False, constant=True, doc="True once this tab has a result to show.")
    run_id = param.Integer(default=None, allow_None=True, constant=True,
                           doc="The training_runs row id of the latest result (None if not recorded).")
    transactions_per_day = param.Number(
        default=None, allow_None=True, constant=True,
        doc="The data set's volume: its rows over its time span, per day (None if unknown).")
    threshold_metrics = param.Dict(
        default={}, constant=True,
        doc="At the threshold, on the test split: F1, precision, recall, confusion matrix, the cost and its "
            "breakdown (cost_missed, cost_alarms, cost_reference = flag nothing, saving), flagged, "
            "flag_rate and alerts_per_day.")
    confusion_shown = param.Dict(default={}, constant=True,
                                 doc="The figures the confusion-matrix chart shows (threshold_metrics, a tick later).")
    curve_shown = param.Dict(default={}, constant=True,
                             doc="The figures the PR-curve chart marks (threshold_metrics, two ticks later).")
    cheapest = param.Number(default=None, allow_None=True, constant=True,
                            doc="Threshold with the lowest cost on the scores the threshold was chosen on "
                                "(training rows only; None if unknown).")
    saved_threshold = param.Number(default=None, allow_None=True, constant=True,
                                   doc="The threshold stored with the result's saved model (None when not saved).")
    threshold_unsaved = param.Boolean(default=False, constant=True,
                                      doc="True when the chosen threshold differs from the saved one.")
    runs = param.DataFrame(default=None, allow_None=True, constant=True,
                           doc="The recorded training runs, newest first (see charts.RUN_COLUMNS).")
    saved_models = param.List(default=[], constant=True, doc="Metadata of the saved models, newest first.")
    active_name = param.String(default=None, allow_None=True, constant=True,
                               doc="The store's active model: the default of the Inference tab and the API.")
    active_how = param.Selector(default=None, objects=[None, *ACTIVE_HOW], allow_None=True, constant=True,
                                doc="How the active model became active: pinned, first saved or fallback.")
    offered_model = param.String(default=None, allow_None=True, constant=True,
                                 doc="A model just trained and saved that is not active: the UI asks "
                                     "'Make it active?' (training never changes the active model itself).")
    pending_delete = param.String(default=None, allow_None=True, constant=True,
                                  doc="The saved model awaiting delete confirmation.")
    comparing = param.Boolean(default=False, constant=True, doc="True while a comparison is computed.")
    comparison = param.ClassSelector(
        class_=ModelComparison, default=None, allow_None=True, constant=True,
        doc="The latest comparison: every chosen model scored on the same test rows (the first model's split), "
            "with its PR curve, reliability curve and metrics at its own threshold.")
    compare_status = param.String(default="", constant=True, doc="What the comparison is doing or why it failed.")

    def __init__(self, **params: Any) -> None:
        if params.get("state") is None:
            params["state"] = AppState()
        params["hyperparameters"] = hyperparameter_sets(self.param.kind.objects)
        params["runs"] = charts.empty_runs_frame()
        super().__init__(**params)
        self._future: Future | None = None
        self._cancel_event: threading.Event | None = None
        self._destroy_hooked = False
        self._auto_name: str | None = None
        self._y_test = np.zeros(0, dtype=np.int8)
        self._scores = np.zeros(0)
        self._validation: tuple[np.ndarray, np.ndarray] | None = None
        self._plots_pending = False
        self._idle = threading.Event()  # set when no training of this tab is running or publishing
        self._idle.set()
        self._compare_idle = threading.Event()  # set when no comparison of this tab is running
        self._compare_idle.set()
        self._check_name()  # no I/O for the empty name: Train waits for load() to suggest one

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        """Read the store and the database: the runs, the saved models, the suggested name.

        Call it off the first render (``pn.state.onload``); a failure is shown, not raised.
        """
        try:
            self._refresh_runs()
            self._refresh_models()
            self._suggest_default_name()
            self._check_name()
        except Exception as exc:
            notify_error("Could not read the training runs or the saved models", exc)

    # -- the run: kind, name, hyper-parameters ---------------------------------------------
    def _suggest_default_name(self) -> None:
        if not self.model_name or self.model_name == self._auto_name:
            self._auto_name = self._suggest_name(self.kind)
            self.model_name = self._auto_name

    @param.depends("kind", watch=True)
    def _handle_kind(self) -> None:
        """The default name follows the kind until the user types one."""
        self._suggest_default_name()

    @staticmethod
    def _suggest_name(kind: str) -> str:
        """``<kind>_<n>`` with the smallest n not taken by a saved model."""
        n = 1
        while model_exists(f"{kind}_{n}"):
            n += 1
        return f"{kind}_{n}"

    @param.depends("model_name", "save", "overwrite", "state.models_changed", watch=True)
    def _handle_name(self) -> None:
        """Check the name against the store's rule and the saved models, live."""
        self._check_name()

    def _check_name(self) -> None:
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

    def make_pipeline(self) -> TrainingPipeline:
        """The TrainingPipeline for the current choices.

        Raises
        ------
        ValueError
            naming the problem: invalid name, taken name without overwrite, bad hyper-parameter.
        """
        return TrainingPipeline(self.kind, model_params(self.kind, self.hyperparameters), name=self.model_name or None,
                                save=self.save, overwrite=self.overwrite, seed=self.seed, split=self.split,
                                threshold_method=self.threshold_method)

    # -- training -----------------------------------------------------------------------------
    @param.depends("train", watch=True)
    def _handle_train(self) -> None:
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
        lazy = self.state.lazy_dataset  # too big for memory: the distributed path (training/distributed.py)
        where = "" if lazy is None else " " + plan_text(self.kind, lazy.rows)
        self._set_running(True, status="Queued: waiting for a free training slot…" if RUNNER.full
                          else f"Starting {kind_label(self.kind)}{where}…")
        self._idle.clear()
        try:
            future = RUNNER.submit(run_training, pipeline, self.state.data, relay, cancel)
        except BaseException:
            self._idle.set()
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
        updates: dict[str, Any] = {"running": running}
        if running:
            updates.update(progress=0.0, stage="queued", iteration=None, total=None, last_error=None,
                           started_at=time.monotonic())
        if status is not None:
            updates["status"] = status
        with _hold(), param.edit_constant(self):
            self.param.update(updates)

    def _apply_progress(self, event: ProgressEvent) -> None:
        """Show a progress event (runs on the session's event loop)."""
        if not self.running:
            return
        with _hold(), param.edit_constant(self):
            self.param.update(progress=min(1.0, max(0.0, float(event.fraction))), stage=event.stage,
                              iteration=event.iteration, total=event.total,
                              status=f"**{event.stage.capitalize()}** · {event.message}")

    @param.depends("cancel", watch=True)
    def _handle_cancel(self) -> None:
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
        with _hold():  # one combined patch to the browser instead of one message per change
            try:
                outcome: TrainingOutcome = future.result()
                started = time.perf_counter()
                self._publish(outcome)
                log.info("published the %s result in %.0f ms", outcome.result.kind,
                         (time.perf_counter() - started) * 1000)
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
                try:
                    self._future = self._cancel_event = None
                    self._set_running(False)
                finally:
                    self._idle.set()

    def _publish(self, outcome: TrainingOutcome) -> None:
        """Show a finished run: figures first; charts, tables and other tabs follow moments later.

        Splitting the work into short callbacks with pauses in between keeps the server
        answering other sessions and the REST API while a result is published.
        """
        result = outcome.result
        self._y_test = np.asarray(result.y_test, dtype=np.int8)
        self._scores = np.asarray(result.test_scores, dtype=np.float64)
        self._validation = outcome.validation
        floor = slider_floor(self._scores, result.threshold)
        self.param.threshold_log.bounds = (floor, 0.0)
        with param.edit_constant(self):
            # A new model starts from the default costs (costs are per model, never carried over).
            self.param.update(
                result=result, has_result=True, run_id=outcome.run_id, last_error=None, progress=1.0,
                stage="done", transactions_per_day=outcome.transactions_per_day,
                saved_threshold=float(result.threshold) if result.saved else None,
                cost_fn=DEFAULT_COST_FN, cost_fp=DEFAULT_COST_FP, threshold=float(result.threshold),
                status=(f"**Done** in {result.duration_s:.1f} s · F1 {result.metrics['f1']:.3f}"
                        + (f" · saved as `{result.name}`" if result.saved else " · not saved")
                        + "".join(f" · {note}" for note in [engine_note(result.model.fit_info)] if note)))
        self._update_threshold_metrics()
        self._update_cheapest()
        self.state.set_training_result(result)
        SessionDispatcher.for_current_session().later(lambda: self._after_publish(outcome), UI_STEP_PAUSE)

    @catch_and_notify("Could not refresh the runs and the saved models")
    def _after_publish(self, outcome: TrainingOutcome) -> None:
        """The second half of publishing: the runs table, the saved models, the offer, the other tabs."""
        with _hold():
            result = outcome.result
            self._refresh_runs()
            if outcome.record_error is not None:
                notify_error("The model was trained but the run could not be recorded", outcome.record_error)
            if result.saved:
                # The store pins the first saved model itself; a later save never moves it.
                if self.model_name == self._auto_name:
                    self._auto_name = self._suggest_name(self.kind)
                    self.model_name = self._auto_name
                self.state.param.trigger("models_changed")
                offer = None if result.name == self.active_name else result.name
                with param.edit_constant(self):
                    self.offered_model = offer

    # -- threshold and costs -------------------------------------------------------------------
    @param.depends("threshold_log", watch=True)
    def _handle_threshold_log(self) -> None:
        """The slider moved: set the threshold it points at."""
        if abs(self._log_position(self.threshold) - self.threshold_log) > 1e-9:
            self.threshold = min(1.0, 10 ** self.threshold_log)

    def _log_position(self, threshold: float) -> float:
        low, high = self.param.threshold_log.bounds
        return min(max(math.log10(max(threshold, MIN_THRESHOLD)), low), high)

    @param.depends("threshold", "cost_fn", "cost_fp", watch=True)
    def _handle_threshold(self) -> None:
        """Recompute the figures at the threshold (held-out scores, no retraining)."""
        self._update_threshold_metrics()

    def _update_threshold_metrics(self) -> None:
        position = self._log_position(self.threshold)
        if abs(position - self.threshold_log) > 1e-9:
            self.threshold_log = position
        metrics: dict[str, Any] = {}
        if self.result is not None and len(self._scores):
            metrics = metrics_at_threshold(self._y_test, self._scores, self.threshold)
            metrics.update(costs_at(metrics, self.cost_fn, self.cost_fp))
            (_, fp), (_, tp) = metrics["confusion_matrix"]
            metrics["flagged"] = fp + tp
            metrics["flag_rate"] = (fp + tp) / len(self._scores)
            per_day = self.transactions_per_day
            metrics["alerts_per_day"] = None if per_day is None else metrics["flag_rate"] * per_day
        unsaved = (self.saved_threshold is not None
                   and not math.isclose(self.threshold, self.saved_threshold, rel_tol=0.0, abs_tol=1e-12))
        with param.edit_constant(self):
            self.param.update(threshold_metrics=metrics, threshold_unsaved=unsaved)

    @param.depends("cost_fn", "cost_fp", watch=True)
    def _handle_costs(self) -> None:
        """The cheapest threshold for the costs, on the scores the threshold was chosen on (never the test rows)."""
        self._update_cheapest()

    def _update_cheapest(self) -> None:
        value = None
        if self.result is not None and self._validation is not None:
            y_val, val_scores = self._validation
            value = cheapest_threshold(y_val, val_scores, self.cost_fn, self.cost_fp)
        with param.edit_constant(self):
            self.cheapest = value

    @param.depends("threshold_metrics", watch=True)
    def _handle_plots(self) -> None:
        """Schedule the chart redraws a moment later, one chart at a time, coalescing slider moves.

        Redrawing a HoloViews chart takes tens of milliseconds; done one at a time with a short
        pause (``UI_STEP_PAUSE``) in between, the server answers other requests meanwhile, and a
        fast-moving slider redraws only for the latest threshold. Outside a server: at once.
        """
        if self._plots_pending:
            return
        self._plots_pending = True
        SessionDispatcher.for_current_session().later(self._show_confusion, UI_STEP_PAUSE)

    def _show_confusion(self) -> None:
        self._plots_pending = False
        with _hold(), param.edit_constant(self):
            self.confusion_shown = self.threshold_metrics
        SessionDispatcher.for_current_session().later(self._show_curve, UI_STEP_PAUSE)

    def _show_curve(self) -> None:
        with _hold(), param.edit_constant(self):
            self.curve_shown = self.threshold_metrics

    @param.depends("use_cheapest", watch=True)
    def _handle_use_cheapest(self) -> None:
        if self.cheapest is not None:
            self.threshold = self.cheapest

    @param.depends("save_threshold", watch=True)
    @catch_and_notify("Could not save the threshold")
    def _handle_save_threshold(self) -> None:
        """Write the chosen threshold into the saved model's metadata (bumps its version)."""
        result = self.result
        if result is None or not result.saved or not result.name:
            raise ValueError("only a saved model keeps a threshold: train with 'Save the model' ticked first")
        meta = update_threshold(result.name, self.threshold)
        result.model.threshold = float(meta["threshold"])
        result.model.version = meta.get("version")
        with param.edit_constant(self):
            self.param.update(saved_threshold=float(meta["threshold"]), threshold_unsaved=False)
        log.info("threshold of %r set to %.6f", result.name, self.threshold)
        _notify("success", f"Threshold {self.threshold:.4g} saved with {result.name}.")
        self.state.param.trigger("models_changed")

    # -- runs and saved models -----------------------------------------------------------------
    @param.depends("refresh", watch=True)
    @catch_and_notify("Could not refresh")
    def _handle_refresh(self) -> None:
        self._refresh_runs()
        self._refresh_models()

    def _refresh_runs(self) -> None:
        frame = charts.runs_frame(list_training_runs(limit=RUNS_SHOWN))
        if not frame.equals(self.runs):
            with param.edit_constant(self):
                self.runs = frame

    @param.depends("state.models_changed", watch=True)
    @catch_and_notify("Could not list the saved models")
    def _handle_models_changed(self) -> None:
        self._refresh_models()

    def _refresh_models(self) -> None:
        models = list_models()
        names = [meta["name"] for meta in models]
        active, how = self.active_model_origin(models)
        known = set(self.param.selected_model.objects)
        new = [name for name in names if name not in known]  # newest first
        if new and known:
            selected = new[0]  # just saved: the buttons act on it
        elif self.selected_model in names:
            selected = self.selected_model
        else:
            selected = active or (names[0] if names else None)
        offered = self.offered_model if self.offered_model in names and self.offered_model != active else None
        with param.edit_constant(self):
            self.param.update(saved_models=models, active_name=active, active_how=how, offered_model=offered)
        self.param.selected_model.objects = names
        self.selected_model = selected
        self.param.compare_names.objects = names
        kept = [name for name in self.compare_names if name in names]
        if kept != list(self.compare_names):
            self.compare_names = kept

    def active_model_origin(self, models: list[dict[str, Any]] | None = None) -> tuple[str | None, str | None]:
        """The active model and how it became active: ``"explicit"``, ``"first_saved"`` or ``"fallback"``.

        The one place that asks (the store keeps the rule: the first saved model is pinned, only
        *Make active* changes it, a deleted active model falls back to the newest). ``(None, None)``
        when no model is saved.
        """
        status = store_active_model_status()
        return status["name"], status["how"]

    def _make_active(self, name: str) -> None:
        set_active_model(name)
        self.state.active_model = name
        log.info("active model set to %r", name)
        _notify("success", f"{name} is now the active model.")
        with param.edit_constant(self):
            self.offered_model = None
        self.state.param.trigger("models_changed")

    @param.depends("activate", watch=True)
    @catch_and_notify("Could not change the active model")
    def _handle_activate(self) -> None:
        if self.selected_model is not None:
            self._make_active(self.selected_model)

    @param.depends("activate_offered", watch=True)
    @catch_and_notify("Could not change the active model")
    def _handle_activate_offered(self) -> None:
        if self.offered_model is not None:
            self._make_active(self.offered_model)

    @param.depends("dismiss_offer", watch=True)
    def _handle_dismiss_offer(self) -> None:
        with param.edit_constant(self):
            self.offered_model = None

    @param.depends("delete", watch=True)
    def _handle_delete(self) -> None:
        with param.edit_constant(self):
            self.pending_delete = self.selected_model

    @param.depends("keep_model", watch=True)
    def _handle_keep_model(self) -> None:
        with param.edit_constant(self):
            self.pending_delete = None

    @param.depends("confirm_delete", watch=True)
    def _handle_confirm_delete(self) -> None:
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

    # -- compare saved models ----------------------------------------------------------------------
    @param.depends("compare", watch=True)
    def _handle_compare(self) -> None:
        """Score the chosen models on the same test rows, on the training runner (never on the event loop)."""
        names = list(self.compare_names)
        if self.comparing:
            return
        if len(names) < 2:
            with param.edit_constant(self):
                self.compare_status = "Choose at least two saved models to compare."
            return
        dispatch = SessionDispatcher.for_current_session()
        with param.edit_constant(self):
            self.param.update(comparing=True, compare_status=f"Scoring {', '.join(names)} on the same test rows…")
        self._compare_idle.clear()
        try:
            future = RUNNER.submit(compare_saved_models, names, self.state.dataset)
        except BaseException:
            self._finish_compare(None)
            raise
        future.add_done_callback(lambda done: dispatch(lambda: self._finish_compare(done)))

    def _finish_compare(self, future: Future | None) -> None:
        """Publish a comparison (on the session); the busy state always resets."""
        try:
            if future is None:
                raise RuntimeError("the comparison could not start")
            comparison: ModelComparison = future.result()
            note = ("" if comparison.all_held_out else " Not every model was trained with this split: a model "
                    "marked 'held_out: false' may have trained on some of these rows, so its figures flatter it.")
            with _hold(), param.edit_constant(self):
                self.param.update(comparison=comparison, compare_status=(
                    f"{len(comparison.models)} models on the same {comparison.split} test rows (seed "
                    f"{comparison.seed}): {comparison.n_test:,} transactions, {comparison.n_test_fraud:,} "
                    f"frauds.{note}"))
        except Exception as exc:
            with param.edit_constant(self):
                self.compare_status = f"**Could not compare:** {exc}"
            notify_error("Could not compare the models", exc)
        finally:
            with param.edit_constant(self):
                self.comparing = False
            self._compare_idle.set()

    def wait_compare(self, timeout: float = 60.0) -> ModelComparison | None:
        """Block until the running comparison is published (scripts, tests; never on the event loop)."""
        if not self._compare_idle.wait(timeout):
            raise TimeoutError(f"comparison still running after {timeout} s")
        return self.comparison

    # -- helpers for callers ------------------------------------------------------------------
    def wait(self, timeout: float = 60.0) -> TrainingResult | None:
        """Block until the current training is finished and published (scripts, tests).

        Only for use off the event loop (outside a server, where the hand-back is immediate).
        """
        if not self._idle.wait(timeout):
            raise TimeoutError(f"training still running after {timeout} s")
        return self.result


def _hold() -> Any:
    """Hold the session's document events (one combined patch); a no-op outside a session."""
    return pn.io.hold()


__all__ = ["CURRENCY", "KIND_LABELS", "TrainingController", "costs_at", "kind_label", "slider_floor"]
