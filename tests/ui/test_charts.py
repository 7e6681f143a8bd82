"""Charts drawn off the event loop: per-process HoloViews objects and rendered items, embedded per session."""

from __future__ import annotations

import json

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (the options below are Bokeh options)
import pandas as pd
import panel as pn
from bokeh.document import Document
from panel.io.state import set_curdoc

from fraud_app.ui import charts
from fraud_app.ui.charts import (
    ChartSpec,
    EmbeddedChart,
    OffloopChart,
    cached_item,
    chart_object,
    render_item,
    render_model,
    run_off_loop,
)
from tests.ui.chart_items import item_objects

calls: list[str] = []


def bars(label: str) -> hv.Bars:
    calls.append(label)
    return hv.Bars(pd.DataFrame({"x": ["a", "b"], "y": [1, 2]}), "x", "y").opts(title=label)


def test_a_spec_is_built_once_per_process() -> None:
    charts.clear_cache()
    calls.clear()
    first = chart_object(ChartSpec(bars, "one", key="one"))
    again = chart_object(ChartSpec(bars, "one", key="one"))
    other = chart_object(ChartSpec(bars, "two", key="two"))
    assert first is again and other is not first
    assert calls == ["one", "two"]
    assert ChartSpec(bars, "one", key="one") == ChartSpec(bars, "x", key="one")  # the key decides


def test_each_render_is_a_fresh_model_that_no_session_keeps() -> None:
    spec = ChartSpec(bars, "three", key="three")
    doc = Document()
    with set_curdoc(doc):  # as inside a session: HoloViews must not attach the plot to it
        model = render_model(spec)
        second = render_model(spec)
    assert model is not second and model.title.text == "three"
    assert model.document is None
    assert len(doc.session_destroyed_callbacks) == 0


def title_of(item: str | None) -> str:
    """The title text of the figure in a rendered item."""
    assert item is not None
    doc = json.loads(item)["doc"]
    titles = [ref["attributes"]["text"] for ref in item_objects(doc) if ref.get("name") == "Title"]
    return titles[0]


def test_an_item_is_rendered_once_per_process_and_theme() -> None:
    charts.clear_cache()
    spec = ChartSpec(bars, "item", key="item")
    assert cached_item(spec) is None
    light = render_item(spec)
    assert cached_item(spec) is light and render_item(spec) is light
    dark = render_item(spec, "dark")
    assert dark != light and title_of(dark) == title_of(light) == "item"
    assert '"background_fill_color":"#' in dark.replace(" ", "")  # the dark Bokeh theme is applied


def test_outside_a_server_the_chart_is_drawn_at_once_and_follows_its_spec() -> None:
    chart = OffloopChart(title="demo bars", height=200)
    pane = chart.__panel__()
    assert isinstance(pane, EmbeddedChart) and chart.item is None and pane.item == ""
    assert pane.placeholder == "Drawing the demo bars…"
    chart.spec = ChartSpec(bars, "four", key="four")
    assert chart.drawn == chart.spec and title_of(chart.item) == "four" and pane.item == chart.item
    chart.spec = ChartSpec(bars, "five", key="five")
    assert title_of(chart.item) == "five"


def test_a_session_holds_one_model_per_chart_not_the_charts_bokeh_models() -> None:
    chart = OffloopChart(spec=ChartSpec(bars, "light", key="light"))
    doc = Document()
    root = chart.__panel__().get_root(doc)
    kinds = {type(model).__name__ for model in root.references()}
    # The component, its data model and stylesheets: no figure, axes, tools or glyphs.
    assert kinds <= {"ReactiveESM", "ImportedStyleSheet", type(root.data).__name__}, kinds
    assert title_of(root.data.item) == "light"


def test_a_chart_bound_to_a_parameter_redraws_with_it() -> None:
    import param

    class Choice(param.Parameterized):
        label = param.String(default="six")

        @param.depends("label")
        def spec(self) -> ChartSpec:
            return ChartSpec(bars, self.label, key=self.label)

    choice = Choice()
    chart = OffloopChart(spec=choice.spec)
    assert title_of(chart.item) == "six"
    choice.label = "seven"
    assert title_of(chart.item) == "seven"


def test_run_off_loop_outside_a_server_runs_both_at_once() -> None:
    seen: list[int] = []
    run_off_loop(lambda: 21 * 2, seen.append)
    assert seen == [42]
    assert isinstance(pn.state.curdoc, (Document, type(None)))
