"""The Monitoring tab: builds the controller and lays out one view per feature.

Construction does no I/O: the first report is read once the page is on screen
(``pn.state.onload``), in a worker thread. The periodic refresh runs only while this tab is the
open one: a cheap check every few seconds compares the open tab (the app keeps it in the URL,
``?tab=N``) with this tab's place.
"""

from __future__ import annotations

import time
from typing import Any

import panel as pn
import param

from fraud_app.ui.base import Section, register_section, registered_sections
from fraud_app.ui.charts import in_server_session
from fraud_app.ui.monitoring.controller import MonitoringController
from fraud_app.ui.monitoring.views import ChartsView, ControlsView, ReviewQueueView, SummaryView

#: Seconds between the (free) checks of whether the tab is on screen.
VISIBILITY_CHECK_S = 2.0


@register_section
class MonitoringSection(Section):
    """Is the model still seeing what it was trained on, flagging at the expected rate, and right?"""

    title = "Monitoring"
    icon = "∿"  # in DejaVu Sans, like the other tabs' icons (an emoji needs an emoji font)
    order = 40

    controller = param.ClassSelector(class_=MonitoringController, constant=True,
                                     doc="The tab's state, outputs and actions (no widgets).")

    def __init__(self, **params: Any) -> None:
        options = {k: params.pop(k) for k in list(params) if k in MonitoringController.param and k != "state"
                   and k not in type(self).param}
        super().__init__(**params)
        with param.edit_constant(self):
            self.controller = MonitoringController(state=self.state, **options)
        ctrl = self.controller
        self.controls = ControlsView(ctrl=ctrl)
        self.summary = SummaryView(ctrl=ctrl)
        self.charts = ChartsView(ctrl=ctrl)
        self.queue = ReviewQueueView(ctrl=ctrl)
        self._layout = pn.Column(self.controls, self.summary, self.queue, self.charts,
                                 sizing_mode="stretch_width", name=self.title, css_classes=["monitoring-section"])
        self._last_refresh = 0.0
        self._checker: Any = None
        pn.state.onload(self._start)

    def _index(self) -> int:
        titles = [cls.title for cls in registered_sections()]
        return titles.index(self.title) if self.title in titles else -1

    def on_screen(self) -> bool:
        """Whether this tab is the open one (always True outside a server or without a URL)."""
        location = pn.state.location
        if location is None or not in_server_session():
            return True
        raw = (location.query_params or {}).get("tab", 0)
        try:
            return int(raw) == self._index()
        except (TypeError, ValueError):
            return False

    async def _start(self) -> None:
        ctrl = self.controller
        if in_server_session() and self._checker is None:
            self._checker = pn.state.add_periodic_callback(self._check, period=int(VISIBILITY_CHECK_S * 1000))
            pn.state.on_session_destroyed(self._stop)
        ctrl.visible = self.on_screen()
        if not ctrl.visible:
            await ctrl.refresh_now()  # built without being shown (build_all): read once anyway
        self._last_refresh = time.monotonic()

    def _stop(self, _session_context: Any = None) -> None:
        if self._checker is not None:
            self._checker.stop()
            self._checker = None

    async def _check(self) -> None:
        """Every few seconds: follow the tab's visibility; refresh when shown, then every ``refresh_period``."""
        ctrl = self.controller
        visible = self.on_screen()
        if visible != ctrl.visible:
            ctrl.visible = visible  # becoming visible refreshes (the controller's watcher)
            if visible:
                self._last_refresh = time.monotonic()
            return
        if visible and not ctrl.loading and time.monotonic() - self._last_refresh >= ctrl.refresh_period:
            self._last_refresh = time.monotonic()
            await ctrl.refresh_now()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["MonitoringSection"]
