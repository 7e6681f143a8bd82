"""The Inference tab: tweak a transaction, see the verdict and why, and see it saved.

The tab is a thin client of the scoring service: every prediction goes through
:func:`fraud_app.inference.score_and_save` (the function ``POST /api/predictions`` uses)
with ``source="ui"`` for a single transaction and ``source="batch"`` for an uploaded CSV.
Everything derived from the data set (reference transaction, slider ranges, the rows of
each class) comes from :mod:`fraud_app.inference.reference`, computed once per process.
Scoring, explaining, reading the database and parsing uploads run in worker threads
(``asyncio.to_thread``), never on the event loop.

Inputs are the 29 Parameters of one :class:`TransactionInputs` object per session, named
exactly like the columns, so a widget is tied to its column by name (``from_param``), never
by position: the slider labelled ``feature11`` writes ``feature11``.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
import math
from pathlib import PurePath
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend for the chart's options)
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from fraud_app.data import MODEL_FEATURES
from fraud_app.inference import explain, score_and_save
from fraud_app.inference.batch import (
    MAX_BATCH_ROWS,
    BatchFileError,
    parse_batch_csv,
    predictions_frame,
    results_to_csv,
    score_batch,
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
from fraud_app.models import get_active_model_name, list_models
from fraud_app.models.store import ACTIVE_FILE, models_dir
from fraud_app.storage import count_predictions, list_predictions
from fraud_app.ui.base import Section, busy, catch_and_notify, notify_error, register_section
from fraud_app.ui.theme import CLEAR_COLOR, FRAUD_COLOR

log = logging.getLogger(__name__)

NO_MODEL_MESSAGE = (
    "**No saved model yet.** Train a model and save it in the **Training** tab "
    "(or run `python -m fraud_app train`); it will appear here."
)
#: Columns of the saved-predictions table, after ``id``/``created_at``/``source``/``model``.
TABLE_FEATURES: tuple[str, ...] = ("amount", "feature11", "feature13", "feature15")
#: Slider placeholders until the data set's percentiles are known (or when it cannot be loaded).
_FALLBACK_RANGES = {name: (-5.0, 5.0, 0.01) for name in SLIDER_FEATURES} | {"amount": (0.0, 1000.0, 0.01)}


class TransactionInputs(param.Parameterized):
    """The 29 model inputs of the transaction being edited: one ``Number`` named after each column."""

    def values(self) -> dict[str, float]:
        """The inputs as a ``{column: value}`` dict in :data:`~fraud_app.data.MODEL_FEATURES` order."""
        return {name: float(getattr(self, name)) for name in MODEL_FEATURES}


for _name in MODEL_FEATURES:
    TransactionInputs.param.add_parameter(_name, param.Number(
        default=0.0, allow_None=False, doc=f"Model input {_name} (Kaggle column {KAGGLE_NAMES[_name]})."))


@register_section
class InferenceSection(Section):
    """Score one transaction or a CSV batch with a saved model; browse the saved predictions.

    The four sliders edit ``feature11``, ``feature13``, ``feature15`` and ``amount``; the
    other 25 inputs stay frozen at the reference transaction (the clear-class median)
    unless unfrozen. **Predict** scores and saves through the shared service (source
    ``"ui"``) and shows the verdict, P(fraud) against the model's threshold and the top
    contributions. The saved-predictions table pages through the database, newest first,
    and picks up rows saved elsewhere (REST clients, other sessions) within
    ``poll_period`` seconds.
    """

    title = "Inference"
    icon = "⚡"
    order = 30

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
    predict = param.Event(doc="Score the current transaction with the selected model and save it (source 'ui').")
    load_clear = param.Event(doc="Load a random real clear transaction from the data set into the inputs.")
    load_fraud = param.Event(doc="Load a random real fraud from the data set into the inputs.")
    load_reference = param.Event(doc="Reset every input to the reference transaction (clear-class medians).")
    score_batch = param.Event(doc="Score and save the validated uploaded CSV (source 'batch'), all rows or none.")
    newer_page = param.Event(doc="Show the previous, newer page of saved predictions.")
    older_page = param.Event(doc="Show the next, older page of saved predictions.")

    # -- outputs -----------------------------------------------------------------------------
    models = param.List(default=[], constant=True, doc="Metadata of the saved models, newest first.")
    reference = param.ClassSelector(
        class_=ReferenceData, default=None, allow_None=True, constant=True,
        doc="The data set's reference transaction and slider ranges (None until loaded).",
    )
    reference_error = param.String(default=None, allow_None=True, constant=True,
                                   doc="Why the reference transaction could not be computed (None when it was).")
    origin = param.String(default="", constant=True, doc="Where the current inputs were loaded from.")
    sample = param.ClassSelector(
        class_=SampledTransaction, default=None, allow_None=True, constant=True,
        doc="The real transaction last loaded into the inputs (None: they were loaded from the reference).",
    )
    edited = param.Boolean(default=False, constant=True,
                           doc="True once an input was changed after the transaction was loaded.")
    last_prediction = param.Dict(default=None, allow_None=True, constant=True,
                                 doc="The stored row of this session's latest prediction (as the service returns it).")
    contributions = param.DataFrame(
        default=None, allow_None=True, constant=True,
        doc="Top contributions of the latest prediction: feature, value, contribution (P(fraud) units).",
    )
    predictions = param.DataFrame(default=None, allow_None=True, constant=True,
                                  doc="The shown page of saved predictions, newest first.")
    total_predictions = param.Integer(default=0, bounds=(0, None), constant=True,
                                      doc="How many predictions are saved in the database.")
    batch_frame = param.DataFrame(default=None, allow_None=True, constant=True,
                                  doc="The validated uploaded transactions, waiting to be scored.")
    batch_error = param.String(default=None, allow_None=True, constant=True,
                               doc="Why the uploaded file was refused or could not be scored (nothing was saved).")
    batch_result = param.DataFrame(default=None, allow_None=True, constant=True,
                                   doc="The stored rows of the latest scored batch (one per uploaded row).")

    def __init__(self, **params: Any) -> None:
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
        self._poller: pn.io.callbacks.PeriodicCallback | None = None
        self._polling = False
        self._poll_failing = False
        self._batch_csv_bytes: bytes = b""
        self._build_widgets()
        self._layout = self._build_layout()
        self.inputs.param.watch(self._on_input_edited, list(MODEL_FEATURES))
        self._update_controls()
        pn.state.onload(self._on_load)

    # -- widgets and layout ------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self._model_select = pn.widgets.Select.from_param(self.param.model_name, name="Model", width=320)
        self._model_info = pn.pane.Markdown("", margin=(18, 10, 0, 10), sizing_mode="stretch_width")
        self._no_model = pn.pane.Alert(NO_MODEL_MESSAGE, alert_type="warning", visible=False,
                                       sizing_mode="stretch_width", css_classes=["no-model"])
        self._sliders: dict[str, pn.widgets.EditableFloatSlider] = {}
        for column in SLIDER_FEATURES:
            start, end, step = _FALLBACK_RANGES[column]
            self._sliders[column] = pn.widgets.EditableFloatSlider.from_param(
                self.inputs.param[column], name=column, start=start, end=end, step=step,
                format="0,0.00" if column == "amount" else "0.0000",
                sizing_mode="stretch_width", css_classes=[f"slider-{column}"],
            )
        self._frozen_inputs: dict[str, pn.widgets.FloatInput] = {
            column: pn.widgets.FloatInput.from_param(
                self.inputs.param[column], name=column, disabled=True, format="0.0000", width=112,
                description=None, css_classes=[f"input-{column}"])
            for column in FROZEN_FEATURES
        }
        self._origin_text = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._reference_alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self._load_clear_button = pn.widgets.Button.from_param(
            self.param.load_clear, label="Random real clear", color="success",
            variant="outline", width=170)
        self._load_fraud_button = pn.widgets.Button.from_param(
            self.param.load_fraud, label="Random real fraud", color="danger",
            variant="outline", width=170)
        self._load_reference_button = pn.widgets.Button.from_param(
            self.param.load_reference, label="↺ Reference", color="default", width=130)
        self._unfreeze = pn.widgets.MultiChoice.from_param(
            self.param.unfrozen, name="Unfreeze inputs to edit them", placeholder="Choose features…",
            sizing_mode="stretch_width")
        self._predict_button = pn.widgets.Button.from_param(
            self.param.predict, label="⚡ Predict", color="primary", width=180, height=44,
            css_classes=["predict-button"])
        self._verdict = pn.pane.HTML(_verdict_html(None), sizing_mode="stretch_width",
                                     stylesheets=[_RESULT_CSS], css_classes=["verdict-pane"])
        self._probability = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_RESULT_CSS])
        self._chart = pn.pane.HoloViews(None, sizing_mode="stretch_width", height=340)
        # Visibility is toggled on a wrapper: toggling it on the HoloViews pane itself trips Panel.
        self._chart_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self._chart_box = pn.Column(self._chart_note, self._chart, visible=False, sizing_mode="stretch_width")
        self._table = pn.widgets.Tabulator(
            _empty_predictions_table(), disabled=True, show_index=False, pagination=None,
            sizing_mode="stretch_width", layout="fit_data_stretch", height=None,
            formatters=_table_formatters(), css_classes=["predictions-table"],
        )
        self._pager = pn.pane.Markdown("", margin=(8, 10), css_classes=["pager"])
        self._newer_button = pn.widgets.Button.from_param(self.param.newer_page, label="← Newer",
                                                          width=110)
        self._older_button = pn.widgets.Button.from_param(self.param.older_page, label="Older →",
                                                          width=110)
        self._file_input = pn.widgets.FileInput(accept=".csv,text/csv", multiple=False, width=320,
                                                css_classes=["batch-file"])
        self._file_input.param.watch(self._on_file_uploaded, "value")
        self._batch_status = pn.pane.Markdown(_BATCH_HELP, sizing_mode="stretch_width")
        self._batch_alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width",
                                          css_classes=["batch-error"])
        self._score_batch_button = pn.widgets.Button.from_param(
            self.param.score_batch, label="▶ Score and save batch", color="primary",
            width=220)
        self._batch_table = pn.widgets.Tabulator(
            _display_frame(predictions_frame([])), disabled=True, show_index=False, pagination="remote", page_size=10,
            sizing_mode="stretch_width", formatters=_table_formatters(), css_classes=["batch-table"],
        )
        # The table joins the layout with the first result: a Tabulator built while hidden shows no rows.
        self._batch_box = pn.Column(sizing_mode="stretch_width")
        self._download = pn.widgets.FileDownload(
            callback=self.batch_download, filename="scored.csv", label="⬇ Download scored CSV",
            color="success", visible=False, width=240, css_classes=["batch-download"])

    def _build_layout(self) -> pn.viewable.Viewable:
        header = pn.Row(self._model_select, self._model_info, sizing_mode="stretch_width")
        frozen_grid = pn.GridBox(*self._frozen_inputs.values(), ncols=5, sizing_mode="stretch_width")
        inputs = pn.Card(
            self._reference_alert,
            self._origin_text,
            pn.Row(self._load_clear_button, self._load_fraud_button, self._load_reference_button),
            pn.GridBox(*self._sliders.values(), ncols=2, sizing_mode="stretch_width"),
            pn.pane.Markdown("**Frozen inputs** (the reference transaction unless loaded or unfrozen)",
                             margin=(10, 10, 0, 10)),
            self._unfreeze,
            frozen_grid,
            pn.Row(self._predict_button, align="end"),
            title="Transaction", collapsible=False, sizing_mode="stretch_width",
        )
        result = pn.Card(
            self._verdict, self._probability, self._chart_box,
            title="Verdict", collapsible=False, sizing_mode="stretch_width", min_height=300,
        )
        predictions = pn.Card(
            pn.Row(self._newer_button, self._older_button, self._pager),
            self._table,
            title="Saved predictions (newest first)", collapsible=False, sizing_mode="stretch_width",
        )
        batch = pn.Card(
            self._batch_status,
            pn.Row(self._file_input, self._score_batch_button, self._download),
            self._batch_alert,
            self._batch_box,
            title="Batch scoring (CSV)", collapsible=False, sizing_mode="stretch_width",
        )
        return pn.Column(
            header, self._no_model,
            pn.Row(pn.Column(inputs, sizing_mode="stretch_width", min_width=420),
                   pn.Column(result, sizing_mode="stretch_width", min_width=380),
                   sizing_mode="stretch_width"),
            predictions, batch,
            sizing_mode="stretch_width", name=self.title, css_classes=["inference-section"],
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @property
    def slider_widgets(self) -> list[pn.widgets.EditableFloatSlider]:
        """The sliders, in display order (their label is the column they edit)."""
        return list(self._sliders.values())

    @property
    def frozen_widgets(self) -> list[pn.widgets.FloatInput]:
        """The inputs of the 25 frozen features, in column order."""
        return list(self._frozen_inputs.values())

    # -- start-up and polling ----------------------------------------------------------------
    async def _on_load(self) -> None:
        """Deferred start-up: models, the reference transaction, saved predictions; then start polling."""
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
        root = models_dir()
        signature = tuple(_stat_signature(path) for path in (root, root / ACTIVE_FILE))
        return (newest[0]["id"] if newest else None), signature

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

    # -- models ------------------------------------------------------------------------------
    @staticmethod
    def _read_models() -> tuple[list[dict[str, Any]], str | None, tuple]:
        root = models_dir()
        signature = tuple(_stat_signature(path) for path in (root, root / ACTIVE_FILE))
        return list_models(), get_active_model_name(), signature

    async def refresh_models(self) -> None:
        """Re-read the saved models and keep (or pick) the selection."""
        try:
            models, active, signature = await asyncio.to_thread(self._read_models)
        except Exception as exc:
            notify_error("Could not list the saved models", exc)
            return
        self._models_signature = signature
        names = [m["name"] for m in models]
        wanted = self.state.active_model
        current = self.model_name
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
            self.param.model_name.objects = {_model_label(m, active): m["name"] for m in models}
            with param.edit_constant(self):
                self.models = models
            self.model_name = choice
        finally:
            self._programmatic_model = False
        self._render_model_info()
        self._update_controls()

    @param.depends("state.models_changed", watch=True)
    async def _on_models_changed(self) -> None:
        await self.refresh_models()

    @param.depends("state.active_model", watch=True)
    def _follow_active_model(self) -> None:
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
        self._render_model_info()
        self._update_controls()

    def _render_model_info(self) -> None:
        meta = next((m for m in self.models if m["name"] == self.model_name), None)
        self._no_model.visible = not self.models
        if meta is None:
            self._model_info.object = ""
            return
        metrics = meta.get("metrics") or {}
        parts = [f"**{meta.get('kind', '?')}**", f"threshold **{float(meta.get('threshold', 0.5)):.4f}**"]
        for key, label in (("f1", "F1"), ("pr_auc", "PR-AUC"), ("recall", "recall")):
            if isinstance(metrics.get(key), (int, float)):
                parts.append(f"{label} {metrics[key]:.3f}")
        if meta.get("trained_at"):
            parts.append(f"trained {str(meta['trained_at'])[:16].replace('T', ' ')}")
        self._model_info.object = " · ".join(parts)

    # -- the transaction ---------------------------------------------------------------------
    async def _load_reference_data(self) -> None:
        try:
            data = await asyncio.to_thread(reference_data)
        except Exception as exc:
            with param.edit_constant(self):
                self.reference_error = str(exc)
            self._reference_alert.object = (f"**The data set is not available**, so the inputs start at zero and "
                                            f"random real transactions cannot be loaded: {exc}")
            self._reference_alert.visible = True
            notify_error("Could not compute the reference transaction", exc)
            self._update_controls()
            return
        with param.edit_constant(self):
            self.param.update(reference=data, reference_error=None)
        self._reference_alert.visible = False
        for column, slider in self._sliders.items():
            bounds = data.ranges[column]
            slider.param.update(start=bounds.start, end=bounds.end, step=bounds.step)
        self._apply_inputs(data.reference, "the reference transaction (median of the clear transactions)")
        self._update_controls()

    def _apply_inputs(self, values: dict[str, float], origin: str, sample: SampledTransaction | None = None) -> None:
        """Set all 29 inputs at once, widening a slider whose range does not hold its new value."""
        for column, slider in self._sliders.items():
            value = values[column]
            if value < slider.start:
                slider.start = math.floor(value / slider.step) * slider.step
            if value > slider.end:
                slider.end = math.ceil(value / slider.step) * slider.step
        self._loading_inputs = True
        try:
            self.inputs.param.update(**{name: float(values[name]) for name in MODEL_FEATURES})
        finally:
            self._loading_inputs = False
        with param.edit_constant(self):
            self.param.update(origin=origin, sample=sample, edited=False)

    def _on_input_edited(self, *events: param.parameterized.Event) -> None:
        if not self._loading_inputs and not self.edited:
            with param.edit_constant(self):
                self.edited = True

    @param.depends("origin", "edited", watch=True)
    def _render_origin(self) -> None:
        suffix = " — *edited*" if self.edited else ""
        self._origin_text.object = f"Inputs: {self.origin}{suffix}" if self.origin else ""

    async def _load_sample(self, label: str) -> None:
        button = self._load_fraud_button if label == "fraud" else self._load_clear_button
        with busy(button):
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
        self._apply_inputs(self.reference.reference, "the reference transaction (median of the clear transactions)")

    @param.depends("unfrozen", watch=True)
    def _update_frozen(self) -> None:
        for column, widget in self._frozen_inputs.items():
            widget.disabled = column not in self.unfrozen

    # -- predict -----------------------------------------------------------------------------
    @staticmethod
    def _score(transaction: dict[str, float], model: str, top: int) -> tuple[dict[str, Any], pd.DataFrame | None]:
        """Score and save one transaction (source "ui"), then explain it. Runs in a worker thread."""
        row = score_and_save(transaction, model=model, source="ui")[0]
        try:
            contributions = explain(transaction, model=model, top=top)
        except Exception:
            # The prediction is saved; a failing explanation must not hide its verdict.
            log.exception("could not explain prediction %s", row["id"])
            contributions = None
        return row, contributions

    @param.depends("predict", watch=True)
    async def _on_predict(self) -> None:
        name = self.model_name
        if name is None:
            notify_error("No saved model to predict with: train and save one in the Training tab")
            return
        transaction = self.inputs.values()
        with busy(self._predict_button, self._verdict):
            try:
                row, contributions = await asyncio.to_thread(self._score, transaction, name, self.top_features)
            except Exception as exc:
                notify_error("Prediction failed (nothing was saved)", exc)
                await self.refresh_models()
                return
        with param.edit_constant(self):
            self.param.update(last_prediction=row, contributions=contributions)
        if contributions is None:
            notify_error(f"Prediction {row['id']} was saved, but its contributions could not be computed")
        await self.refresh_predictions()
        self._announce_predictions()

    @param.depends("last_prediction", watch=True)
    @catch_and_notify("Could not show the prediction")
    def _render_prediction(self) -> None:
        self._verdict.object = _verdict_html(self.last_prediction)
        self._probability.object = _probability_html(self.last_prediction)

    @param.depends("contributions", watch=True)
    @catch_and_notify("Could not draw the contributions")
    def _render_contributions(self) -> None:
        frame = self.contributions
        if frame is None or frame.empty:
            self._chart_box.visible = False
            self._chart.object = None
            return
        moved = frame[frame["contribution"] != 0]
        self._chart.object = _contributions_chart(moved) if len(moved) else None
        self._chart.visible = bool(len(moved))
        self._chart_note.object = (
            "" if len(moved) else "No input moved this transaction's P(fraud) away from the model's base value.")
        self._chart_box.visible = True

    def _announce_predictions(self) -> None:
        """Tell the other views of this session that predictions were saved."""
        self._own_announcement = True
        try:
            self.state.param.trigger("predictions_changed")
        finally:
            self._own_announcement = False

    # -- saved predictions -------------------------------------------------------------------
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
        frame = _display_frame(predictions_frame(rows, TABLE_FEATURES))
        with param.edit_constant(self):
            self.param.update(predictions=frame, total_predictions=total)
        if page != self.page:
            self.page = page

    @param.depends("state.predictions_changed", watch=True)
    def _on_predictions_changed(self) -> None:
        if not self._own_announcement:
            pn.state.execute(self.refresh_predictions)

    @param.depends("page", watch=True)
    async def _on_page(self) -> None:
        await self.refresh_predictions()

    @param.depends("newer_page", watch=True)
    def _on_newer_page(self) -> None:
        self.page = max(1, self.page - 1)

    @param.depends("older_page", watch=True)
    def _on_older_page(self) -> None:
        self.page = min(self._page_count(), self.page + 1)

    def _page_count(self) -> int:
        return max(1, math.ceil(self.total_predictions / self.page_size))

    @param.depends("predictions", "total_predictions", "page", watch=True)
    @catch_and_notify("Could not show the saved predictions")
    def _render_predictions(self) -> None:
        if self.predictions is not None:
            self._table.value = self.predictions
        pages = self._page_count()
        noun = "prediction" if self.total_predictions == 1 else "predictions"
        self._pager.object = f"Page **{self.page}** of {pages} · {self.total_predictions:,} saved {noun}"
        self._newer_button.disabled = self.page <= 1
        self._older_button.disabled = self.page >= pages

    # -- batch -------------------------------------------------------------------------------
    def _on_file_uploaded(self, event: param.parameterized.Event) -> None:
        self.param.update(batch_filename=self._file_input.filename or "", batch_csv=event.new)

    @param.depends("batch_csv", watch=True)
    async def _on_batch_csv(self) -> None:
        data = self.batch_csv
        with param.edit_constant(self):
            self.param.update(batch_frame=None, batch_error=None)
        if data is None:
            return
        with busy(self._batch_status, self._score_batch_button):
            try:
                frame = await asyncio.to_thread(parse_batch_csv, data)
            except BatchFileError as exc:
                log.info("refused uploaded batch %r: %s", self.batch_filename, exc)
                with param.edit_constant(self):
                    self.batch_error = str(exc)
                return
            except Exception as exc:
                notify_error("Could not read the uploaded file", exc)
                with param.edit_constant(self):
                    self.batch_error = f"could not read the file: {exc}"
                return
        with param.edit_constant(self):
            self.batch_frame = frame

    @param.depends("score_batch", watch=True)
    async def _on_score_batch(self) -> None:
        frame, name = self.batch_frame, self.model_name
        if frame is None or name is None:
            notify_error("Upload a valid CSV and select a saved model first")
            return
        with busy(self._score_batch_button, self._batch_box):
            try:
                rows, csv_bytes = await asyncio.to_thread(_score_batch_with_csv, frame, name)
            except Exception as exc:
                notify_error("Batch scoring failed (nothing was saved)", exc)
                with param.edit_constant(self):
                    self.batch_error = f"scoring failed, nothing was saved: {exc}"
                return
        self._batch_csv_bytes = csv_bytes
        stem = PurePath(self.batch_filename or "batch.csv").stem or "batch"
        self._download.filename = f"{stem}-scored.csv"
        with param.edit_constant(self):
            self.param.update(batch_frame=None, batch_result=predictions_frame(rows))
        await self.refresh_predictions()
        self._announce_predictions()

    def batch_download(self) -> io.BytesIO:
        """The latest scored batch as CSV (the ``FileDownload`` callback)."""
        return io.BytesIO(self._batch_csv_bytes)

    @param.depends("batch_frame", "batch_error", "batch_result", watch=True)
    @catch_and_notify("Could not show the batch")
    def _render_batch(self) -> None:
        self._batch_alert.object = f"**Nothing was saved.** {html.escape(self.batch_error)}" if self.batch_error else ""
        self._batch_alert.visible = bool(self.batch_error)
        name = html.escape(self.batch_filename or "the file")
        if self.batch_frame is not None:
            self._batch_status.object = (f"**{name}**: {len(self.batch_frame):,} valid transactions, ready to be "
                                         f"scored with **{self.model_name or '—'}**.")
        elif self.batch_result is not None and not self.batch_error:
            result = self.batch_result
            frauds = int(result["is_fraud"].sum())
            self._batch_status.object = (
                f"**{name}**: scored {len(result):,} transactions with **{result['model'].iat[0]}** and saved "
                f"them as predictions #{int(result['id'].min())}–#{int(result['id'].max())} "
                f"(source *batch*): **{frauds:,} fraudulent** ({frauds / len(result):.2%}).")
        elif not self.batch_error:
            self._batch_status.object = _BATCH_HELP
        else:
            self._batch_status.object = f"**{name}** was refused."
        if self.batch_result is not None:
            self._batch_table.value = _display_frame(self.batch_result)
            if not self._batch_box.objects:
                self._batch_box.objects = [self._batch_table]
        self._download.visible = self.batch_result is not None
        self._update_controls()

    # -- enabling ----------------------------------------------------------------------------
    def _update_controls(self) -> None:
        has_model = self.model_name is not None
        has_data = self.reference is not None
        self._predict_button.disabled = not has_model
        self._score_batch_button.disabled = not (has_model and self.batch_frame is not None)
        self._load_clear_button.disabled = not has_data
        self._load_fraud_button.disabled = not has_data or len(self.reference.fraud_rows) == 0
        self._load_reference_button.disabled = not has_data


# -- helpers (no state) -----------------------------------------------------------------------

def _in_server_session() -> bool:
    """True inside a browser session of a running server (where periodic callbacks make sense)."""
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


def _score_batch_with_csv(frame: pd.DataFrame, model: str) -> tuple[list[dict[str, Any]], bytes]:
    rows = score_batch(frame, model=model)
    return rows, results_to_csv(rows)


def _stat_signature(path: Any) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _model_label(meta: dict[str, Any], active: str | None) -> str:
    label = f"{meta['name']} ({meta.get('kind', '?')})"
    return f"{label} · active" if meta["name"] == active else label


def _display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Prediction rows for a table: a readable verdict instead of 0/1, no model version."""
    out = frame.drop(columns=["model_version", "is_fraud"])
    out.insert(out.columns.get_loc("threshold") + 1, "verdict",
               np.where(frame["is_fraud"].to_numpy(dtype=bool), "Fraudulent", "Clear"))
    out["created_at"] = out["created_at"].astype(str).str.slice(0, 19).str.replace("T", " ")
    return out


