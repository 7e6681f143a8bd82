"""The Inference tab's controller: its state, outputs and actions, and no widgets.

One :class:`InferenceController` per session. The views of the tab (``transaction.py``,
``verdict.py``, ``history.py``, ``batch.py``, ``model.py``) build their widgets from its
Parameters and bind its outputs by reference; the tests drive it without a browser.

* **Inputs** (set by the user through the views): ``model_name``, ``inputs`` (the 29 model
  inputs, one Parameter per column), ``unfrozen``, ``save_to_log``, ``page``, ``batch_csv``.
* **Actions** (``param.Event``): ``predict``, ``load_clear``, ``load_fraud``,
  ``load_reference``, ``newer_page``, ``older_page``, ``score_batch``.
* **Outputs** (``constant``, written with ``param.edit_constant``): everything else.

Scoring, explaining, reading the database and parsing uploads run in worker threads
(``asyncio.to_thread``), never on the event loop; everything derived from the data set
comes from :mod:`fraud_app.inference.reference`, computed once per process.
Methods decorated with ``watch=True`` are named ``_on_<what happened>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

import pandas as pd
import panel as pn
import param

from fraud_app.data import MODEL_FEATURES
from fraud_app.inference import explain, score, score_and_save
from fraud_app.inference.batch import (
    BatchFileError,
    parse_batch_csv,
    predictions_frame,
    rank_by_risk,
    results_to_csv,
    score_batch,
    template_csv,
)
from fraud_app.inference.reference import (
    FROZEN_FEATURES,
    KAGGLE_NAMES,
    SLIDER_FEATURES,
    ReferenceData,
    SampledTransaction,
    TransactionPicker,
    reference_data,
)
from fraud_app.models import list_models
from fraud_app.models.store import ACTIVE_FILE, models_dir
from fraud_app.models.store import ACTIVE_HOW as STORE_ACTIVE_HOW
from fraud_app.models.store import active_model_status as store_active_model_status
from fraud_app.storage import count_predictions, list_predictions
from fraud_app.ui.base import notify_error
from fraud_app.ui.state import AppState

log = logging.getLogger(__name__)

NO_MODEL_MESSAGE = (
    "**No saved model yet.** Train a model and save it in the **Training** tab "
    "(or run `python -m fraud_app train`); it will appear here."
)
#: Columns of the saved-predictions table, after ``id``/``created_at``/``source``/``model``.
TABLE_FEATURES: tuple[str, ...] = ("amount", "feature11", "feature13", "feature15")
#: Slider bounds ``(start, end, step)`` until the data set's percentiles are known.
FALLBACK_RANGES: dict[str, tuple[float, float, float]] = (
    {name: (-5.0, 5.0, 0.01) for name in SLIDER_FEATURES} | {"amount": (0.0, 1000.0, 0.01)})
REFERENCE_ORIGIN = "the reference transaction (median of the clear transactions)"
#: How the store's active model became active (see :meth:`InferenceController.active_model_status`).
#: How the store's active model became active (the store's own words; the rule is in docs/models.md).
ACTIVE_HOW = STORE_ACTIVE_HOW
#: The short form shown in the model selector.
ACTIVE_SHORT = {"explicit": "made active", "first_saved": "first saved", "fallback": "fallback"}


class TransactionInputs(param.Parameterized):
    """The 29 model inputs of the transaction being edited: one ``Number`` named after each column."""

    def values(self) -> dict[str, float]:
        """The inputs as a ``{column: value}`` dict in :data:`~fraud_app.data.MODEL_FEATURES` order."""
        return {name: float(getattr(self, name)) for name in MODEL_FEATURES}


for _name in MODEL_FEATURES:
    TransactionInputs.param.add_parameter(_name, param.Number(
        default=0.0, allow_None=False, doc=f"Model input {_name} (Kaggle column {KAGGLE_NAMES[_name]})."))


class InferenceController(param.Parameterized):
    """State, outputs and actions of the Inference tab for one session (no widgets).

    **Predict** is a what-if by default: it scores with :func:`fraud_app.inference.score`
    and writes nothing. With ``save_to_log`` on, it scores and saves through
    :func:`fraud_app.inference.score_and_save` (source ``"ui"``), the function
    ``POST /api/predictions`` uses. A batch is always saved (source ``"batch"``), all rows or none.
    """

    state = param.ClassSelector(class_=AppState, doc="The session's shared state (active model, events).")

    # -- inputs ------------------------------------------------------------------------------
    model_name = param.Selector(
        default=None, objects=[], allow_None=True,
        doc="The saved model to score with (default: the store's active model, else the newest saved one).",
    )
    inputs = param.ClassSelector(
        class_=TransactionInputs, constant=True,
        doc="The 29 model inputs of the transaction being edited (one Parameter per column).",
    )
    unfrozen = param.ListSelector(
        default=[], objects=list(FROZEN_FEATURES),
        doc="Frozen inputs the user unlocked for editing (the others keep their loaded value).",
    )
    save_to_log = param.Boolean(
        default=False, label="Save to log",
        doc="Save each Predict to the prediction log (source 'ui') that the REST API also writes; "
            "off: a what-if that saves nothing.",
    )
    top_features = param.Integer(default=10, bounds=(1, len(MODEL_FEATURES)),
                                 doc="How many feature contributions the chart shows.")
    page = param.Integer(default=1, bounds=(1, None), doc="Page of saved predictions shown (1 = the newest).")
    page_size = param.Integer(default=15, bounds=(1, 500), constant=True, doc="Saved predictions per page.")
    poll_period = param.Number(
        default=2.0, bounds=(0.2, 60.0), constant=True,
        doc="Seconds between cheap checks for predictions saved elsewhere (REST clients, other sessions).",
    )
    seed = param.Integer(default=None, allow_None=True, constant=True,
                         doc="Seed of this session's random transaction picker (None: fresh entropy).")
    batch_csv = param.Bytes(default=None, allow_None=True, doc="Content of the uploaded CSV file.")
    batch_filename = param.String(default="", doc="Name of the uploaded CSV file.")

    # -- actions -----------------------------------------------------------------------------
    predict = param.Event(doc="Score the current transaction with the selected model (saved only with save_to_log).")
    load_clear = param.Event(doc="Load a random real clear transaction from the data set into the inputs.")
    load_fraud = param.Event(doc="Load a random real fraud from the data set into the inputs.")
    load_reference = param.Event(doc="Reset every input to the reference transaction (clear-class medians).")
    score_batch = param.Event(doc="Score and save the validated uploaded CSV (source 'batch'), all rows or none.")
    newer_page = param.Event(doc="Show the previous, newer page of saved predictions.")
    older_page = param.Event(doc="Show the next, older page of saved predictions.")

    # -- outputs: models -----------------------------------------------------------------------
    models = param.List(default=None, allow_None=True, constant=True,
                        doc="Metadata of the saved models, newest first (None until the store was read).")
    active_model = param.String(default=None, allow_None=True, constant=True,
                                doc="The store's active model: the one the REST API scores with by default.")
    active_how = param.Selector(default=None, objects=[None, *ACTIVE_HOW], constant=True,
                                doc="How active_model became active: 'explicit' (Make active), 'first_saved' "
                                    "(the first model saved) or 'fallback' (the active one was deleted).")

    # -- outputs: the transaction --------------------------------------------------------------
    reference = param.ClassSelector(
        class_=ReferenceData, default=None, allow_None=True, constant=True,
        doc="The data set's reference transaction and slider ranges (None until loaded).",
    )
    reference_error = param.String(default=None, allow_None=True, constant=True,
                                   doc="Why the reference transaction could not be computed (None when it was).")
    ranges = param.Dict(
        default=dict(FALLBACK_RANGES), constant=True,
        doc="Slider bounds per slider column: (start, end, step); widened to hold a loaded value.",
    )
    origin = param.String(default="", constant=True, doc="Where the current inputs were loaded from.")
    sample = param.ClassSelector(
        class_=SampledTransaction, default=None, allow_None=True, constant=True,
        doc="The real transaction last loaded into the inputs (None: they were loaded from the reference).",
    )
    edited = param.Boolean(default=False, constant=True,
                           doc="True once an input was changed after the transaction was loaded.")
    loading_sample = param.Boolean(default=False, constant=True, doc="True while a random transaction is drawn.")

    # -- outputs: the verdict ------------------------------------------------------------------
    last_prediction = param.Dict(
        default=None, allow_None=True, constant=True,
        doc="This session's latest score: the service's row (id/created_at/source only when saved) plus "
            "'saved' (bool), 'true_label' ('clear'/'fraud' when an unedited real row was scored, else None) "
            "and 'row' (its data set row, else None).",
    )
    previous_probability = param.Number(
        default=None, allow_None=True, constant=True,
        doc="P(fraud) of the score before last_prediction in this session (None before the second score).",
    )
    stale = param.Boolean(
        default=False, constant=True,
        doc="True when the inputs or the model differ from what last_prediction scored.",
    )
    contributions = param.DataFrame(
        default=None, allow_None=True, constant=True,
        doc="Top contributions of the latest score: feature, value, contribution (what explain() returns).",
    )
    predicting = param.Boolean(default=False, constant=True, doc="True while a Predict is being scored.")

    # -- outputs: saved predictions ------------------------------------------------------------
    predictions = param.DataFrame(default=None, allow_None=True, constant=True,
                                  doc="The shown page of saved predictions, newest first (None until read).")
    total_predictions = param.Integer(default=0, bounds=(0, None), constant=True,
                                      doc="How many predictions are saved in the database.")

    # -- outputs: batch ------------------------------------------------------------------------
    batch_frame = param.DataFrame(default=None, allow_None=True, constant=True,
                                  doc="The validated uploaded transactions, waiting to be scored.")
    batch_error = param.String(default=None, allow_None=True, constant=True,
                               doc="Why the uploaded file was refused or could not be scored (nothing was saved).")
    batch_problems = param.List(default=[], item_type=str, constant=True,
                                doc="The problems found in the uploaded file, in one pass (at most a dozen listed).")
    batch_problem_count = param.Integer(default=0, bounds=(0, None), constant=True,
                                        doc="How many problems the uploaded file has in all.")
    batch_result = param.DataFrame(
        default=None, allow_None=True, constant=True,
        doc="The stored rows of the latest scored batch, highest P(fraud) first.",
    )
    scored_csv = param.Bytes(default=b"", constant=True,
                             doc="The latest scored batch as CSV (highest P(fraud) first), for download.")
    download_name = param.String(default="scored.csv", constant=True, doc="File name of scored_csv.")
    batch_busy = param.Boolean(default=False, constant=True, doc="True while a file is parsed or a batch scored.")

    def __init__(self, **params: Any) -> None:
        if params.get("state") is None:
            params["state"] = AppState()
        super().__init__(**params)
        with param.edit_constant(self):
            self.inputs = TransactionInputs()
        self._picker = TransactionPicker(self.seed)
        self._loading_inputs = False
        self._own_announcement = False
        self._programmatic_model = False
        self._refresh_seq = 0
        self._newest_seen: int | None = None
        self._models_signature: tuple | None = None
        self._poller: Any = None
        self._polling = False
        self._poll_failing = False
        self.inputs.param.watch(self._on_input_changed, list(MODEL_FEATURES))

    # -- derived state (bind these by reference) -------------------------------------------------
    @param.depends("model_name", "predicting")
    def can_predict(self) -> bool:
        """A model is selected and no Predict is running."""
        return self.model_name is not None and not self.predicting

    @param.depends("reference", "loading_sample")
    def can_load_samples(self) -> bool:
        """The data set is loaded, so real transactions can be drawn."""
        return self.reference is not None and not self.loading_sample

    @param.depends("reference", "loading_sample")
    def can_load_fraud(self) -> bool:
        """The data set is loaded and holds at least one fraud."""
        return self.can_load_samples() and len(self.reference.fraud_rows) > 0

    @param.depends("model_name", "batch_frame", "batch_busy")
    def can_score_batch(self) -> bool:
        """A validated file and a model are there, and nothing is running."""
        return self.model_name is not None and self.batch_frame is not None and not self.batch_busy

    @param.depends("total_predictions")
    def page_count(self) -> int:
        """How many pages of saved predictions there are (at least 1)."""
        return max(1, math.ceil(self.total_predictions / self.page_size))

    @param.depends("page")
    def can_page_newer(self) -> bool:
        """There is a newer page."""
        return self.page > 1

    @param.depends("page", "total_predictions")
    def can_page_older(self) -> bool:
        """There is an older page."""
        return self.page < self.page_count()

    # -- start-up and polling ------------------------------------------------------------------
    async def load(self) -> None:
        """Deferred start-up (``pn.state.onload``): models, the reference transaction, saved predictions."""
        if _in_server_session() and self._poller is None:
            self._poller = pn.state.add_periodic_callback(self._poll, period=int(self.poll_period * 1000))
            pn.state.on_session_destroyed(self._stop_polling)
        await self.refresh_models()
        await self._load_reference_data()
        await self.refresh_predictions()

    def _stop_polling(self, session_context: Any) -> None:
        """Stop this session's periodic check (called when the session ends)."""
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
            log.debug("inference: stopped polling for a closed session")

    @staticmethod
    def _probe() -> tuple[int | None, tuple]:
        """The newest saved prediction's id and a cheap signature of the model store."""
        newest = list_predictions(limit=1)
        return (newest[0]["id"] if newest else None), _store_signature()

    async def _poll(self) -> None:
        """Periodic callback: refresh the table (and the model list) when something changed elsewhere."""
        if self._polling:
            return
        self._polling = True
        try:
            newest, signature = await asyncio.to_thread(self._probe)
            if self._poll_failing:
                log.info("inference: the database answers again")
            self._poll_failing = False
            if signature != self._models_signature:
                await self.refresh_models()
            if newest != self._newest_seen:
                await self.refresh_predictions()
        except Exception as exc:
            if not self._poll_failing:  # report once per failure streak, not every period
                notify_error("Could not check for new predictions", exc)
            self._poll_failing = True
        finally:
            self._polling = False

    # -- models --------------------------------------------------------------------------------
    @staticmethod
    def active_model_status() -> tuple[str | None, str | None]:
        """The store's active model and how it became active (``explicit``, ``first_saved``, ``fallback``).

        The one place that asks the model store (runs in a worker thread).
        """
        status = store_active_model_status()
        return status["name"], status["how"]

    @classmethod
    def _read_models(cls) -> tuple[list[dict[str, Any]], str | None, str | None, tuple]:
        signature = _store_signature()
        active, how = cls.active_model_status()
        return list_models(), active, how, signature

    async def refresh_models(self) -> None:
        """Re-read the saved models and keep (or pick) the selection."""
        try:
            models, active, how, signature = await asyncio.to_thread(self._read_models)
        except Exception as exc:
            notify_error("Could not list the saved models", exc)
            return
        self._models_signature = signature
        names = [m["name"] for m in models]
        wanted, current = self.state.active_model, self.model_name
        if wanted in names:
            choice = wanted
        elif current in names:
            choice = current
        elif active in names:
            choice = active
        else:
            choice = names[0] if names else None
        self._programmatic_model = True
        try:
            self.param.model_name.objects = {model_label(m, active, how): m["name"] for m in models}
            with param.edit_constant(self):
                self.param.update(models=models, active_model=active, active_how=how)
            self.model_name = choice
        finally:
            self._programmatic_model = False

    def selected_model(self) -> dict[str, Any] | None:
        """Metadata of the selected model (None without one)."""
        return next((m for m in self.models or [] if m["name"] == self.model_name), None)

    @param.depends("state.models_changed", watch=True)
    async def _on_models_changed(self) -> None:
        await self.refresh_models()

    @param.depends("state.active_model", watch=True)
    def _on_session_model_chosen(self) -> None:
        name = self.state.active_model
        if name is not None and name in self.param.model_name.objects.values() and name != self.model_name:
            self._programmatic_model = True
            try:
                self.model_name = name
            finally:
                self._programmatic_model = False

    @param.depends("model_name", watch=True)
    def _on_model_selected(self) -> None:
        if not self._programmatic_model and self.model_name is not None:
            self.state.active_model = self.model_name  # the user's choice for this session
        self._mark_stale()

    # -- the transaction -----------------------------------------------------------------------
    async def _load_reference_data(self) -> None:
        try:
            data = await asyncio.to_thread(reference_data)
        except Exception as exc:
            with param.edit_constant(self):
                self.reference_error = str(exc)
            notify_error("Could not compute the reference transaction", exc)
            return
        ranges = {c: (r.start, r.end, r.step) for c, r in data.ranges.items()}
        with param.edit_constant(self):
            self.param.update(reference=data, reference_error=None, ranges=ranges)
        self._apply_inputs(data.reference, REFERENCE_ORIGIN)

    def _apply_inputs(self, values: dict[str, float], origin: str, sample: SampledTransaction | None = None) -> None:
        """Set all 29 inputs at once, widening a slider range that does not hold its new value."""
        with param.edit_constant(self):
            self.ranges = self._widened({c: float(values[c]) for c in SLIDER_FEATURES})
        self._loading_inputs = True
        try:
            self.inputs.param.update(**{name: float(values[name]) for name in MODEL_FEATURES})
        finally:
            self._loading_inputs = False
        with param.edit_constant(self):
            self.param.update(origin=origin, sample=sample, edited=False)

    def _widened(self, values: dict[str, float]) -> dict[str, tuple[float, float, float]]:
        """``ranges`` widened (to a whole step) so that every slider holds its value in ``values``."""
        ranges = dict(self.ranges)
        for column, value in values.items():
            if column not in ranges:
                continue
            start, end, step = ranges[column]
            if value < start:
                start = math.floor(value / step) * step
            if value > end:
                end = math.ceil(value / step) * step
            ranges[column] = (start, end, step)
        return ranges

    def _on_input_changed(self, *events: param.parameterized.Event) -> None:
        typed = {e.name: float(e.new) for e in events if e.name in SLIDER_FEATURES}
        ranges = self._widened(typed)
        with param.edit_constant(self):
            if ranges != self.ranges:  # a typed value beyond a slider's end
                self.ranges = ranges
            if not self._loading_inputs and not self.edited:
                self.edited = True
        self._mark_stale()

    def _mark_stale(self) -> None:
        last = self.last_prediction
        stale = last is not None and (last["model"] != self.model_name or last["features"] != self.inputs.values())
        if stale != self.stale:
            with param.edit_constant(self):
                self.stale = stale

    @contextlib.contextmanager
    def _flag(self, name: str) -> Iterator[None]:
        """Set the Boolean output ``name`` for the block; it always resets."""
        with param.edit_constant(self):
            setattr(self, name, True)
        try:
            yield
        finally:
            with param.edit_constant(self):
                setattr(self, name, False)

    async def _load_sample(self, label: str) -> None:
        with self._flag("loading_sample"):
            try:
                sample = await asyncio.to_thread(self._picker.pick, label)
            except Exception as exc:
                notify_error(f"Could not load a random {label} transaction", exc)
                return
        when = f", time {sample.time:,.0f} s" if sample.time is not None else ""
        self._apply_inputs(sample.values, f"a real **{sample.label}** transaction (data set row {sample.row:,}{when})",
                           sample)

    @param.depends("load_clear", watch=True)
    async def _on_load_clear(self) -> None:
        await self._load_sample("clear")

    @param.depends("load_fraud", watch=True)
    async def _on_load_fraud(self) -> None:
        await self._load_sample("fraud")

    @param.depends("load_reference", watch=True)
    def _on_load_reference(self) -> None:
        if self.reference is None:
            notify_error("The reference transaction is not available (the data set could not be loaded)")
            return
        self._apply_inputs(self.reference.reference, REFERENCE_ORIGIN)

    # -- predict -------------------------------------------------------------------------------
    @staticmethod
    def _score(transaction: dict[str, float], model: str, top: int,
               save: bool) -> tuple[dict[str, Any], pd.DataFrame | None]:
        """Score one transaction (and save it when ``save``), then explain it. Runs in a worker thread."""
        row = (score_and_save(transaction, model=model, source="ui") if save else score(transaction, model=model))[0]
        try:
            contributions = explain(transaction, model=model, top=top)
        except Exception:
            # The score stands; a failing explanation must not hide its verdict.
            log.exception("could not explain a %s score", "saved" if save else "what-if")
            contributions = None
        return row, contributions

    @param.depends("predict", watch=True)
    async def _on_predict(self) -> None:
        name = self.model_name
        if name is None:
            notify_error("No saved model to predict with: train and save one in the Training tab")
            return
        if self.predicting:
            return
        transaction, save = self.inputs.values(), self.save_to_log
        real = self.sample if self.sample is not None and not self.edited else None
        with self._flag("predicting"):
            try:
                row, contributions = await asyncio.to_thread(self._score, transaction, name, self.top_features, save)
            except Exception as exc:
                notify_error("Prediction failed (nothing was saved)", exc)
                await self.refresh_models()
                return
        previous = self.last_prediction["fraud_probability"] if self.last_prediction else None
        row = {**row, "features": transaction, "saved": save,
               "true_label": real.label if real else None, "row": real.row if real else None}
        with param.edit_constant(self):
            self.param.update(last_prediction=row, previous_probability=previous, contributions=contributions)
        self._mark_stale()
        if contributions is None:
            notify_error("The score stands, but its contributions could not be computed")
        if save:
            await self.refresh_predictions()
            self._announce_predictions()

    def _announce_predictions(self) -> None:
        """Tell the other views of this session that predictions were saved."""
        self._own_announcement = True
        try:
            self.state.param.trigger("predictions_changed")
        finally:
            self._own_announcement = False

    # -- saved predictions -----------------------------------------------------------------------
    @staticmethod
    def _fetch_page(page: int, size: int) -> tuple[list[dict[str, Any]], int, int | None, int]:
        total = count_predictions()
        pages = max(1, math.ceil(total / size))
        page = min(page, pages)
        rows = list_predictions(limit=size, offset=(page - 1) * size)
        if page == 1:
            newest = rows[0]["id"] if rows else None
        else:
            first = list_predictions(limit=1)
            newest = first[0]["id"] if first else None
        return rows, total, newest, page

    async def refresh_predictions(self) -> None:
        """Re-read the shown page of saved predictions (newest first) from the database."""
        self._refresh_seq += 1
        seq = self._refresh_seq
        try:
            rows, total, newest, page = await asyncio.to_thread(self._fetch_page, self.page, self.page_size)
        except Exception as exc:
            notify_error("Could not read the saved predictions", exc)
            return
        if seq != self._refresh_seq:  # a newer refresh started meanwhile; let it win
            return
        self._newest_seen = newest
        frame = display_frame(predictions_frame(rows, TABLE_FEATURES))
        frame.insert(frame.columns.get_loc("verdict") + 1, "label", [row.get("label") or "" for row in rows])
        with param.edit_constant(self):
            self.param.update(predictions=frame, total_predictions=total)
        if page != self.page:
            self.page = page

    @param.depends("state.predictions_changed", watch=True)
    def _on_predictions_saved_elsewhere(self) -> None:
        if not self._own_announcement:
            pn.state.execute(self.refresh_predictions)

    @param.depends("page", watch=True)
    async def _on_page_changed(self) -> None:
        await self.refresh_predictions()

    @param.depends("newer_page", watch=True)
    def _on_newer_page(self) -> None:
        self.page = max(1, self.page - 1)

    @param.depends("older_page", watch=True)
    def _on_older_page(self) -> None:
        self.page = min(self.page_count(), self.page + 1)

    # -- batch ---------------------------------------------------------------------------------
    @param.depends("batch_csv", watch=True)
    async def _on_batch_uploaded(self) -> None:
        data = self.batch_csv
        with param.edit_constant(self):
            self.param.update(batch_frame=None, batch_error=None, batch_problems=[], batch_problem_count=0)
        if data is None:
            return
        with self._flag("batch_busy"):
            try:
                frame = await asyncio.to_thread(parse_batch_csv, data)
            except BatchFileError as exc:
                log.info("refused uploaded batch %r: %s", self.batch_filename, exc)
                with param.edit_constant(self):
                    self.param.update(batch_error=str(exc), batch_problems=list(exc.problems),
                                      batch_problem_count=exc.total)
                return
            except Exception as exc:
                notify_error("Could not read the uploaded file", exc)
                with param.edit_constant(self):
                    self.param.update(batch_error=f"could not read the file: {exc}",
                                      batch_problems=[f"could not read the file: {exc}"], batch_problem_count=1)
                return
        with param.edit_constant(self):
            self.batch_frame = frame

    @staticmethod
    def _score_batch(frame: pd.DataFrame, model: str) -> tuple[list[dict[str, Any]], bytes]:
        """Score and save a validated batch, highest P(fraud) first; its CSV. Runs in a worker thread."""
        rows = rank_by_risk(score_batch(frame, model=model))
        return rows, results_to_csv(rows)

    @param.depends("score_batch", watch=True)
    async def _on_score_batch(self) -> None:
        frame, name = self.batch_frame, self.model_name
        if frame is None or name is None:
            notify_error("Upload a valid CSV and select a saved model first")
            return
        if self.batch_busy:
            return
        with self._flag("batch_busy"):
            try:
                rows, csv_bytes = await asyncio.to_thread(self._score_batch, frame, name)
            except Exception as exc:
                notify_error("Batch scoring failed (nothing was saved)", exc)
                with param.edit_constant(self):
                    message = f"scoring failed, nothing was saved: {exc}"
                    self.param.update(batch_error=message, batch_problems=[message], batch_problem_count=1)
                return
        stem = PurePath(self.batch_filename or "batch.csv").stem or "batch"
        with param.edit_constant(self):
            self.param.update(batch_frame=None, batch_result=predictions_frame(rows), scored_csv=csv_bytes,
                              download_name=f"{stem}-scored.csv")
        await self.refresh_predictions()
        self._announce_predictions()

    def scored_file(self) -> io.BytesIO:
        """The latest scored batch as a CSV file object (a ``FileDownload`` callback)."""
        return io.BytesIO(self.scored_csv)

    def template_file(self) -> io.BytesIO:
        """A CSV to start a batch from: the header and the reference transaction (a ``FileDownload`` callback)."""
        return io.BytesIO(template_csv(self.reference.reference if self.reference is not None else None))


