"""Static charts drawn off the event loop.

Turning a HoloViews object into Bokeh models costs 50-150 ms of pure Python per
chart. Done by ``pn.pane.HoloViews`` it runs on the Tornado event loop that every
browser session and the REST API share, so a page with a dozen charts held the loop
for a second or more. :class:`OffloopChart` instead builds and renders its chart in
one process-wide worker thread and only attaches the finished Bokeh model on the
loop (one short callback per chart), so charts appear one by one as they are ready
and the loop stays free for the API.

What is the same for every session is built once per process: a chart is described
by a :class:`ChartSpec` (a builder function and its arguments), and the HoloViews
object of a spec is cached (:func:`chart_object`). Only the Bokeh models, which
belong to one browser document, are made per session.

Use it for charts without server-side interaction (hover, pan and zoom are all
client-side in Bokeh). Charts whose streams call back into Python (datashader's
re-rasterising on zoom) stay in ``pn.pane.HoloViews``.
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
from bokeh.document import Document
from bokeh.models import Div
from panel.io.state import set_curdoc
from tornado.ioloop import IOLoop

from fraud_app.ui.theme import stylesheet

log = logging.getLogger(__name__)

#: One worker renders every session's charts, in the order they were asked for; one
#: thread bounds the CPU that page loads take from the API and keeps HoloViews' global
#: state single-threaded.
_RENDER_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fds-chart")
_cache_lock = threading.Lock()
_cache: OrderedDict[Hashable, Any] = OrderedDict()
#: HoloViews objects kept per process (a spec's key includes the data set's fingerprint).
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


def clear_cache() -> None:
    """Forget the cached HoloViews objects (tests)."""
    with _cache_lock:
        _cache.clear()


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


def run_off_loop(func: Callable[[], Any], then: Callable[[Any], None]) -> None:
    """Run ``func`` in the worker thread, then ``then(result)`` on the event loop, in a next tick.

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

    _RENDER_POOL.submit(work).add_done_callback(lambda fut: ioloop.add_callback(deliver, fut))


def in_server_session() -> bool:
    """True inside a browser session of a running server."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


class OffloopChart(pn.viewable.Viewer):
    """A static chart rendered in the worker thread and attached to the page when ready.

    Until its first chart arrives it shows a placeholder saying what is being drawn.
    A new ``spec`` while a render is in flight supersedes it: only the latest one is
    attached. Outside a server (notebooks, tests) it renders at once.
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
        # One Panel object per chart: a Bokeh pane holding a placeholder Div, then the chart.
        self._pane = pn.pane.Bokeh(
            Div(text=f"<div class='fds-skeleton'>Drawing the {self.title}…</div>",
                stylesheets=[stylesheet("charts")], sizing_mode="stretch_width", height=self.height),
            height=self.height, sizing_mode="stretch_width", css_classes=["fds-chart"])
        if self.spec is not None:
            if in_server_session():
                pn.state.onload(self._request)
            else:
                self._render_now(self.spec)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane

    @property
    def model(self) -> Any:
        """The Bokeh model of the chart on screen (None before the first chart)."""
        return self._pane.object if self.drawn is not None else None

    @param.depends("spec", watch=True)
    def _on_spec(self) -> None:
        if self.spec is None or self.spec == self.drawn:
            return
        if in_server_session():
            self._request()
        else:
            self._render_now(self.spec)

    def _request(self) -> None:
        """Ask the worker for the current spec; the result is attached in a next-tick callback.

        The render runs outside the document's lock, so the session keeps answering
        (tab switches, widgets) while its charts are drawn.
        """
        spec, doc = self.spec, pn.state.curdoc
        if spec is None or doc is None:
            return
        self._seq += 1
        seq = self._seq
        ioloop = _server_loop()
        if ioloop is None:  # no running server yet (the --warm session)
            self._render_now(spec)
            return
        future = _RENDER_POOL.submit(render_model, spec)
        # Hand the result to the loop's thread first: a document's callbacks may only be
        # added there (the worker would race with the session's own bookkeeping).
        future.add_done_callback(lambda fut: ioloop.add_callback(self._schedule_attach, doc, spec, seq, fut))

    def _schedule_attach(self, doc: Any, spec: ChartSpec, seq: int, future: Future) -> None:
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
            model = future.result()
        except Exception as exc:
            log.error("could not draw %s: %s", spec, exc, exc_info=exc)
            self._pane.object = Div(text=f"<div class='fds-skeleton'>Could not draw the {self.title}: {exc}</div>",
                                    stylesheets=[stylesheet("charts")], sizing_mode="stretch_width")
            return
        self._attach(spec, model)

    def _render_now(self, spec: ChartSpec) -> None:
        self._attach(spec, render_model(spec))

    def _attach(self, spec: ChartSpec, model: Any) -> None:
        self._pane.object = model
        with param.edit_constant(self):
            self.drawn = spec


__all__ = ["CACHE_SIZE", "ChartSpec", "OffloopChart", "chart_object", "clear_cache", "in_server_session",
           "render_model", "run_off_loop"]
