"""The verdict of the latest score: clear or fraud, P(fraud) against the threshold, and why.

* Greys out with "Inputs changed — press Predict" as soon as the inputs or the model differ
  from what was scored (``ctrl.stale``).
* Says whether the score was saved (source ``ui``) or a what-if, shows the change since the
  previous score (``0.8700 → 0.1500``) and, for an unedited real row, its true label.
* P(fraud) is formatted adaptively (:func:`format_probability`: ``< 0.0001``, never ``0.0000``),
  and the contributions chart is drawn from :func:`contribution_axis`, the one place that
  decides the units and scale of the explanation.
"""

from __future__ import annotations

import html
import math
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend for the chart's options)
import numpy as np
import pandas as pd
import panel as pn
import param

from fraud_app.ui.inference.controller import InferenceController
from fraud_app.ui.charts import ChartSpec, OffloopChart
from fraud_app.ui.theme import DIRECTION_COLORS, stylesheet

#: Below this (and above 1 - this) P(fraud) is shown as a bound, not as 0.0000 / 1.0000.
SMALLEST_SHOWN = 1e-4
#: Contributions below this (in P(fraud) units) are drawn in a scaled unit (×10⁻ⁿ).
SCALE_BELOW = 1e-2
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def format_probability(p: float) -> str:
    """P(fraud) for people: 4 decimals, ``< 0.0001`` / ``> 0.9999`` at the ends, ``0`` and ``1`` exact."""
    p = float(p)
    if p <= 0.0:
        return "0"
    if p >= 1.0:
        return "1"
    if p < SMALLEST_SHOWN:
        return f"< {SMALLEST_SHOWN:.4f}"
    if p > 1.0 - SMALLEST_SHOWN:
        return f"> {1.0 - SMALLEST_SHOWN:.4f}"
    return f"{p:.4f}"