def _empty_predictions_table() -> pd.DataFrame:
    return _display_frame(predictions_frame([], TABLE_FEATURES))


def _table_formatters() -> dict[str, Any]:
    formatters: dict[str, Any] = {"fraud_probability": NumberFormatter(format="0.00000"),
                                  "threshold": NumberFormatter(format="0.0000")}
    formatters.update({name: NumberFormatter(format="0.0000") for name in MODEL_FEATURES if name != "amount"})
    formatters["amount"] = NumberFormatter(format="0,0.00")
    return formatters


def _verdict_html(row: dict[str, Any] | None) -> str:
    if row is None:
        return "<div class='verdict pending'>Press <b>Predict</b> to score the transaction.</div>"
    fraud = bool(row["is_fraud"])
    word, css = ("Fraudulent", "fraud") if fraud else ("Clear", "clear")
    return (f"<div class='verdict {css}'>{word}"
            f"<div class='sub'>prediction #{int(row['id'])} · model {html.escape(str(row['model']))} · "
            f"saved (source {html.escape(str(row['source']))})</div></div>")


def _probability_html(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    p, t = float(row["fraud_probability"]), float(row["threshold"])
    css = "fraud" if row["is_fraud"] else "clear"
    relation = "at or above" if row["is_fraud"] else "below"
    return (
        "<div class='prob'>"
        f"<div class='caption'>P(fraud) <b>{p:.4f}</b> is {relation} the model's threshold <b>{t:.4f}</b></div>"
        f"<div class='track' title='P(fraud) {p:.6f}; threshold {t:.6f}'>"
        f"<div class='fill {css}' style='width:{100 * p:.3f}%'></div>"
        f"<div class='marker' style='left:{100 * t:.3f}%'><span>threshold</span></div></div>"
        "<div class='scale'><span>0</span><span>0.5</span><span>1</span></div></div>"
    )


def _contributions_chart(frame: pd.DataFrame) -> hv.Bars:
    data = frame.iloc[::-1].copy()  # largest at the top once the axes are inverted
    data["direction"] = np.where(data["contribution"] >= 0, "towards fraud", "towards clear")
    return hv.Bars(data, kdims=["feature"], vdims=["contribution", "direction", "value"]).opts(
        invert_axes=True, color="direction", cmap={"towards fraud": FRAUD_COLOR, "towards clear": CLEAR_COLOR},
        responsive=True, height=330, tools=["hover"], show_legend=True, legend_position="bottom_right",
        xlabel="", ylabel="contribution to P(fraud)", xformatter="%.4f",
        title="Top feature contributions for this transaction",
        default_tools=[], toolbar=None,
    )


_BATCH_HELP = (
    f"Upload a CSV with a header row and the 29 model inputs `feature1` … `feature28` and `amount` "
    f"(Kaggle names `V1` … `V28`, `Amount` work too; `time` and `is_fraud` are ignored), up to "
    f"{MAX_BATCH_ROWS:,} rows. The whole file is validated first: nothing is saved unless every row is valid."
)

_RESULT_CSS = f"""
.verdict {{ font-size: 2.1em; font-weight: 700; padding: 14px 18px; border-radius: 8px; }}
.verdict .sub {{ font-size: 0.42em; font-weight: 400; opacity: 0.85; margin-top: 4px; }}
.verdict.clear {{ color: white; background: {CLEAR_COLOR}; }}
.verdict.fraud {{ color: white; background: {FRAUD_COLOR}; }}
.verdict.pending {{ font-size: 1.1em; font-weight: 400; opacity: 0.7; border: 1px dashed currentColor; }}
.prob {{ margin: 6px 2px; }}
.prob .caption {{ margin-bottom: 6px; }}
.prob .track {{ position: relative; margin-top: 22px; height: 22px; border-radius: 4px;
                background: rgba(127, 127, 127, 0.2); }}
.prob .fill {{ position: absolute; left: 0; top: 0; bottom: 0; border-radius: 4px; min-width: 2px; }}
.prob .fill.clear {{ background: {CLEAR_COLOR}; }}
.prob .fill.fraud {{ background: {FRAUD_COLOR}; }}
.prob .marker {{ position: absolute; top: -5px; bottom: -5px; width: 3px; margin-left: -1px;
                 background: currentColor; }}
.prob .marker span {{ position: absolute; top: -18px; left: 4px; font-size: 0.75em; white-space: nowrap; }}
.prob .scale {{ display: flex; justify-content: space-between; font-size: 0.8em; opacity: 0.7; }}
"""


__all__ = ["NO_MODEL_MESSAGE", "InferenceSection", "TransactionInputs"]
