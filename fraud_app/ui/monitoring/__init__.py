"""The Monitoring tab: a controller (``controller.py``) and one small view per feature.

* ``controller.py`` — :class:`MonitoringController`: the report, the review queue, labeling (no widgets).
* ``views.py`` — the controls and status, the alerts and figures, the charts, the review queue.
* ``charts.py`` — the chart specs (drawn off the event loop by ``OffloopChart``).
* ``section.py`` — :class:`MonitoringSection`, the registered tab (fourth, after Inference).
"""

from fraud_app.ui.monitoring.controller import MonitoringController
from fraud_app.ui.monitoring.section import MonitoringSection

__all__ = ["MonitoringController", "MonitoringSection"]