# -- helpers (no state) -------------------------------------------------------------------------

def _in_server_session() -> bool:
    """True inside a browser session of a running server (where periodic callbacks make sense)."""
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


def _stat_signature(path: Any) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _store_signature() -> tuple:
    root = models_dir()
    return tuple(_stat_signature(path) for path in (root, root / ACTIVE_FILE))


def model_label(meta: dict[str, Any], active: str | None, how: str | None) -> str:
    """A model's label in the selector; the store's active model says how it is active."""
    label = f"{meta['name']} ({meta.get('kind', '?')})"
    if meta["name"] != active:
        return label
    return f"{label} · active ({ACTIVE_SHORT.get(how or '', how or '?')})"


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Prediction rows for a table: a readable verdict instead of 0/1, no model version."""
    out = frame.drop(columns=["model_version", "is_fraud"])
    out.insert(out.columns.get_loc("threshold") + 1, "verdict",
               frame["is_fraud"].astype(bool).map({True: "Fraudulent", False: "Clear"}).astype(str))
    out["created_at"] = out["created_at"].astype(str).str.slice(0, 19).str.replace("T", " ")
    return out


__all__ = ["ACTIVE_HOW", "NO_MODEL_MESSAGE", "InferenceController", "TransactionInputs", "display_frame",
           "model_label"]
