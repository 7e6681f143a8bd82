"""The app shell: the registered sections as tabs in a Panel template."""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import logging
import time
from pathlib import Path
from typing import Any

import panel as pn
import param
from panel.theme import THEMES, Bootstrap

from fraud_app.ui.base import (
    Section,
    discover_sections,
    notify_error,
    registered_sections,
)
from fraud_app.ui.charts import in_server_session, run_off_loop
from fraud_app.ui.state import AppState, dataset_ready, prepare_dataset
from fraud_app.ui.theme import ASSETS, stylesheet

log = logging.getLogger(__name__)

LOGO = ASSETS / "logo.svg"
TITLE = "Fraud Detection Studio"


class FraudApp(pn.viewable.Viewer):
    """The whole app for one browser session: every registered :class:`Section` as a tab.

    A session is cheap to build: only the open tab's section is constructed, and a
    section is constructed on its tab's first visit. The data set and its summary are
    shared by the process (computed once, by the server's warm-up or by the first
    session in a worker thread), so a session only publishes them. The open tab and
    the theme live in the URL (``?tab=1&theme=dark``), so a reload keeps them.
    """

    state = param.ClassSelector(class_=AppState, doc="The session's shared state, handed to every section.")
    title = param.String(default=TITLE, constant=True, doc="Title shown in the header and the browser tab.")
    use_template = param.Boolean(
        default=True, constant=True,
        doc="Wrap the tabs in the page template (header, logo, theme toggle); False embeds just the tabs.",
    )
    active = param.Integer(default=0, bounds=(0, None), doc="Index of the open tab.")
    sections = param.List(
        default=[], item_type=Section, constant=True,
        doc="The sections built so far, in tab order (a tab's section is built on its first visit).",
    )

    def __init__(self, section_classes: list[type[Section]] | None = None, **params: Any) -> None:
        if params.get("state") is None:
            params["state"] = AppState()
        super().__init__(**params)
        if section_classes is None:
            discover_sections()
            section_classes = registered_sections()
        self._classes = list(section_classes)
        self._built: dict[int, Section] = {}
        self._building: set[int] = set()
        self._ready = False  # the tab opened by the URL is built below, not by the watcher
        self._holders = [pn.Column(sizing_mode="stretch_width", min_height=300) for _ in self._classes]
        self._tabs = pn.Tabs(
            *[(cls.label(), holder) for cls, holder in zip(self._classes, self._holders, strict=True)],
            dynamic=True, sizing_mode="stretch_width",
        )
        if pn.state.location is not None and in_server_session():
            pn.state.location.sync(self, {"active": "tab"})
            pn.state.location.sync(self.state, {"active_model": "model"})
        self.active = min(self.active, len(self._classes) - 1)
        self._tabs.active = self.active
        self._tabs.link(self, active="active", bidirectional=True)
        # The footer is one HTML pane (a Markdown pane per line costs a Markdown render each).
        self._footer = pn.pane.HTML(self.footer_html, sizing_mode="stretch_width", margin=(0, 10),
                                    css_classes=["fds-footer"])
        self._main = pn.Column(self._tabs, self._footer, sizing_mode="stretch_width")
        self._layout: pn.viewable.Viewable = self._main
        if self.use_template:
            self._layout = self._build_template()
        if dataset_ready():
            self._publish_dataset()  # in memory already: publishing it is instant
        elif in_server_session():
            pn.state.onload(self._load_async)
        else:
            self._load()
        self.section(self.active)
        self._ready = True

    # ------------------------------------------------------------------ sections

    def section(self, index: int) -> Section:
        """The section of tab ``index``, built (and put in its tab) on first use."""
        section = self._built.get(index)
        if section is None:
            started = time.perf_counter()
            section = self._classes[index](state=self.state)
            self._add_section(index, section)
            log.debug("section %r built in %.1f ms", self._classes[index].title,
                      1000 * (time.perf_counter() - started))
        return section

    def build_all(self) -> list[Section]:
        """Build every tab's section now (notebooks and tests; a browser builds them on first visit)."""
        for index in range(len(self._classes)):
            self.section(index)
        return self.sections

    @param.depends("active", watch=True)
    def _on_active(self) -> None:
        index = self.active
        if not self._ready or not 0 <= index < len(self._classes) or index in self._built or index in self._building:
            return
        if not in_server_session():
            self.section(index)
            return
        # In a browser: say what is coming, build the section's objects in the worker thread,
        # and only attach them on the event loop.
        self._building.add(index)
        cls = self._classes[index]
        self._holders[index][:] = [pn.pane.HTML(
            f"<div class='fds-skeleton'>Loading the {html.escape(cls.title)} tab…</div>", height=300,
            sizing_mode="stretch_width", stylesheets=[stylesheet("charts")])]
        started = time.perf_counter()

        def attach(section: Section) -> None:
            attach_started = time.perf_counter()
            self._building.discard(index)
            self._add_section(index, section)
            log.debug("section %r built off the loop in %.1f ms, attached in %.1f ms", cls.title,
                      1000 * (attach_started - started), 1000 * (time.perf_counter() - attach_started))

        run_off_loop(functools.partial(cls, state=self.state), attach)

    def _add_section(self, index: int, section: Section) -> None:
        self._built[index] = section
        self._holders[index][:] = [section]
        with param.edit_constant(self):
            self.sections = [self._built[i] for i in sorted(self._built)]

    # ------------------------------------------------------------------ the data set

    def _publish_dataset(self) -> None:
        try:
            self.state.load_dataset()
        except Exception as exc:
            notify_error("Could not load the data set", exc)

    def _load(self) -> None:
        """Outside a server: load (or reuse) the shared data set at once."""
        try:
            prepare_dataset()
        except Exception as exc:
            log.debug("data set preparation failed: %s", exc)
        self._publish_dataset()

    async def _load_async(self) -> None:
        """In a browser session whose data set is not in memory yet: prepare it in a worker thread."""
        try:
            await asyncio.to_thread(prepare_dataset)
        except Exception as exc:
            log.debug("data set preparation failed: %s", exc)
        self._publish_dataset()

    @param.depends("state.dataset_info", "state.dataset_error")
    def data_card_text(self) -> str:
        """One line on the data set (HTML)."""
        info = self.state.dataset_info
        if info is None:
            if self.state.dataset_error:
                return f"<b>Not loaded.</b> {html.escape(self.state.dataset_error)}"
            return "Loading the data set…"
        return (
            f"<b>Data set:</b> <code>{html.escape(Path(info.source).name)}</code> · {info.rows:,} transactions · "
            f"{info.frauds:,} frauds ({info.fraud_rate:.3%}) · {info.time_span_hours:.1f} h · "
            f"fingerprint <code>{html.escape(info.fingerprint)}</code>"
        )

    @param.depends("state.dataset_info", "state.dataset_error")
    def footer_html(self) -> str:
        """The footer: the data set in use and the data's credit."""
        return (f"<div class='fds-data-card'>{self.data_card_text()}</div>"
                f"<div style='font-size:0.85em;opacity:0.8;margin-top:4px'>{html.escape(_CREDIT)}</div>")

    def _build_template(self) -> pn.template.Template:
        """The page: header with logo, title and theme toggle, then the tabs.

        A :class:`panel.template.Template` with our own Jinja page (``assets/page.html``):
        Panel's ready-made templates always embed an HTML root, which makes Panel ship
        MathJax (1.8 MB) with every page; this page stays within the payload budget.
        """
        dark = pn.config.theme == "dark"
        theme = THEMES["dark" if dark else "default"]
        template = _Page(_page_source(), design=Bootstrap, theme=theme, location=True)
        template.add_panel("main", self._main)
        notifications = pn.state.notifications
        if notifications is not None:
            template.add_panel("notifications", notifications)
        template.add_variable("app_notifications", notifications is not None)
        template.add_variable("app_title", self.title)
        template.add_variable("app_logo", _data_uri(LOGO))
        template.add_variable("app_favicon", _data_uri(LOGO))
        # The theme switch is a plain button of the page (no Panel model): Panel applies a theme
        # when the page loads (``?theme=dark``), so it reloads with the other one, keeping the
        # other URL parameters (the open tab, the model).
        template.add_variable("app_theme", "dark" if dark else "default")
        # A bare Template does not load the theme's colour variables (--panel-primary-color, ...)
        # into the page, which left primary buttons white on white: inline them with our CSS.
        template.add_variable("app_css", _page_css(theme.base_css))
        template.add_variable("title", self.title)
        return template

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class _Page(pn.template.Template):
    """Panel's Template without its notebook preview, which re-renders the whole page's repr
    at every ``add_panel`` (tens of milliseconds of a session's build, on the event loop)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._render_items)})"


@functools.cache
def _page_source() -> str:
    return (ASSETS / "page.html").read_text(encoding="utf-8")


@functools.cache
def _page_css(theme_css: str) -> str:
    return Path(theme_css).read_text(encoding="utf-8") + "\n" + (ASSETS / "app.css").read_text(encoding="utf-8")


@functools.cache
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
