"""The Training tab: the registered :class:`TrainingSection`, which builds the controller and lays out the views.

One feature, one file:

* :mod:`.controller` - state, outputs and actions (no widgets);
* :mod:`.form` - kind, name, hyper-parameters, Train and Cancel, progress;
* :mod:`.results` - indicators, charts, the make-active offer, threshold and costs, the runs table;
* :mod:`.saved_models` - the active model, make active, delete;
* :mod:`.compare` - two or more saved models on the same test rows, curves overlaid;
* :mod:`.charts` - the chart and table builders;
* :mod:`.worker` - the process-wide training runner and the hand-back to the session.

Adding a feature is one new Viewer and one line in ``_layout`` below.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from fraud_app.ui.base import Section, register_section
from fraud_app.ui.training.cluster import ClusterLink
from fraud_app.ui.training.compare import CompareModels
from fraud_app.ui.training.controller import KIND_LABELS, TrainingController
from fraud_app.ui.training.feedback import FeedbackOption
from fraud_app.ui.training.form import TrainingForm
from fraud_app.ui.training.results import TrainingResults
from fraud_app.ui.training.saved_models import SavedModels


@register_section
class TrainingSection(Section):
    """Train, evaluate, compare and choose fraud models.

    Choose a kind and its hyper-parameters, a name (validated while typing), whether to save,
    the seed, the evaluation (stratified random or time-ordered split) and how the threshold is
    chosen (out-of-fold by default), then Train. Training runs on a worker thread; Cancel stops
    it. The result shows F1, precision, recall, PR-AUC, ROC-AUC and the Brier score, the
    confusion matrix, the PR curve and the reliability curve; the threshold tools recompute them
    from the held-out scores without retraining, with the cost of misses and false alarms against
    flagging nothing and the alerts per day. Every run is recorded and listed; any saved model
    can be made the active one, or deleted, and two or more can be compared on the same test
    rows. Training never changes the active model: after a run the tab offers "Make `X` active?".
    """

    title = "Training"
    icon = "⚙"
    order = 20

    controller = param.ClassSelector(class_=TrainingController, constant=True,
                                     doc="The tab's state, outputs and actions (tests drive it).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        with param.edit_constant(self):
            self.controller = TrainingController(state=self.state)
        ctrl = self.controller
        results = TrainingResults(controller=ctrl)
        self._layout = pn.Row(
            pn.Column(TrainingForm(controller=ctrl), FeedbackOption(controller=ctrl)),  # issue 15: analyst feedback
            pn.Column(
                ClusterLink(controller=ctrl),
                results,
                SavedModels(controller=ctrl),
                CompareModels(controller=ctrl),
                sizing_mode="stretch_width"),
            sizing_mode="stretch_width", name=self.title)
        # After the first render: the store and the database, then the result's figures and charts.
        pn.state.onload(ctrl.load)
        pn.state.onload(results.prepare)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["KIND_LABELS", "TrainingSection"]
