"""The Training tab's results: indicators, charts, the make-active offer, threshold tools, the runs table."""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from bokeh.models import CustomJSTickFormatter
from bokeh.models.widgets.tables import BooleanFormatter, NumberFormatter

from fraud_app.ui.charts import ChartSpec, OffloopChart
from fraud_app.ui.theme import ACCENT_COLOR, stylesheet
from fraud_app.ui.training import charts
from fraud_app.ui.training.controller import (
    CURRENCY,
    SPLIT_LABELS,
    UI_STEP_PAUSE,
    TrainingController,
    kind_label,
)
from fraud_app.ui.training.form import action_button, tooltip
from fraud_app.ui.training.worker import SessionDispatcher

#: The indicators above the charts: key in the metrics, label.
INDICATORS = (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall"),
              ("pr_auc", "PR-AUC"), ("roc_auc", "ROC-AUC"), ("brier", "Brier"))
#: How an indicator's value is printed (the Brier score of rare frauds is a few ten-thousandths).
INDICATOR_FORMATS = {"brier": "{value:.5f}"}
#: Chart heights, in pixels.
CHART_HEIGHT = 310
#: Widths of the runs table's text columns; the metric columns share the rest of the width.
RUN_WIDTHS = {"id": 40, "created_at": 142, "model": 135, "saved": 58}
#: Indicators that depend on the threshold (the others are the result's own).
THRESHOLD_METRICS = ("f1", "precision", "recall")
#: JavaScript: the log-scaled slider shows thresholds, not their logarithm.
THRESHOLD_TICKS_JS = "return Number(Math.pow(10, tick).toPrecision(2)).toString();"


def result_key(result: Any) -> tuple:
    """What identifies a training result in a chart's cache key (its curves are not hashed)."""
    return (id(result), result.kind, result.name, result.seed, result.trained_at, result.duration_s)


def money(value: float) -> str:
    """An amount of the cost unit, e.g. ``€1,234``."""
    return f"{CURRENCY}{value:,.0f}"


def indicator_value(key: str, metrics: dict[str, Any], result: Any) -> float:
    """The value an indicator shows (NaN when unknown)."""
    if key in THRESHOLD_METRICS:
        value = metrics.get(key) if metrics else None
    else:
        value = result.metrics.get(key) if result is not None else None
    return float("nan") if value is None else float(value)


def result_note(result: Any, threshold: float, run_id: int | None) -> str:
    if result is None:
        return ""
    how = ("out-of-fold scores of the training rows" if result.threshold_method == "oof"
           else "a validation split of the training rows")
    split = SPLIT_LABELS.get(result.split, result.split).split(" (")[0].lower()
    return (f"**{kind_label(result.kind)}**{f' `{result.name}`' if result.name else ''} · {split} split, "
            f"held-out test part: {result.metrics['n_test']:,} transactions, {result.metrics['n_test_fraud']:,} "
            f"frauds · F1, precision and recall at threshold **{threshold:.4g}** (the model's, chosen on {how}: "
            f"{result.threshold:.4g}) · Brier score {result.metrics.get('brier', float('nan')):.5f} · "
            f"trained in {result.duration_s:.1f} s" + (f" · run #{run_id}" if run_id is not None else ""))


def cost_text(metrics: dict[str, Any], cost_fn: float, cost_fp: float) -> str:
    """The cost at the threshold with its breakdown, against flagging nothing."""
    if not metrics:
        return ""
    (_, fp), (fn, tp) = metrics["confusion_matrix"]
    saving = metrics["saving"]
    verdict = (f"saves **{money(saving)}**" if saving > 0 else
               f"costs **{money(-saving)} more**" if saving < 0 else "costs the same")
    return (f"**Cost on the test split: {money(metrics['cost'])}** = {fn:,} missed frauds × {money(cost_fn)} "
            f"({money(metrics['cost_missed'])}) + {fp:,} false alarms × {money(cost_fp)} "
            f"({money(metrics['cost_alarms'])}).  \n"
            f"Flag nothing (no model): {fn + tp:,} missed frauds × {money(cost_fn)} = "
            f"{money(metrics['cost_reference'])}; this threshold {verdict}.")


