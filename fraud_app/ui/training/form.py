"""The Training tab's form: model kind, name, seed, evaluation split, threshold protocol, hyper-parameters,
Train and Cancel, progress."""

from __future__ import annotations

import time
from typing import Any

import panel as pn
import param
from bokeh.models import Tooltip
from bokeh.models.dom import HTML

from fraud_app.ui.theme import stylesheet
from fraud_app.ui.training.controller import (
    SPLIT_LABELS,
    THRESHOLD_METHOD_LABELS,
    TrainingController,
    kind_label,
)
from fraud_app.models.base import ModelParams
from fraud_app.ui.training.hyperparameters import AggregatorMembers, hyperparameter_widgets, widget_for


def tooltip(text: str, position: str = "bottom") -> Tooltip:
    """A button tooltip placed where it covers no neighbouring button (``bottom``: under a row of buttons)."""
    return Tooltip(content=HTML(text), position=position, syncable=False,
                   stylesheets=[":host { white-space: normal; max-width: 260px; }"])


def action_button(event: param.Parameter, label: str, **kwargs: Any) -> pn.widgets.Button:
    """A button that triggers the controller's ``event``, styled by the tab's CSS (a disabled one looks disabled)."""
    kwargs.setdefault("stylesheets", [stylesheet("training")])
    return pn.widgets.Button.from_param(event, label=label, **kwargs)


def hyperparameter_panel(kind: str, sets: dict[str, Any], **kwargs: Any) -> pn.viewable.Viewable:
    """The widgets editing ``kind``'s hyper-parameters (the aggregator's show its members' own settings).

    ``sets`` maps each kind to this tab's instance of its declared ``Params`` (the aggregator's to
    its :class:`AggregatorMembers`). ``kwargs`` go to every widget (e.g. ``disabled=ctrl.param.running``).
    """
    values = sets.get(kind)
    kwargs.setdefault("sizing_mode", "stretch_width")
    if isinstance(values, ModelParams):
        if not type(values).tunables():
            return pn.pane.Markdown("This kind has no tunable hyper-parameters.")
        return pn.Column(*hyperparameter_widgets(kind, values, **kwargs), sizing_mode="stretch_width", margin=0)
    if not isinstance(values, AggregatorMembers):
        return pn.pane.Markdown("This kind has no tunable hyper-parameters.")
    members = widget_for(values, "members", kind, name="Members (probabilities are averaged)", **kwargs)
    copies = widget_for(values, "copies", kind, **kwargs)
    # The aggregator's own declared settings (calibration); its member list is edited above.
    own = [widget_for(values.params, name, kind, **kwargs) for name in type(values.params).tunables()
           if name not in ("members", "weights")]
    weights, cards = [], []
    for member in values.member_kinds:
        shown = pn.bind(lambda chosen, member=member: member in chosen, values.param.members)
        weights.append(widget_for(values, values.weight_name(member), kind, visible=shown, **kwargs))
        member_values = sets.get(member)
        if isinstance(member_values, ModelParams):
            cards.append(pn.Card(*hyperparameter_widgets(member, member_values, **kwargs),
                                 title=f"{kind_label(member)} member", collapsed=True, visible=shown,
                                 sizing_mode="stretch_width"))
    note = pn.pane.Markdown("Members share the aggregator's split; member *i* is seeded with the seed + *i*. "
                            "Their settings below are the same as on their own kind.", css_classes=["fds-note"],
                            stylesheets=[stylesheet("training")])
    return pn.Column(members, copies, *weights, *own, note, *cards, sizing_mode="stretch_width", margin=0)


