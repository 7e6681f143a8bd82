"""The Training tab (issue #6): :class:`TrainingSection`, registered as a tab on import.

* :mod:`.section` - the Param-based view (inputs, outputs, callbacks, layout);
* :mod:`.hyperparameters` - each kind's tunables as bounded Parameters and their widgets;
* :mod:`.worker` - the process-wide training runner and the hand-back to the browser session;
* :mod:`.plots` - the confusion matrix, the PR curve and the runs/models tables.
"""

from fraud_app.ui.training.section import KIND_LABELS, TrainingSection

__all__ = ["KIND_LABELS", "TrainingSection"]
