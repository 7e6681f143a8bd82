"""Charts drawn off the event loop: per-process HoloViews objects, per-session Bokeh models."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (the options below are Bokeh options)
import pandas as pd
import panel as pn
from bokeh.document import Document
from panel.io.state import set_curdoc

from fraud_app.ui import charts
from fraud_app.ui.charts import ChartSpec, OffloopChart, chart_object, render_model, run_off_loop

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


def test_outside_a_server_the_chart_is_drawn_at_once_and_follows_its_spec() -> None:
    chart = OffloopChart(title="demo bars", height=200)
    assert chart.model is None and "Drawing the demo bars" in chart.__panel__().object.text
    chart.spec = ChartSpec(bars, "four", key="four")
    assert chart.drawn == chart.spec and chart.model.title.text == "four"
    chart.spec = ChartSpec(bars, "five", key="five")
    assert chart.model.title.text == "five"


def test_a_chart_bound_to_a_parameter_redraws_with_it() -> None:
    import param

    class Choice(param.Parameterized):
        label = param.String(default="six")

        @param.depends("label")
        def spec(self) -> ChartSpec:
            return ChartSpec(bars, self.label, key=self.label)

    choice = Choice()
    chart = OffloopChart(spec=choice.spec)
    assert chart.model.title.text == "six"
    choice.label = "seven"
    assert chart.model.title.text == "seven"


def test_run_off_loop_outside_a_server_runs_both_at_once() -> None:
    seen: list[int] = []
    run_off_loop(lambda: 21 * 2, seen.append)
    assert seen == [42]
    assert isinstance(pn.state.curdoc, (Document, type(None)))