def contribution_axis(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The contributions as drawn, and the axis label: readable at every scale.

    ``frame`` is what :func:`fraud_app.inference.explain` returns (``feature``, ``value``,
    ``contribution``). Contributions in log-odds (``frame.attrs["units"] == "log-odds"``)
    are drawn as they are. Probability contributions of 0.01 or more are drawn as they are;
    smaller ones (a clear transaction's, often 1e-6) are drawn in units of 10⁻ⁿ so that the
    largest lies between 1 and 10, and the axis label names the unit.

    Returns
    -------
    (frame, label)
        the frame with ``shown`` (the drawn value), ``exact`` (the contribution as text, for
        the hover) and ``direction`` columns, largest absolute contribution last (the top
        bar once the axes are inverted); and the value axis label.
    """
    data = frame.iloc[::-1].copy()
    values = data["contribution"].to_numpy(dtype=np.float64)
    largest = float(np.abs(values).max()) if len(values) else 0.0
    if frame.attrs.get("units") == "log-odds":
        label, scale = "contribution to the log-odds of fraud", 1.0
    elif largest == 0.0 or largest >= SCALE_BELOW:
        label, scale = "contribution to P(fraud)", 1.0
    else:
        exponent = math.floor(math.log10(largest))
        label, scale = f"contribution to P(fraud), in units of 10{str(exponent).translate(_SUPERSCRIPT)}", \
            10.0 ** -exponent
    data["shown"] = values * scale
    data["exact"] = [f"{v:+.3g}" for v in values]
    data["direction"] = np.where(values >= 0, "towards fraud", "towards clear")
    return data, label


def contributions_chart(frame: pd.DataFrame) -> hv.Bars:
    """The horizontal bar chart of :func:`contribution_axis`'s frame."""
    data, label = contribution_axis(frame)
    return hv.Bars(data, kdims=["feature"], vdims=["shown", "direction", "value", "exact"]).opts(
        invert_axes=True, color="direction", cmap=DIRECTION_COLORS,
        responsive=True, height=330, show_legend=True, legend_position="bottom",
        xlabel="", ylabel=label, title="Top feature contributions for this transaction",
        tools=["hover"], hover_tooltips=[("feature", "@feature"), ("value", "@value{0,0.0000}"),
                                         ("contribution", "@exact")],
        default_tools=[], toolbar=None,
    )


def verdict_html(row: dict[str, Any] | None, stale: bool, previous: float | None) -> str:
    """The verdict box: word, what was scored and whether it was saved, the change, the true label."""
    if row is None:
        return "<div class='verdict pending'>Press <b>Predict</b> to score the transaction.</div>"
    fraud = bool(row["is_fraud"])
    word, css = ("Fraudulent", "fraud") if fraud else ("Clear", "clear")
    model = html.escape(str(row["model"]))
    if row.get("saved"):
        sub = f"prediction #{int(row['id'])} · model {model} · saved (source {html.escape(str(row['source']))})"
    else:
        sub = f"what-if · model {model} · not saved"
    parts = [f"<div class='verdict {css}{' stale' if stale else ''}'>{word}<div class='sub'>{sub}</div></div>"]
    if stale:
        parts.append("<div class='stale-note'>Inputs changed — press <b>Predict</b></div>")
    notes = []
    if previous is not None:
        notes.append(f"<span class='change'>P(fraud) {format_probability(previous)} → "
                     f"{format_probability(row['fraud_probability'])}</span>")
    if row.get("true_label"):
        truth = str(row["true_label"])
        agrees = (truth == "fraud") == fraud
        notes.append(f"<span class='truth {truth}'>True label: <b>{truth}</b> (data set row {int(row['row']):,}) · "
                     f"{'the model agrees' if agrees else 'the model is wrong here'}</span>")
    if notes:
        parts.append(f"<div class='notes'>{' · '.join(notes)}</div>")
    return "".join(parts)


def probability_html(row: dict[str, Any] | None, stale: bool = False) -> str:
    """P(fraud) against the model's threshold, in words and as a bar."""
    if row is None:
        return ""
    p, t = float(row["fraud_probability"]), float(row["threshold"])
    css = "fraud" if row["is_fraud"] else "clear"
    relation = "at or above" if row["is_fraud"] else "below"
    return (
        f"<div class='prob{' stale' if stale else ''}'>"
        f"<div class='caption'>P(fraud) <b title='{p:.3g}'>{format_probability(p)}</b> is {relation} the "
        f"model's threshold <b title='{t:.3g}'>{format_probability(t)}</b></div>"
        f"<div class='track' title='P(fraud) {p:.3g}; threshold {t:.3g}'>"
        f"<div class='fill {css}' style='width:{100 * p:.3f}%'></div>"
        f"<div class='marker' style='left:{100 * t:.3f}%'><span>threshold</span></div></div>"
        "<div class='scale'><span>0</span><span>0.5</span><span>1</span></div></div>"
    )


class VerdictView(pn.viewable.Viewer):
    """The Verdict card: bound to ``last_prediction``, ``stale``, ``previous_probability``, ``contributions``."""

    ctrl = param.ClassSelector(class_=InferenceController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl, css = self.ctrl, [stylesheet("inference")]
        verdict = pn.pane.HTML(
            pn.bind(verdict_html, ctrl.param.last_prediction, ctrl.param.stale, ctrl.param.previous_probability),
            sizing_mode="stretch_width", stylesheets=css, css_classes=["verdict-pane"], loading=ctrl.param.predicting)
        probability = pn.pane.HTML(pn.bind(probability_html, ctrl.param.last_prediction, ctrl.param.stale),
                                   sizing_mode="stretch_width", stylesheets=css)
        # The chart is rebuilt only for new contributions; going stale just greys its wrapper (CSS).
        explanation = pn.Column(
            pn.panel(pn.bind(self._explanation, ctrl.param.contributions)), sizing_mode="stretch_width",
            stylesheets=css, css_classes=ctrl.param.stale.rx.pipe(lambda s: ["explanation", "stale"] if s
                                                                   else ["explanation"]))
        self._layout = pn.Card(verdict, probability, explanation, title="Verdict", collapsible=False,
                               sizing_mode="stretch_width", min_height=300)

    @staticmethod
    def _explanation(frame: pd.DataFrame | None) -> pn.viewable.Viewable:
        if frame is None or frame.empty:
            return pn.Spacer(height=0)
        moved = frame[frame["contribution"] != 0]
        if moved.empty:
            return pn.pane.Markdown("No input moved this transaction's P(fraud) away from the model's base value.",
                                    sizing_mode="stretch_width")
        # Drawn off the event loop (HoloViews to Bokeh costs tens of milliseconds per chart).
        key = (tuple(moved["feature"]), tuple(float(c) for c in moved["contribution"]),
               str(moved.attrs.get("units", "")))
        return OffloopChart(spec=ChartSpec(contributions_chart, moved, key=key), title="contributions", height=340)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["VerdictView", "contribution_axis", "contributions_chart", "format_probability", "probability_html",
           "verdict_html"]
