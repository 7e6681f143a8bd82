"""The Training tab's "add labeled predictions" option (issue 15): analysts' labels into training.

One self-contained Viewer. It decorates its controller's ``make_pipeline`` (on that instance
only): when the box is ticked, the pipeline gets as ``feedback`` a loader of the labeled
predictions, which the pipeline calls in the training thread, never on the event loop. The pipeline deduplicates them against the data set and adds them to the
training rows only; the count added is shown here after the run (and stored in the model's
metadata, ``fit_info.feedback_rows``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn
import param


def _labeled_rows() -> Any:
    from fraud_app.monitoring.feedback import labeled_predictions

    return labeled_predictions()


def result_text(result: Any, enabled: bool) -> str:
    """What the option says: how many labeled predictions the last training added."""
    added = getattr(result, "feedback_rows", None)
    if added is None:
        return "Labeled predictions (Monitoring tab) join the training rows, never the test rows."
    return (f"The last training added **{added:,}** labeled prediction{'' if added == 1 else 's'} "
            "(after removing those already in the data set).")


class FeedbackOption(pn.viewable.Viewer):
    """A checkbox "Add labeled predictions" and the count the last training added."""

    controller = param.Parameter(doc="The Training tab's controller (its ``make_pipeline`` is decorated).")
    enabled = param.Boolean(default=False, doc="Add the analysts' labeled predictions to the training rows.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        make = self.controller.make_pipeline

        def make_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipeline = make(*args, **kwargs)
            pipeline.feedback = self.source()
            return pipeline

        self.controller.make_pipeline = make_pipeline
        state = self.controller.state
        self._layout = pn.Column(
            pn.widgets.Checkbox.from_param(self.param.enabled, name="Add labeled predictions (analyst feedback)",
                                           css_classes=["with-feedback"]),
            pn.pane.Markdown(pn.bind(result_text, state.param.training_result, self.param.enabled),
                             margin=(0, 10), css_classes=["feedback-count"]),
            sizing_mode="stretch_width")

    def source(self) -> Callable[[], Any] | None:
        """What the pipeline gets as ``feedback``: the loader when the box is ticked, else None."""
        return _labeled_rows if self.enabled else None

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["FeedbackOption", "result_text"]