def alerts_text(metrics: dict[str, Any], per_day: float | None) -> str:
    """Alerts at the threshold: on the test split, and per day at the data set's volume."""
    if not metrics:
        return ""
    text = (f"**Alerts:** {metrics['flagged']:,} flagged on the test split ({metrics['flag_rate']:.3%} of its "
            "transactions)")
    if metrics.get("alerts_per_day") is None or per_day is None:
        return text + "; alerts per day unknown (the data set has no time span)."
    return (text + f" → about **{metrics['alerts_per_day']:,.0f} alerts per day** at the data set's volume "
            f"({per_day:,.0f} transactions per day: all its rows over its own time span).")


def cheapest_text(cheapest: float | None, has_result: bool) -> str:
    if not has_result:
        return ""
    if cheapest is None:
        return "No cheapest-threshold suggestion: this result carries no training-row scores."
    return (f"Cheapest threshold for these costs on the **training rows' out-of-fold (or validation) scores**: "
            f"**{cheapest:.4g}**.")


def unsaved_text(unsaved: bool, saved: float | None) -> str:
    return f"● Unsaved: the model keeps {saved:.4g} until you save." if unsaved and saved is not None else ""


class TrainingResults(pn.viewable.Viewer):
    """What the latest training gave: figures, charts, threshold and costs, and every run so far."""

    controller = param.ClassSelector(class_=TrainingController, doc="The Training tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl = self.controller
        placeholder = pn.pane.Markdown(
            "### No results yet\nChoose a model on the left and click **Train**. The metrics, the confusion "
            "matrix, the precision-recall curve and the reliability curve of the held-out test split appear here.",
            visible=ctrl.param.has_result.rx.not_(), css_classes=["training-placeholder"])
        # Filled by prepare() after the first render, one piece per event-loop tick.
        self._body = pn.Column(visible=ctrl.param.has_result, sizing_mode="stretch_width",
                               css_classes=["training-results"])
        # Two charts a row: three side by side cut their titles in the tab's right column.
        self._charts = pn.GridBox(ncols=2, sizing_mode="stretch_width")
        self._layout = pn.Column(placeholder, self._body, self._runs(), sizing_mode="stretch_width")

    def prepare(self) -> None:
        """Build the result's figures, threshold tools and charts after the page is shown.

        Call it from ``pn.state.onload``. Each piece is built in its own event-loop callback, with a
        pause in between (``UI_STEP_PAUSE``), so the tab is usable at once and neither its first render
        nor the publishing of a result renders a chart: a result only updates what already exists.
        (Building them while the first training runs instead stalled ``/api/health`` for seconds on a
        loaded machine: a chart's first render is the costliest step.) Outside a server everything is
        built at once.
        """
        if self._body.objects:
            return
        dispatch = SessionDispatcher.for_current_session()
        steps = [self._add_figures, self._add_threshold_tools, self._add_confusion, self._add_curve,
                 self._add_reliability]

        def run_next() -> None:
            steps.pop(0)()
            if steps:
                dispatch.later(run_next, UI_STEP_PAUSE)

        dispatch.later(run_next, UI_STEP_PAUSE)

    def _add_figures(self) -> None:
        ctrl = self.controller
        metrics, result = ctrl.param.threshold_metrics, ctrl.param.result
        indicators = [
            pn.indicators.Number(name=label, value=pn.bind(indicator_value, key, metrics, result),
                                 format=INDICATOR_FORMATS.get(key, "{value:.3f}"), font_size="26pt", title_size="11pt",
                                 default_color=ACCENT_COLOR, margin=(0, 18), css_classes=[f"metric-{key}"])
            for key, label in INDICATORS]
        note = pn.pane.Markdown(pn.bind(result_note, result, ctrl.param.threshold, ctrl.param.run_id),
                                sizing_mode="stretch_width", css_classes=["training-result-note"])
        self._body[:] = [pn.Row(*indicators, sizing_mode="stretch_width"), note, self._offer(), self._charts]

    def _add_threshold_tools(self) -> None:
        self._body.append(self._threshold_tools())

    def _add_confusion(self) -> None:
        self._charts.append(self._chart(pn.bind(self._confusion, self.controller.param.confusion_shown),
                                        "confusion matrix"))

    def _add_curve(self) -> None:
        self._charts.append(self._chart(pn.bind(self._curve, self.controller.param.curve_shown),
                                        "precision-recall curve"))

    def _add_reliability(self) -> None:
        self._charts.append(self._chart(pn.bind(self._reliability, self.controller.param.result),
                                        "reliability curve"))

    @staticmethod
    def _chart(spec: Any, title: str) -> OffloopChart:
        """A chart drawn in the worker thread and attached on the loop (never rendered on the event loop)."""
        return OffloopChart(spec=spec, title=title, height=CHART_HEIGHT)

    def _offer(self) -> pn.viewable.Viewable:
        """"Make `X` active?" after a run saved a model that is not the active one."""
        ctrl = self.controller
        question = pn.pane.Markdown(
            pn.bind(lambda name, active: (f"**Make `{name}` active?** The API and the Inference tab still use "
                                          f"`{active}`." if name else ""),
                    ctrl.param.offered_model, ctrl.param.active_name), margin=(8, 10),
            css_classes=["training-offer-question"])
        yes = action_button(
            ctrl.param.activate_offered, "Make active", button_type="primary", width=130,
            css_classes=["training-offer-yes"],
            description=tooltip("Pin this model as the one the API and the Inference tab score with."))
        no = action_button(ctrl.param.dismiss_offer, "Not now", button_type="light", width=100,
                           css_classes=["training-offer-no"])
        return pn.Row(question, yes, no, visible=ctrl.param.offered_model.rx.is_not(None),
                      css_classes=["training-offer"], sizing_mode="stretch_width", stylesheets=[stylesheet("training")])

    def _threshold_tools(self) -> pn.viewable.Viewable:
        ctrl = self.controller
        slider = pn.widgets.FloatSlider.from_param(
            ctrl.param.threshold_log, label="Decision threshold (log scale)", step=0.01,
            format=CustomJSTickFormatter(code=THRESHOLD_TICKS_JS),
            sizing_mode="stretch_width", min_width=300, css_classes=["training-threshold"],
            stylesheets=[stylesheet("training")])
        exact = pn.widgets.FloatInput.from_param(ctrl.param.threshold, label="Exact threshold", step=0.0001,
                                                 format="0.00000", width=140, css_classes=["training-threshold-exact"])
        cost_fn = pn.widgets.FloatInput.from_param(ctrl.param.cost_fn, label=f"Cost of a missed fraud ({CURRENCY})",
                                                   width=180, css_classes=["training-cost-fn"])
        cost_fp = pn.widgets.FloatInput.from_param(ctrl.param.cost_fp, label=f"Cost of a false alarm ({CURRENCY})",
                                                   width=180, css_classes=["training-cost-fp"])
        costs = pn.pane.Markdown(pn.bind(cost_text, ctrl.param.threshold_metrics, ctrl.param.cost_fn,
                                         ctrl.param.cost_fp),
                                 sizing_mode="stretch_width", css_classes=["training-cost"])
        alerts = pn.pane.Markdown(pn.bind(alerts_text, ctrl.param.threshold_metrics, ctrl.param.transactions_per_day),
                                  sizing_mode="stretch_width", css_classes=["training-alerts"])
        cheapest = pn.pane.Markdown(pn.bind(cheapest_text, ctrl.param.cheapest, ctrl.param.has_result),
                                    sizing_mode="stretch_width")
        use_cheapest = action_button(
            ctrl.param.use_cheapest, "Use the cheapest threshold", button_type="default",
            disabled=ctrl.param.cheapest.rx.is_(None), css_classes=["training-use-cheapest"],
            description=tooltip("Move the threshold to the cheapest one on the training rows' out-of-fold scores.",
                                "top"))
        save = action_button(
            ctrl.param.save_threshold, "Save threshold with the model", button_type="success",
            disabled=pn.bind(lambda unsaved, result: not (unsaved and result is not None and result.saved),
                             ctrl.param.threshold_unsaved, ctrl.param.result),
            css_classes=["training-save-threshold"],
            description=tooltip("Store this threshold in the saved model: the API and Inference then use it.",
                                "top"))
        unsaved = pn.pane.Markdown(pn.bind(unsaved_text, ctrl.param.threshold_unsaved, ctrl.param.saved_threshold),
                                   visible=ctrl.param.threshold_unsaved, css_classes=["training-unsaved"],
                                   stylesheets=[stylesheet("training")],
                                   margin=(12, 10))
        return pn.Card(
            pn.pane.Markdown(
                "Figures above follow this threshold, recomputed from the held-out test scores without "
                "retraining: explore here, but choose on training rows. The model's own threshold and the cheapest "
                "threshold are found on the **training rows** (out-of-fold scores, or a validation split), so "
                "the test split is never used to tune it. "
                "The slider is logarithmic, so the small thresholds of well-separated scores get room.",
                css_classes=["fds-note"], stylesheets=[stylesheet("training")]),
            slider, pn.Row(exact, cost_fn, cost_fp), costs, alerts, cheapest,
            pn.Row(use_cheapest, save, unsaved),
            title=f"Threshold and costs (in {CURRENCY}; reset to the defaults for each new model)",
            sizing_mode="stretch_width", css_classes=["training-threshold-card"])

    @staticmethod
    def _confusion(metrics: dict[str, Any]) -> ChartSpec:
        matrix = metrics.get("confusion_matrix") if metrics else None
        threshold = metrics.get("threshold") if metrics else None
        key = (None if matrix is None else tuple(tuple(int(v) for v in row) for row in matrix), threshold)
        return ChartSpec(charts.confusion_heatmap, matrix, threshold, key=key)

    def _curve(self, metrics: dict[str, Any]) -> ChartSpec:
        result = self.controller.result
        if result is None or not metrics:
            return ChartSpec(charts.pr_curve_plot, None, key=None)
        chosen = {"recall": metrics["recall"], "precision": metrics["precision"], "threshold": metrics["threshold"]}
        own = {"recall": result.metrics["recall"], "precision": result.metrics["precision"],
               "threshold": result.threshold}
        key = (result_key(result), tuple(chosen.values()), tuple(own.values()))
        return ChartSpec(charts.pr_curve_plot, result.pr_curve, chosen, own, key=key)

    @staticmethod
    def _reliability(result: Any) -> ChartSpec:
        if result is None:
            return ChartSpec(charts.reliability_plot, None, key=None)
        return ChartSpec(charts.reliability_plot, result.reliability, key=result_key(result))

    def _runs(self) -> pn.viewable.Viewable:
        ctrl = self.controller
        number = NumberFormatter(format="0.000")
        table = pn.widgets.Tabulator(
            ctrl.param.runs, disabled=True, show_index=False, pagination="local", page_size=8,
            sizing_mode="stretch_width", layout="fit_columns", widths=RUN_WIDTHS,
            hidden_columns=list(charts.RUN_DETAIL_COLUMNS), row_content=_run_detail, css_classes=["training-runs"],
            stylesheets=[stylesheet("training")], sortable=False,  # no sort arrows: every title fits
            formatters={**{key: number for key in charts.RUN_METRICS},
                        "duration_s": NumberFormatter(format="0.0"), "saved": BooleanFormatter()},
            titles={"created_at": "when (UTC)", "pr_auc": "PR-AUC", "roc_auc": "ROC-AUC", "f1": "F1",
                    "duration_s": "seconds"})
        refresh = action_button(ctrl.param.refresh, "Refresh", button_type="light", width=110)
        return pn.Card(
            pn.Row(pn.pane.Markdown("Every run of every session, newest first. Open a row (▸) for its kind "
                                    "and hyper-parameters."), pn.layout.HSpacer(), refresh),
            table, title="Training runs", sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _run_detail(row: Any) -> pn.viewable.Viewable:
    """A run's detail row: its hyper-parameters."""
    return pn.pane.Markdown(f"**{kind_label(row['kind'])}** · hyper-parameters: {row['params'] or '(defaults)'}",
                            sizing_mode="stretch_width", css_classes=["training-run-params"])


__all__ = ["INDICATORS", "TrainingResults", "alerts_text", "cost_text", "money"]
