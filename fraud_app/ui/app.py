"""The app shell: the registered sections as tabs in a Panel template."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import panel as pn
import param

from fraud_app.ui.base import (
    Section,
    busy,
    discover_sections,
    notify_error,
    registered_sections,
)
from fraud_app.ui.state import AppState

log = logging.getLogger(__name__)

#: The repository's ``assets/`` folder (logo, CSS).
ASSETS = Path(__file__).resolve().parents[2] / "assets"
LOGO = ASSETS / "logo.svg"
ACCENT = "#1f4e79"
TITLE = "Fraud Detection Studio"


class FraudApp(pn.viewable.Viewer):
    """The whole app for one session: every registered :class:`Section` as a tab.

    The page renders immediately; loading the data set (and what sections derive
    from it) runs afterwards in ``pn.state.onload``. Failures are logged and shown
    as a notification, and the busy indicator always resets.
    """

    state = param.ClassSelector(class_=AppState, doc="The session's shared state, handed to every section.")
    title = param.String(default=TITLE, constant=True, doc="Title shown in the header and the browser tab.")
    use_template = param.Boolean(
        default=True, constant=True,
        doc="Wrap the tabs in the page template (header, logo, theme toggle); False embeds just the tabs.",
    )
    active = param.Integer(default=0, bounds=(0, None), doc="Index of the open tab.")
    sections = param.List(
        default=[], item_type=Section, constant=True, doc="The section instances, in tab order.",
    )

    def __init__(self, section_classes: list[type[Section]] | None = None, **params: Any) -> None:
        if params.get("state") is None:
            params["state"] = AppState()
        super().__init__(**params)
        if section_classes is None:
            discover_sections()
            section_classes = registered_sections()
        with param.edit_constant(self):
            self.sections = [cls(state=self.state) for cls in section_classes]
        self._tabs = pn.Tabs(
            *[(section.label(), section) for section in self.sections],
            dynamic=True, sizing_mode="stretch_width",
        )
        self._tabs.link(self, active="active", bidirectional=True)
        self._data_card = pn.pane.Markdown("Loading the data set…", sizing_mode="stretch_width")
        self._layout: pn.viewable.Viewable
        if self.use_template:
            self._theme_switch = pn.widgets.Switch(
                value=pn.config.theme == "dark", width=40, margin=(12, 4, 0, 0),
                stylesheets=[_SWITCH_CSS],
            )
            # Panel applies a theme when the page loads (``?theme=dark``): reload with the other one.
            self._theme_switch.jscallback(value=_THEME_JS)
            self._layout = pn.template.BootstrapTemplate(
                title=self.title,
                logo=str(LOGO),
                favicon=str(LOGO),
                header_background=ACCENT,
                header=[pn.Row(pn.layout.HSpacer(), pn.pane.HTML(
                    "<span title='Light / dark theme'>☀ / ☾</span>", margin=(14, 4, 0, 0),
                    stylesheets=[":host { color: white; font-size: 15px; }"]), self._theme_switch)],
                main=[self._tabs],
                sidebar=[pn.pane.Markdown("### Data set"), self._data_card, pn.pane.Markdown(_CREDIT)],
                sidebar_width=280,
                collapsed_sidebar=True,
            )
        else:
            self._layout = pn.Column(self._tabs, sizing_mode="stretch_width")
        pn.state.onload(self._load)

    def _load(self) -> None:
        """Deferred start-up: load the data set once the page is on screen."""
        with busy(self._tabs):
            try:
                self.state.load_dataset()
            except Exception as exc:
                self._data_card.object = f"**Not loaded.** {exc}"
                notify_error("Could not load the data set", exc)

    @param.depends("state.dataset_info", watch=True)
    def _update_data_card(self) -> None:
        info = self.state.dataset_info
        if info is None:
            return
        self._data_card.object = (
            f"- **Source:** `{Path(info.source).name}`\n"
            f"- **Rows:** {info.rows:,}\n"
            f"- **Frauds:** {info.frauds:,} ({info.fraud_rate:.3%})\n"
            f"- **Time span:** {info.time_span_hours:.1f} h\n"
            f"- **Fingerprint:** `{info.fingerprint}`"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


_THEME_JS = """
const params = new URLSearchParams(window.location.search);
params.set('theme', cb_obj.value ? 'dark' : 'default');
window.location.search = params.toString();
"""
_SWITCH_CSS = ":host { flex-shrink: 0; }"

_CREDIT = (
    "Data: the credit-card fraud data set collected by Worldline and the Machine Learning Group of "
    "ULB (Université Libre de Bruxelles), published on Kaggle (mlg-ulb/creditcardfraud) and OpenML "
    "(1597) under the Open Database License."
)


def create_app(**params: Any) -> FraudApp:
    """Build the app for one browser session (``app.py`` calls this)."""
    pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")
    return FraudApp(**params)


__all__ = ["ASSETS", "LOGO", "FraudApp", "create_app"]
