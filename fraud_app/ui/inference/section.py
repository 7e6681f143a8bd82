"""The Inference tab: builds the controller and lays out one view per feature.

Adding a feature to the tab is one new ``Viewer`` (taking ``ctrl``) and one line in
:meth:`InferenceSection.__init__`'s layout.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from fraud_app.ui.base import Section, register_section
from fraud_app.ui.inference.batch import BatchView
from fraud_app.ui.inference.controller import InferenceController
from fraud_app.ui.inference.history import HistoryView
from fraud_app.ui.inference.model import ModelPicker
from fraud_app.ui.inference.transaction import TransactionView
from fraud_app.ui.inference.verdict import VerdictView


@register_section
class InferenceSection(Section):
    """Score one transaction (a what-if, or saved) or a CSV batch with a saved model; browse the saved predictions.

    Construction does no I/O: the controller reads the model store, the reference
    transaction and the saved predictions in ``pn.state.onload``, in worker threads.
    Keyword arguments other than ``state`` (``seed``, ``page_size``, ``poll_period``, ...)
    go to the :class:`~fraud_app.ui.inference.controller.InferenceController`.
    """

    title = "Inference"
    icon = "⚡"
    order = 30

    controller = param.ClassSelector(class_=InferenceController, constant=True,
                                     doc="The tab's state, outputs and actions (no widgets).")

    def __init__(self, **params: Any) -> None:
        options = {k: params.pop(k) for k in list(params) if k in InferenceController.param and k != "state"
                   and k not in type(self).param}
        super().__init__(**params)
        with param.edit_constant(self):
            self.controller = InferenceController(state=self.state, **options)
        ctrl = self.controller
        self.transaction = TransactionView(ctrl=ctrl)
        self.verdict = VerdictView(ctrl=ctrl)
        self.history = HistoryView(ctrl=ctrl)
        self.batch = BatchView(ctrl=ctrl)
        self._layout = pn.Column(
            ModelPicker(ctrl=ctrl),
            pn.Row(pn.Column(self.transaction, sizing_mode="stretch_width", min_width=420),
                   pn.Column(self.verdict, sizing_mode="stretch_width", min_width=380),
                   sizing_mode="stretch_width"),
            self.history,
            self.batch,
            sizing_mode="stretch_width", name=self.title, css_classes=["inference-section"],
        )
        pn.state.onload(ctrl.load)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["InferenceSection"]
