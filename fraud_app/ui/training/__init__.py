"""The Training tab (issue #6): :class:`TrainingSection`, registered as a tab on import.

Which file holds which feature:

* :mod:`.section` - the registered tab: builds the controller, lays out the views;
* :mod:`.controller` - :class:`TrainingController`: the tab's state, outputs and actions (no widgets);
* :mod:`.form` - kind, name, hyper-parameters, seed, Train/Cancel and progress;
* :mod:`.results` - indicators, charts, the make-active offer, threshold and costs, the runs table;
* :mod:`.saved_models` - the active model (and how it became active), make active, delete;
* :mod:`.charts` - the confusion matrix, the PR curve and the frames of the tables;
* :mod:`.hyperparameters` - each kind's tunables as bounded Parameters and their widgets;
* :mod:`.worker` - the process-wide training runner and the hand-back to the browser session.
"""

from fraud_app.ui.training.controller import KIND_LABELS, TrainingController
from fraud_app.ui.training.section import TrainingSection

__all__ = ["KIND_LABELS", "TrainingController", "TrainingSection"]
