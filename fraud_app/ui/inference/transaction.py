"""The transaction being edited: load a real or the reference transaction, move the inputs, Predict.

Every widget edits one Parameter of ``ctrl.inputs`` named after its column (``from_param``),
so the slider labelled ``feature11`` writes ``feature11`` and nothing else. The four sliders
span the full card width; the other 25 inputs are shown frozen (read-only text) and get a
number box when unfrozen. **Predict** is a what-if unless **Save to log** is ticked.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from bokeh.models import Tooltip

from fraud_app.inference.reference import FROZEN_FEATURES, SLIDER_FEATURES
from fraud_app.ui.inference.controller import InferenceController
from fraud_app.ui.theme import stylesheet


def _not(method: Any) -> Any:
    """A reference that is True when the controller's ``can_...`` method is False."""
    return param.rx(method).rx.not_()


def _tip(text: str, position: str = "bottom") -> Tooltip:
    """A button tooltip placed where it covers no neighbouring button (below a row of buttons by default)."""
    return Tooltip(content=text, position=position)


def _origin_text(origin: str, edited: bool) -> str:
    return f"Inputs: {origin}{' — *edited*' if edited else ''}" if origin else ""


def frozen_html(unfrozen: list[str], *values: float) -> str:
    """The frozen inputs (those not unfrozen) and their values, as a compact read-only grid."""
    cells = [f"<div class='cell'><span class='name'>{column}</span><span class='value'>{value:.4f}</span></div>"
             for column, value in zip(FROZEN_FEATURES, values, strict=True) if column not in unfrozen]
    return f"<div class='frozen-grid'>{''.join(cells)}</div>"


class TransactionView(pn.viewable.Viewer):
    """The Transaction card: sample buttons, sliders, frozen inputs, Save to log and Predict.

    ``sliders`` and ``editors`` (the number boxes of the unfrozen inputs) are public: each is
    labelled with, and writes, its own column of ``ctrl.inputs``.
    """

    ctrl = param.ClassSelector(class_=InferenceController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl, css = self.ctrl, [stylesheet("inference")]
        inputs = ctrl.inputs
        ranges = ctrl.param.ranges.rx()
        #: One full-width slider per slider column, each with a number box to type a value.
        self.sliders: dict[str, pn.widgets.FloatSlider] = {}
        slider_rows = []
        for column in SLIDER_FEATURES:
            number = "0,0.00" if column == "amount" else "0.0000"
            slider = pn.widgets.FloatSlider.from_param(
                inputs.param[column], name=column, start=ranges[column][0], end=ranges[column][1],
                step=ranges[column][2], format=number, show_value=False, sizing_mode="stretch_width",
                margin=(5, 10, 5, 10))
            box = pn.widgets.FloatInput.from_param(inputs.param[column], name="", format=number, width=120,
                                                   align="end", margin=(5, 10, 8, 0))
            self.sliders[column] = slider
            slider_rows.append(pn.Row(slider, box, sizing_mode="stretch_width",
                                      css_classes=["fds-slider", f"slider-{column}"]))
        #: The editors of the unfrozen inputs, built when first unfrozen (25 idle widgets would slow the tab).
        self.editors: dict[str, pn.widgets.FloatInput] = {}
        sample_buttons = pn.Row(
            pn.widgets.Button.from_param(
                ctrl.param.load_clear, label="● Random real clear", width=175, disabled=_not(ctrl.can_load_samples),
                loading=ctrl.param.loading_sample, description=_tip("Load a random real clear transaction"),
                css_classes=["sample-button", "sample-clear"], stylesheets=css),
            pn.widgets.Button.from_param(
                ctrl.param.load_fraud, label="● Random real fraud", width=175, disabled=_not(ctrl.can_load_fraud),
                loading=ctrl.param.loading_sample, description=_tip("Load a random real fraud"),
                css_classes=["sample-button", "sample-fraud"], stylesheets=css),
            pn.widgets.Button.from_param(
                ctrl.param.load_reference, label="↺ Reference", width=130, disabled=_not(ctrl.can_load_samples),
                description=_tip("Back to the reference transaction (clear-class medians)", "right"),
                css_classes=["sample-button", "sample-reference"], stylesheets=css),
        )
        self.predict_button = pn.widgets.Button.from_param(
            ctrl.param.predict, label="⚡ Predict", color="primary", width=180, height=44,
            disabled=_not(ctrl.can_predict), loading=ctrl.param.predicting, css_classes=["predict-button"],
            stylesheets=css)
        save = pn.widgets.Checkbox.from_param(ctrl.param.save_to_log, align="center", css_classes=["save-to-log"])
        mode = pn.pane.Markdown(
            ctrl.param.save_to_log.rx.pipe(lambda on: "Saved to the prediction log (source *ui*)" if on
                                           else "What-if: nothing is saved"),
            align="center", margin=(0, 10), css_classes=["predict-mode"])
        reference_alert = pn.pane.Alert(
            ctrl.param.reference_error.rx.pipe(
                lambda e: f"**The data set is not available**, so the inputs start at zero and random real "
                          f"transactions cannot be loaded: {e}" if e else ""),
            alert_type="danger", visible=ctrl.param.reference_error.rx.is_not(None), sizing_mode="stretch_width")
        self._layout = pn.Card(
            reference_alert,
            pn.pane.Markdown(pn.bind(_origin_text, ctrl.param.origin, ctrl.param.edited),
                             sizing_mode="stretch_width", margin=(0, 10), css_classes=["origin"]),
            sample_buttons,
            pn.Column(*slider_rows, sizing_mode="stretch_width"),
            pn.pane.Markdown("**Frozen inputs** (the reference transaction unless loaded or unfrozen)",
                             margin=(10, 10, 0, 10)),
            pn.widgets.MultiChoice.from_param(
                ctrl.param.unfrozen, name="Unfreeze inputs to edit them", placeholder="Choose features…",
                sizing_mode="stretch_width"),
            pn.panel(pn.bind(self._editors_for, ctrl.param.unfrozen)),
            pn.pane.HTML(pn.bind(frozen_html, ctrl.param.unfrozen, *(inputs.param[c] for c in FROZEN_FEATURES)),
                         sizing_mode="stretch_width", stylesheets=css, css_classes=["frozen-inputs"]),
            pn.Row(self.predict_button, save, mode, align="start"),
            title="Transaction", collapsible=False, sizing_mode="stretch_width",
        )

    def _editors_for(self, unfrozen: list[str]) -> pn.viewable.Viewable:
        """Number boxes for the unfrozen inputs (each built once, bound to its column by name)."""
        for column in unfrozen:
            if column not in self.editors:
                self.editors[column] = pn.widgets.FloatInput.from_param(
                    self.ctrl.inputs.param[column], name=column, format="0.0000", width=112,
                    css_classes=[f"input-{column}"])
        return pn.FlexBox(*(self.editors[c] for c in FROZEN_FEATURES if c in unfrozen))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["TransactionView"]
