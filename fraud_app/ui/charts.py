"""Static charts: rendered once per process, off the event loop, embedded in each session.

Turning a HoloViews object into Bokeh models costs 50-300 ms of pure Python per chart,
and attaching those models to a session's document costs as much again on the Tornado
event loop that every browser session and the REST API share (Bokeh re-walks the whole
document and serialises the new models into a patch). A chart that is the same for every
session need not pay that per session:

- a chart is described by a :class:`ChartSpec` (a builder function and its arguments);
  its HoloViews object is cached per process (:func:`chart_object`);
- :func:`render_item` renders it once per process and theme, in one worker thread, to a
  Bokeh JSON item (``bokeh.embed.json_item``), kept as text in an LRU cache;
- a session shows it with an :class:`EmbeddedChart`, a small ``JSComponent`` whose only
  state is that text: BokehJS builds the plot in the browser
  (``Bokeh.embed.embed_item``), so hover, pan and zoom work as in any Bokeh plot.

:class:`OffloopChart` ties them together: it shows a placeholder saying what is being
drawn, takes a cached item at once, or asks the worker and sets the item in a next-tick
callback (one short string update on the loop). Charts whose streams call back into
Python (datashader's re-rasterising on zoom) stay in ``pn.pane.HoloViews``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import holoviews as hv
import panel as pn
import param
from bokeh.core.json_encoder import serialize_json
from bokeh.document import Document
from bokeh.embed import json_item
from panel.custom import JSComponent
from panel.io.state import set_curdoc
from panel.theme import Bootstrap
from tornado.ioloop import IOLoop

from fraud_app.ui.theme import ASSETS, stylesheet

log = logging.getLogger(__name__)

#: One worker renders every session's charts, in the order they were asked for; one
#: thread bounds the CPU that page loads take from the API and keeps HoloViews' global
#: state single-threaded.
_RENDER_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fds-chart")
_cache_lock = threading.Lock()
_cache: OrderedDict[Hashable, Any] = OrderedDict()
_items: OrderedDict[Hashable, str] = OrderedDict()
#: HoloViews objects, and rendered items, kept per process (a spec's key includes the data set's fingerprint).
CACHE_SIZE = 256


class ChartSpec:
    """A chart as data: ``builder(*args)`` returns the HoloViews object.

    ``key`` identifies the chart across sessions (builder name, the data set's
    fingerprint, the choices); two specs with the same key draw the same chart.
    """

    __slots__ = ("args", "builder", "key")

    def __init__(self, builder: Callable[..., Any], *args: Any, key: Hashable) -> None:
        self.builder = builder
        self.args = args
        self.key = (builder.__module__, builder.__qualname__, key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChartSpec) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"ChartSpec({self.builder.__qualname__}, key={self.key[2]!r})"


def chart_object(spec: ChartSpec) -> Any:
    """The HoloViews object of ``spec``, built once per process (thread-safe)."""
    with _cache_lock:
        if spec.key in _cache:
            _cache.move_to_end(spec.key)
            return _cache[spec.key]
    obj = spec.builder(*spec.args)
    with _cache_lock:
        _cache[spec.key] = obj
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return obj


def render_model(spec: ChartSpec) -> Any:
    """Build (cached) and render ``spec`` to a fresh Bokeh model (runs in the worker thread).

    The plot gets a throw-away ``Document`` and is cleaned up at once (only its Bokeh
    model is kept): left to itself HoloViews would attach it to ``curdoc()``, i.e. to
    whichever session is current, with clean-up hooks there that keep it alive.
    """
    # In server mode HoloViews attaches the plot to the document it is given.
    renderer = hv.renderer("bokeh").instance(mode="server")
    plot = renderer.get_plot(chart_object(spec), doc=Document())
    model = plot.state
    plot.cleanup()
    return model


def _bokeh_theme(theme: str) -> Any:
    """The Bokeh theme of the page's design (Bootstrap) for Panel's theme name."""
    return Bootstrap._themes.get(theme, Bootstrap._themes["default"]).param.bokeh_theme.default


def cached_item(spec: ChartSpec, theme: str = "default") -> str | None:
    """The rendered item of ``spec`` if this process has it already (cheap: no rendering)."""
    key = (spec.key, theme)
    with _cache_lock:
        item = _items.get(key)
        if item is not None:
            _items.move_to_end(key)
        return item


def render_item(spec: ChartSpec, theme: str = "default") -> str:
    """``spec`` rendered to a Bokeh JSON item (text), once per process and theme.

    Runs in the worker thread (or at warm-up); every session then embeds the same text.
    """
    item = cached_item(spec, theme)
    if item is not None:
        return item
    item = serialize_json(json_item(render_model(spec), theme=_bokeh_theme(theme)))
    with _cache_lock:
        _items[(spec.key, theme)] = item
        while len(_items) > CACHE_SIZE:
            _items.popitem(last=False)
    return item


def session_theme() -> str:
    """The theme of the current session (``?theme=dark``), as Panel's config has it."""
    return "dark" if pn.config.theme == "dark" else "default"


def clear_cache() -> None:
    """Forget the cached HoloViews objects and rendered items (tests)."""
    with _cache_lock:
        _cache.clear()
        _items.clear()


_LOOP: IOLoop | None = None


def _server_loop() -> IOLoop | None:
    """The server's event loop, also from a worker thread (it is remembered from the loop's thread).

    None before the server runs (``panel serve --warm`` builds a session before it starts its loop).
    """
    global _LOOP
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _LOOP
    _LOOP = IOLoop.current()
    return _LOOP


