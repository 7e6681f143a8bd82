"""The Monitoring tab's views: one small Viewer per feature, bound to the controller's Parameters."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn
import param
from panel.custom import JSComponent

from fraud_app.ui.charts import OffloopChart
from fraud_app.ui.monitoring.charts import psi_spec, scores_spec, volume_spec
from fraud_app.ui.monitoring.controller import QUEUE_COLUMNS, MonitoringController
from fraud_app.ui.theme import ASSETS, stylesheet

#: The verdicts an analyst can give from the review queue.
QUEUE_LABELS = ("fraud", "legitimate")


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def status_text(report: dict[str, Any] | None, error: str | None, updated_at: str, loading: bool) -> str:
    """The line under the controls: which model, window, when, or what went wrong."""
    if error:
        return f"⚠ {html.escape(error)}"
    if report is None:
        return "Reading the monitoring report…" if loading or not updated_at else "No report yet."
    version = f" (version {html.escape(report['model_version'])})" if report.get("model_version") else ""
    return (f"Model <b>{html.escape(report['model'])}</b>{version} · {report['since'][:16].replace('T', ' ')} to "
            f"{report['until'][:16].replace('T', ' ')} UTC · updated {updated_at} UTC")


def alerts_html(report: dict[str, Any] | None) -> str:
    """The alerts (or why there are none), as HTML."""
    if report is None:
        return ""
    parts = []
    if not report["reference"]:
        parts.append(f"<div class='mon-alert mon-noref'>ℹ {html.escape(report['message'])}: this model was "
                     "saved before training references existed, so drift cannot be measured.</div>")
    for alert in report["alerts"]:
        parts.append(f"<div class='mon-alert' data-kind='{alert['kind']}'>⚠ {html.escape(alert['message'])}</div>")
    if not report["alerts"]:
        parts.append("<div class='mon-ok'>✓ No alerts in this window.</div>")
    return "".join(parts)


def figures_html(report: dict[str, Any] | None) -> str:
    """Volume, flagged rate, labels and realized precision/recall."""
    if report is None:
        return ""
    totals, labels, realized = report["totals"], report["labels"], report["realized"]
    cells = [
        ("Predictions", f"{totals['count']:,}"),
        ("Flagged rate", f"{_pct(totals['current_version_flagged_rate'], 2)} "
                         f"<small>(validation {_pct(totals['validation_flagged_rate'], 2)})</small>"),
        ("Labeled", f"<span class='mon-labeled'>{realized['labeled']:,}</span> "
                    f"<small>({labels['fraud']:,} fraud · {labels['legitimate']:,} legitimate · "
                    f"{labels['unlabeled']:,} unlabeled)</small>"),
        ("Realized precision", f"<span class='mon-precision'>{_pct(realized['precision'])}</span>"),
        ("Realized recall", f"<span class='mon-recall'>{_pct(realized['recall'])}</span>"),
    ]
    return "<div class='mon-figures'>" + "".join(
        f"<div class='mon-figure'><div class='mon-figure-name'>{name}</div><div class='mon-figure-value'>{value}"
        f"</div></div>" for name, value in cells) + "</div>"




class ControlsView(pn.viewable.Viewer):
    """Model, window, bucket, refresh, and the status line."""

    ctrl = param.ClassSelector(class_=MonitoringController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl = self.ctrl
        model = pn.widgets.Select.from_param(ctrl.param.model, name="Model (empty: the active one)", width=220)
        self._layout = pn.Column(
            pn.Row(model,
                   pn.widgets.Select.from_param(ctrl.param.window, name="Window", width=160),
                   pn.widgets.RadioButtonGroup.from_param(ctrl.param.bucket, name="Bucket", width=140,
                                                          margin=(28, 10, 10, 10)),
                   pn.widgets.Button.from_param(ctrl.param.refresh, label="Refresh", button_type="primary",
                                                width=100, margin=(28, 10, 10, 10), loading=ctrl.param.loading)),
            pn.pane.HTML(pn.bind(status_text, ctrl.param.report, ctrl.param.error, ctrl.param.updated_at,
                                 ctrl.param.loading), margin=(0, 10), css_classes=["mon-status"]),
            sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class SummaryView(pn.viewable.Viewer):
    """The alerts and the figures (volume, flagged rate, labels, realized precision and recall)."""

    ctrl = param.ClassSelector(class_=MonitoringController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._layout = pn.Column(
            pn.pane.HTML(pn.bind(figures_html, self.ctrl.param.report), sizing_mode="stretch_width",
                         stylesheets=[stylesheet("monitoring")], css_classes=["mon-figures-pane"]),
            pn.pane.HTML(pn.bind(alerts_html, self.ctrl.param.report), sizing_mode="stretch_width",
                         stylesheets=[stylesheet("monitoring")], css_classes=["mon-alerts"]),
            sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class ChartsView(pn.viewable.Viewer):
    """Volume and flagged rate over time, score distributions, PSI per input: drawn off the loop."""

    ctrl = param.ClassSelector(class_=MonitoringController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        report = self.ctrl.param.report
        self.volume = OffloopChart(spec=pn.bind(lambda r: volume_spec(r) if r else None, report),
                                   title="volume over time", height=280)
        self.scores = OffloopChart(spec=pn.bind(lambda r: scores_spec(r) if r else None, report),
                                   title="score distributions", height=300)
        self.psi = OffloopChart(spec=pn.bind(lambda r: psi_spec(r) if r else None, report),
                                title="PSI per input", height=300)
        self._layout = pn.Column(self.volume, pn.Row(self.scores, self.psi, sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def queue_rows(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The review queue as the short list of display rows the browser table draws."""
    if frame is None:
        return []
    columns = [frame[name].tolist() for name in QUEUE_COLUMNS]
    rows = [dict(zip(QUEUE_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)]
    for row in rows:
        row["id"] = int(row["id"])
        row["fraud_probability"] = f"{float(row['fraud_probability']):.5f}"
    return rows


class ReviewQueueTable(JSComponent):
    """The review queue as a plain table with a Fraud and a Legitimate button per row.

    The rows travel as one small list and the browser builds the table (``assets/review_queue.js``),
    so a new queue costs the event loop one property update instead of a Tabulator's data source and
    column configuration. A click comes back as ``{"id", "label"}`` and is handed to ``on_label``.
    """

    rows = param.List(default=[], item_type=dict, doc="The display rows (see :func:`queue_rows`).")
    on_label = param.Callable(default=None, allow_None=True, allow_refs=False,
                              doc="Called (a coroutine function is awaited) with (prediction id, label) on a click.")

    # Read once per process (given as a path, Panel would read the file for every session).
    _esm = (ASSETS / "review_queue.js").read_text(encoding="utf-8")
    _rename = {"on_label": None}  # a server-side callback: never sent to the browser

    async def _handle_msg(self, msg: Any) -> None:
        if not isinstance(msg, dict) or msg.get("label") not in QUEUE_LABELS or self.on_label is None:
            return
        shown = {row["id"] for row in self.rows}
        try:
            prediction_id = int(msg["id"])
        except (KeyError, TypeError, ValueError):
            return
        if prediction_id not in shown:  # only a row on screen can be labeled from here
            return
        result = self.on_label(prediction_id, msg["label"])
        if hasattr(result, "__await__"):
            await result


class ReviewQueueView(pn.viewable.Viewer):
    """Unlabeled predictions, highest fraud probability first, with a Fraud and a Legitimate button each."""

    ctrl = param.ClassSelector(class_=MonitoringController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        queue = self.ctrl.param.queue
        # One table for the tab's life, its rows bound to the queue (empty until it is read).
        self.table = ReviewQueueTable(rows=queue.rx.pipe(queue_rows), on_label=self.ctrl.label,
                                      visible=queue.rx.pipe(lambda frame: frame is not None),
                                      sizing_mode="stretch_width", css_classes=["review-queue"],
                                      stylesheets=[stylesheet("monitoring")])
        self._layout = pn.Card(
            pn.pane.Markdown("Unlabeled predictions of the monitored model, highest P(fraud) first, with the "
                             "inputs that pushed them most. Your verdict feeds the realized precision and, with "
                             "*add labeled predictions*, the next training.", margin=(0, 10)),
            pn.pane.Markdown("Reading the review queue…", margin=(0, 10),
                             visible=queue.rx.pipe(lambda frame: frame is None)),
            self.table,
            title="Review queue", collapsible=False, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["QUEUE_LABELS", "ChartsView", "ControlsView", "ReviewQueueTable", "ReviewQueueView", "SummaryView",
           "alerts_html", "figures_html", "queue_rows", "status_text"]
