"""The Training tab's saved models: the active model and how it became active, make active, delete."""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from fraud_app.ui.theme import stylesheet
from fraud_app.ui.training import charts
from fraud_app.ui.training.controller import TrainingController
from fraud_app.ui.training.form import action_button, tooltip

#: How the active model became active, in words.
HOW_TEXT = {
    "explicit": "made active explicitly",
    "first_saved": "the first saved model, pinned when it was saved",
    "fallback": "the newest saved model, pinned because the active one was deleted",
}


def active_text(name: str | None, how: str | None) -> str:
    """The active model and how it became active."""
    if name is None:
        return "No saved model yet: train one with *Save the model* ticked. The first one saved becomes active."
    return (f"Active model (Inference and the API score with it): **{name}** · {HOW_TEXT.get(how, how)}. "
            "Training never changes it; only *Make active* does.")


class SavedModels(pn.viewable.Viewer):
    """The saved models side by side; choose one to make active or delete (with a confirmation)."""

    controller = param.ClassSelector(class_=TrainingController, doc="The Training tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl = self.controller
        number = NumberFormatter(format="0.000")
        active = pn.pane.Markdown(pn.bind(active_text, ctrl.param.active_name, ctrl.param.active_how),
                                  sizing_mode="stretch_width", css_classes=["training-active"])
        table = pn.widgets.Tabulator(
            pn.bind(charts.models_frame, ctrl.param.saved_models, ctrl.param.active_name), disabled=True,
            show_index=False, sizing_mode="stretch_width", css_classes=["saved-models"], layout="fit_data_stretch",
            pagination="local", page_size=6,
            formatters={"f1": number, "pr_auc": number, "threshold": NumberFormatter(format="0.0000")},
            titles={"pr_auc": "PR-AUC", "f1": "F1", "saved_at": "saved (UTC)"})
        no_model = ctrl.param.selected_model.rx.is_(None)
        select = pn.widgets.Select.from_param(ctrl.param.selected_model, label="Saved model", width=240)
        make_active = action_button(
            ctrl.param.activate, "Make active", button_type="primary", disabled=no_model, width=130,
            css_classes=["training-make-active"],
            description=tooltip("Pin the selected model: the API and the Inference tab score with it.", "top"))
        delete = action_button(
            ctrl.param.delete, "Delete…", button_type="danger", button_style="outline", width=110,
            disabled=pn.bind(lambda name, pending: name is None or pending is not None,
                             ctrl.param.selected_model, ctrl.param.pending_delete))
        confirm = pn.Row(
            pn.pane.Markdown(pn.bind(lambda name: f"Delete **{name}** and its files for good?" if name else "",
                                     ctrl.param.pending_delete)),
            action_button(ctrl.param.confirm_delete, "Yes, delete it", button_type="danger"),
            action_button(ctrl.param.keep_model, "Keep it"),
            visible=ctrl.param.pending_delete.rx.is_not(None), css_classes=["training-confirm-delete"])
        self._layout = pn.Card(
            active, table, pn.Row(select, make_active, delete, align="end"), confirm,
            title="Saved models", sizing_mode="stretch_width", stylesheets=[stylesheet("training")])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["HOW_TEXT", "SavedModels", "active_text"]