def run_off_loop(func: Callable[[], Any], then: Callable[[Any], None], pool: ThreadPoolExecutor | None = None) -> None:
    """Run ``func`` in the worker thread (or ``pool``), then ``then(result)`` on the event loop, in a next tick.

    ``func`` sees the session's ``curdoc`` (per-session config such as the theme) but must not
    touch the document: build Panel objects there, attach them in ``then``. Outside a server
    both run at once. An exception in ``func`` is logged and ``then`` is not called.
    """
    doc = pn.state.curdoc
    ioloop = _server_loop()
    if doc is None or doc.session_context is None or ioloop is None:
        then(func())
        return

    def work() -> Any:
        with set_curdoc(doc):
            return func()

    def deliver(fut: Future) -> None:
        if doc.session_context is None:
            return
        try:
            result = fut.result()
        except Exception as exc:
            log.error("off-loop work %s failed: %s", getattr(func, "__name__", func), exc, exc_info=exc)
            return
        try:
            doc.add_next_tick_callback(functools.partial(then, result))
        except Exception as exc:  # the session closed meanwhile
            log.debug("off-loop work finished after its session closed: %s", exc)

    (pool or _RENDER_POOL).submit(work).add_done_callback(lambda fut: ioloop.add_callback(deliver, fut))


def in_server_session() -> bool:
    """True inside a browser session of a running server."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


class EmbeddedChart(JSComponent):
    """A Bokeh chart embedded from its JSON item; until it has one, a placeholder line.

    The session's document holds this one model and the item's text, not the chart's
    dozens of Bokeh models: BokehJS builds those in the browser (``assets/embedded_chart.js``).
    """

    item = param.String(default="", doc="The chart as a Bokeh JSON item (text); empty: the placeholder.")
    placeholder = param.String(default="Drawing the chart…", doc="What is shown until the chart arrives.")

    # Read once per process: given as a path, Panel would read the file again for every chart of every session.
    _esm = (ASSETS / "embedded_chart.js").read_text(encoding="utf-8")


class OffloopChart(pn.viewable.Viewer):
    """A static chart rendered off the loop (once per process) and embedded when ready.

    Until its first chart arrives it shows a placeholder saying what is being drawn.
    A new ``spec`` while a render is in flight supersedes it: only the latest one is
    shown. Outside a server (notebooks, tests) it renders at once.
    """

    spec = param.ClassSelector(class_=ChartSpec, default=None, allow_None=True, allow_refs=True,
                               doc="What to draw (None: nothing yet).")
    title = param.String(default="chart", doc="What the placeholder says is being drawn.")
    height = param.Integer(default=320, bounds=(50, None), doc="Height of the chart in pixels.")
    drawn = param.ClassSelector(class_=ChartSpec, default=None, allow_None=True, constant=True,
                                doc="The spec whose chart is on screen (None: none yet).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._seq = 0
        self._theme = session_theme()
        self._pane = EmbeddedChart(placeholder=f"Drawing the {self.title}…", height=self.height,
                                   sizing_mode="stretch_width", css_classes=["fds-chart"],
                                   stylesheets=[stylesheet("charts")])
        if self.spec is not None:
            self._request()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane

    @property
    def item(self) -> str | None:
        """The Bokeh JSON item (text) of the chart on screen (None before the first chart)."""
        return self._pane.item if self.drawn is not None else None

    @param.depends("spec", watch=True)
    def _on_spec(self) -> None:
        if self.spec is not None and self.spec != self.drawn:
            self._request()

    def _request(self) -> None:
        """Show the current spec: at once when this process has rendered it, else via the worker.

        The render runs outside the document's lock, so the session keeps answering
        (tab switches, widgets) while its charts are drawn; the item is set in a next-tick
        callback.
        """
        spec = self.spec
        if spec is None:
            return
        self._seq += 1
        seq = self._seq
        item = cached_item(spec, self._theme)
        if item is not None:
            self._show(spec, item)
            return
        doc, ioloop = pn.state.curdoc, _server_loop()
        if not in_server_session() or ioloop is None:  # notebooks, tests, the --warm session
            self._show(spec, render_item(spec, self._theme))
            return
        future = _RENDER_POOL.submit(render_item, spec, self._theme)
        # Hand the result to the loop's thread first: a document's callbacks may only be
        # added there (the worker would race with the session's own bookkeeping).
        future.add_done_callback(lambda fut: ioloop.add_callback(self._schedule_show, doc, spec, seq, fut))

    def _schedule_show(self, doc: Any, spec: ChartSpec, seq: int, future: Future) -> None:
        if seq != self._seq or doc.session_context is None:
            return
        try:
            doc.add_next_tick_callback(functools.partial(self._on_rendered, spec, seq, future))
        except Exception as exc:  # the session closed meanwhile
            log.debug("chart %s finished after its session closed: %s", spec, exc)

    def _on_rendered(self, spec: ChartSpec, seq: int, future: Future) -> None:
        if seq != self._seq:  # a newer spec was asked for meanwhile
            return
        try:
            item = future.result()
        except Exception as exc:
            log.error("could not draw %s: %s", spec, exc, exc_info=exc)
            self._pane.placeholder = f"Could not draw the {self.title}: {exc}"
            return
        self._show(spec, item)

    def _show(self, spec: ChartSpec, item: str) -> None:
        self._pane.item = item
        with param.edit_constant(self):
            self.drawn = spec


__all__ = ["CACHE_SIZE", "ChartSpec", "EmbeddedChart", "OffloopChart", "cached_item", "chart_object", "clear_cache",
           "in_server_session", "render_item", "render_model", "run_off_loop", "session_theme"]
