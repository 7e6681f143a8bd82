"""Which saved model scores: the selector, the model's facts, and which model is active and how.

The selector marks the store's active model (the one the REST API scores with by default)
as pinned (made active explicitly) or as the fallback (none pinned: the newest saved model,
which saving another model changes).
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from fraud_app.ui.inference.controller import ACTIVE_HOW, NO_MODEL_MESSAGE, InferenceController


def model_summary(meta: dict[str, Any] | None) -> str:
    """Kind, threshold, headline metrics and training time of a model, in one line of Markdown."""
    if meta is None:
        return ""
    metrics = meta.get("metrics") or {}
    parts = [f"**{meta.get('kind', '?')}**", f"threshold **{float(meta.get('threshold', 0.5)):.4f}**"]
    for key, label in (("f1", "F1"), ("pr_auc", "PR-AUC"), ("recall", "recall")):
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"{label} {metrics[key]:.3f}")
    if meta.get("trained_at"):
        parts.append(f"trained {str(meta['trained_at'])[:16].replace('T', ' ')}")
    return " · ".join(parts)


def active_text(active: str | None, how: str | None) -> str:
    """Which model the REST API scores with by default, and how it became active."""
    if active is None:
        return ""
    return f"Active model (REST API default): **{active}** — {ACTIVE_HOW.get(how or '', how or '')}"


class ModelPicker(pn.viewable.Viewer):
    """The header of the tab: model selector, its facts, the active model, the no-model message."""

    ctrl = param.ClassSelector(class_=InferenceController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl = self.ctrl
        self._layout = pn.Column(
            pn.Row(
                pn.widgets.Select.from_param(ctrl.param.model_name, name="Model", width=360),
                pn.Column(
                    pn.pane.Markdown(pn.bind(lambda _models, _name: model_summary(ctrl.selected_model()),
                                             ctrl.param.models, ctrl.param.model_name),
                                     margin=(18, 10, 0, 10), sizing_mode="stretch_width", css_classes=["model-info"]),
                    pn.pane.Markdown(pn.bind(active_text, ctrl.param.active_model, ctrl.param.active_how),
                                     margin=(0, 10), sizing_mode="stretch_width", css_classes=["active-model"]),
                    sizing_mode="stretch_width"),
                sizing_mode="stretch_width"),
            pn.pane.Alert(NO_MODEL_MESSAGE, alert_type="warning", sizing_mode="stretch_width",
                          visible=ctrl.param.models.rx.pipe(lambda m: m is not None and not m), css_classes=["no-model"]),
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["ModelPicker", "active_text", "model_summary"]