class TrainingForm(pn.viewable.Viewer):
    """Choose and tune a model, name it, train it; follow its progress and cancel it."""

    controller = param.ClassSelector(class_=TrainingController, doc="The Training tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl = self.controller
        busy = {"disabled": ctrl.param.running}
        self._hp_panels: dict[str, pn.viewable.Viewable] = {}
        kind = pn.widgets.Select.from_param(
            ctrl.param.kind, label="Model", options={kind_label(k): k for k in ctrl.param.kind.objects},
            css_classes=["training-kind"], **busy)
        name = pn.widgets.TextInput.from_param(
            ctrl.param.model_name, onkeyup=True, label="Model name", placeholder="e.g. lightgbm_1",
            css_classes=["training-name"], **busy)
        name_check = pn.pane.Alert(
            ctrl.param.name_status, alert_type=ctrl.param.name_level, margin=(0, 10),
            visible=ctrl.param.name_status.rx.bool(), css_classes=["training-name-status"])
        save = pn.widgets.Checkbox.from_param(ctrl.param.save, label="Save the model",
                                              css_classes=["training-save"], **busy)
        overwrite = pn.widgets.Checkbox.from_param(ctrl.param.overwrite, label="Overwrite an existing model",
                                                   css_classes=["training-overwrite"], **busy)
        seed = pn.widgets.IntInput.from_param(ctrl.param.seed, label="Seed", css_classes=["training-seed"], **busy)
        split = pn.widgets.Select.from_param(
            ctrl.param.split, label="Evaluation", options={v: k for k, v in SPLIT_LABELS.items()},
            description=ctrl.param.split.doc, css_classes=["training-split"], **busy)
        threshold_method = pn.widgets.Select.from_param(
            ctrl.param.threshold_method, label="Threshold and calibration chosen on",
            options={v: k for k, v in THRESHOLD_METHOD_LABELS.items()}, description=ctrl.param.threshold_method.doc,
            css_classes=["training-threshold-method"], **busy)
        hyperparameters = pn.panel(pn.bind(self._hyperparameters, ctrl.param.kind), sizing_mode="stretch_width")
        train = action_button(
            ctrl.param.train, "Train", button_type="primary", width=120, css_classes=["training-train"],
            disabled=pn.bind(lambda running, ok: running or not ok, ctrl.param.running, ctrl.param.name_ok),
            description=tooltip("Train with these settings on the worker thread; the tab stays usable."))
        cancel = action_button(
            ctrl.param.cancel, "Cancel", button_type="danger", button_style="outline", width=120,
            css_classes=["training-cancel"], disabled=ctrl.param.running.rx.not_(),
            description=tooltip("Stop the running training: nothing is saved or recorded."))
        progress = pn.indicators.Progress(
            value=pn.bind(lambda p: int(round(p * 1000)), ctrl.param.progress), max=1000,
            active=ctrl.param.running, bar_color="primary",
            sizing_mode="stretch_width", height=18, css_classes=["training-progress"])
        status = pn.pane.Markdown(
            pn.bind(self._status_text, ctrl.param.status, ctrl.param.progress, ctrl.param.running),
            margin=(0, 10), css_classes=["training-status"])
        self._layout = pn.Column(
            pn.pane.Markdown("### Model"),
            kind, name, name_check, pn.Row(save, overwrite), seed, split, threshold_method,
            pn.Card(hyperparameters, title="Hyper-parameters", sizing_mode="stretch_width", margin=(10, 5)),
            pn.Row(train, cancel), progress, status,
            width=360, margin=(0, 20, 0, 0), stylesheets=[stylesheet("training")], css_classes=["training-form"])

    def _hyperparameters(self, kind: str) -> pn.viewable.Viewable:
        """The hyper-parameter panel of ``kind``, built on first use and kept (one per kind)."""
        if kind not in self._hp_panels:
            ctrl = self.controller
            self._hp_panels[kind] = hyperparameter_panel(kind, ctrl.hyperparameters, disabled=ctrl.param.running)
        return self._hp_panels[kind]

    def _status_text(self, status: str, _progress: float, running: bool) -> str:
        elapsed = f" · {time.monotonic() - self.controller.started_at:.1f} s" if running else ""
        return f"{status}{elapsed}"

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["TrainingForm", "action_button", "hyperparameter_panel", "tooltip"]
