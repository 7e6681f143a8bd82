"""The app shell: the registered sections as tabs in a Panel template."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import panel as pn
import param
from panel.theme import THEMES, Bootstrap

from fraud_app.ui.base import (
    Section,
    busy,
    discover_sections,
    notify_error,
    registered_sections,
)
from fraud_app.ui.state import AppState
from fraud_app.ui.theme import ASSETS

log = logging.getLogger(__name__)

LOGO = ASSETS / "logo.svg"
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
        # The first page is a light shell (tabs holding spinners); the sections move in on load.
        self._holders = [pn.Column(sizing_mode="stretch_width", min_height=300, loading=True)
                         for _ in self.sections]
        self._tabs = pn.Tabs(
            *[(section.label(), holder) for section, holder in zip(self.sections, self._holders, strict=True)],
            dynamic=True, sizing_mode="stretch_width",
        )
        self._tabs.link(self, active="active", bidirectional=True)
        self._data_card = pn.pane.Markdown("Loading the data set…", sizing_mode="stretch_width",
                                           margin=(0, 10), css_classes=["fds-data-card"])
        self._footer = pn.Column(sizing_mode="stretch_width")
        self._main = pn.Column(self._tabs, self._footer, sizing_mode="stretch_width")
        self._layout: pn.viewable.Viewable = self._main
        if self.use_template:
            self._layout = self._build_template()
        pn.state.onload(self._load)

    def _build_template(self) -> pn.template.Template:
        """The page: header with logo, title and theme toggle, then the tabs.

        A :class:`panel.template.Template` with our own Jinja page (``assets/page.html``):
        Panel's ready-made templates always embed an HTML root, which makes Panel ship
        MathJax (1.8 MB) with every page; this page stays within the payload budget.
        """
        dark = pn.config.theme == "dark"
        self._theme_toggle = pn.widgets.Toggle(
            name="☀ Light theme" if dark else "☾ Dark theme", value=dark, width=130,
            color="light", variant="outline", margin=0, stylesheets=[_TOGGLE_CSS],
        )
        # Panel applies a theme when the page loads (``?theme=dark``): reload with the other one.
        self._theme_toggle.jscallback(value=_THEME_JS)
        theme = THEMES["dark" if dark else "default"]
        template = pn.template.Template(
            (ASSETS / "page.html").read_text(encoding="utf-8"), design=Bootstrap, theme=theme,
        )
        template.add_panel("main", self._main)
        template.add_panel("theme_toggle", self._theme_toggle)
        notifications = pn.state.notifications
        if notifications is not None:
            template.add_panel("notifications", notifications)
        template.add_variable("app_notifications", notifications is not None)
        template.add_variable("app_title", self.title)
        template.add_variable("app_logo", _data_uri(LOGO))
        template.add_variable("app_favicon", _data_uri(LOGO))
        template.add_variable("app_theme", "dark" if dark else "default")
        # A bare Template does not load the theme's colour variables (--panel-primary-color, ...)
        # into the page, which left primary buttons white on white: inline them with our CSS.
        theme_css = Path(theme.base_css).read_text(encoding="utf-8")
        template.add_variable("app_css", theme_css + "\n" + (ASSETS / "app.css").read_text(encoding="utf-8"))
        template.add_variable("title", self.title)
        return template

    def _load(self) -> None:
        """Deferred start-up: load the data set, then put the sections on the page.

        The sections move in after the load, so their first render already carries
        the data (no half-built tables patched a moment later).
        """
        try:
            with busy(*self._holders):
                try:
                    self.state.load_dataset()
                except Exception as exc:
                    self._data_card.object = f"**Not loaded.** {exc}"
                    notify_error("Could not load the data set", exc)
        finally:
            log.debug("session ready: %d section(s)", len(self.sections))
            for holder, section in zip(self._holders, self.sections, strict=True):
                holder[:] = [section]
            self._footer[:] = [self._data_card, pn.pane.Markdown(
                _CREDIT, margin=(0, 10), styles={"font-size": "0.85em", "opacity": "0.8"})]

    @param.depends("state.dataset_info", watch=True)
    def _update_data_card(self) -> None:
        info = self.state.dataset_info
        if info is None:
            return
        self._data_card.object = (
            f"**Data set:** `{Path(info.source).name}` · {info.rows:,} transactions · "
            f"{info.frauds:,} frauds ({info.fraud_rate:.3%}) · {info.time_span_hours:.1f} h · "
            f"fingerprint `{info.fingerprint}`"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


_TOGGLE_CSS = ".bk-btn { color: #ffffff !important; border-color: rgba(255, 255, 255, 0.6) !important; }"

_THEME_JS = """
const params = new URLSearchParams(window.location.search);
params.set('theme', cb_obj.active ? 'dark' : 'default');
window.location.search = params.toString();
"""

def _data_uri(path: Path) -> str:
    """A file as a ``data:`` URI (the logo travels inside the page: no extra request)."""
    return "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


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
