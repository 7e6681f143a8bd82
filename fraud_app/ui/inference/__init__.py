"""The Inference tab: a controller (``controller.py``) and one small view per feature.

* ``controller.py`` — :class:`InferenceController`: the tab's state, outputs and actions (no widgets).
* ``model.py`` — which model scores, and which one is active and how.
* ``transaction.py`` — the transaction: real/reference rows, sliders, frozen inputs, Save to log, Predict.
* ``verdict.py`` — the verdict, P(fraud) against the threshold, the change, the true label, the explanation.
* ``history.py`` — the saved predictions, newest first, paged.
* ``batch.py`` — batch scoring of an uploaded CSV.
* ``section.py`` — :class:`InferenceSection`, the registered tab that lays the views out.
"""

from fraud_app.ui.inference.controller import NO_MODEL_MESSAGE, InferenceController, TransactionInputs
from fraud_app.ui.inference.section import InferenceSection

__all__ = ["NO_MODEL_MESSAGE", "InferenceController", "InferenceSection", "TransactionInputs"]
