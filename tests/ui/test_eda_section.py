"""The EDA tab without a browser: built from the cached summary, reactive, per instance."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from fraud_app import eda
from fraud_app.eda import cache as eda_cache
from fraud_app.ui import eda as eda_ui
from fraud_app.ui.charts import OffloopChart, chart_object
from fraud_app.ui.eda import EDASection, encode_classes, scatter_plot
from fraud_app.ui.state import AppState


@pytest.fixture(autouse=True)
def fresh_eda_cache():
    eda.clear_cache()
    yield
    eda.clear_cache()


@pytest.fixture
def state() -> AppState:
    state = AppState()
    state.load_dataset()
    return state


def _obj(section: EDASection, name: str):
    """The HoloViews object the section's chart ``name`` shows."""
    spec = getattr(section, f"{name}_spec")()
    return None if spec is None else chart_object(spec)


def _title(obj) -> str:
    return obj.opts.get().kwargs.get("title", "")


CHARTS = ("balance", "distribution", "correlation", "ranking", "amount", "buckets", "hourly_counts",
          "hourly_rate", "scatter")


def test_section_builds_every_chart_from_the_summary(state: AppState) -> None:
    section = EDASection(state=state)
    summary = section.summary
    assert summary is eda.get_summary(state.dataset)
    assert set(section.charts) == set(CHARTS)
    for name in CHARTS:
        chart = section.charts[name]
        assert isinstance(chart, OffloopChart)
        # Outside a server the chart is drawn at once, from the spec the section computes.
        assert chart.drawn == getattr(section, f"{name}_spec")() and chart.item is not None
    header = section.header_html()
    assert "20,000" in header and "Fraud rate" in header and "Median fraud amount" in header
    assert "Memory" not in header
    assert section._describe.value is summary.describe
    assert "200 of 20,000" in section.insights_text()
    # It opens on the best-separating features.
    top = summary.top_features
    assert (section.feature, section.scatter_x, section.scatter_y) == (top[0], top[0], top[1])
    assert _title(_obj(section, "distribution")) == f"Distribution of {top[0]} by class"
    assert top[0] in section.top3_text() and top[2] in section.top3_text()


def test_the_data_set_is_described_above_the_charts(state: AppState) -> None:
    section = EDASection(state=state)
    assert "synthetic" in section.header_html()
    from fraud_app.data import DatasetInfo
    real = DatasetInfo(rows=284_807, frauds=492, fraud_rate=492 / 284_807, time_span_hours=48.0, memory_mb=68.6,
                       source="/data/creditcard.parquet", fingerprint="x")
    text = eda_ui.describe_dataset(real)
    assert "September 2013" in text and "PCA components" in text and "euros" in text
    assert "not clock time" in text
    # Another set in the canonical schema (a user's files, `data synth`) is not called the ULB one.
    other = DatasetInfo(rows=100_000, frauds=1_000, fraud_rate=0.01, time_span_hours=48.0, memory_mb=24.0,
                        source="/data/synth_set/", fingerprint="y", partitions=8)
    text = eda_ui.describe_dataset(other)
    assert "September 2013" not in text and "PCA" not in text
    assert "**Card transactions from `synth_set`**" in text and "read 100,000 rows in 8 partitions" in text


def test_a_second_session_does_no_pandas_work(state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    before = eda.compute_count()
    first = EDASection(state=state)
    assert eda.compute_count() == before + 1

    def no_recompute(*args, **kwargs):
        raise AssertionError("the EDA summary was computed again")

    monkeypatch.setattr(eda_cache, "compute_summary", no_recompute)
    other_state = AppState()
    other_state.load_dataset()
    second = EDASection(state=other_state)
    assert eda.compute_count() == before + 1
    assert second.summary is first.summary
    # The HoloViews objects and their rendered items are shared too: only the component is per session.
    assert _obj(second, "distribution") is _obj(first, "distribution")
    assert second.charts["distribution"].__panel__() is not first.charts["distribution"].__panel__()
    assert second.charts["distribution"].item is first.charts["distribution"].item


def test_picking_a_feature_updates_the_distribution(state: AppState) -> None:
    section = EDASection(state=state)
    section.feature = "feature2"
    obj = _obj(section, "distribution")
    assert _title(obj) == "Distribution of feature2 by class"
    assert section.charts["distribution"].drawn == section.distribution_spec()
    hist = obj.Histogram.Clear
    np.testing.assert_allclose(hist.dimension_values(1), section.summary.histograms["feature2"].clear_density)


def test_log_option_for_amount(state: AppState) -> None:
    section = EDASection(state=state)
    section.param.update(feature="amount", log_amount=True)
    assert _title(_obj(section, "distribution")) == "Distribution of log10(1 + amount) by class"
    section.log_amount = False
    assert _title(_obj(section, "distribution")) == "Distribution of amount by class"
    # For any other feature the log option does not apply: the same chart either way.
    section.feature = "feature3"
    plain = section.distribution_spec()
    section.log_amount = True
    assert section.distribution_spec() == plain


def test_correlation_subset_and_ranking_metric(state: AppState) -> None:
    section = EDASection(state=state)
    section.correlation_subset = "fraud"
    assert _title(_obj(section, "correlation")) == "Correlations: fraud only"
    assert "Strongest pair" in section.correlation_text()
    assert len(_obj(section, "correlation")) == 29 * 29
    assert "Top 3 by KS statistic" in section.top3_text()
    section.ranking_metric = "mutual_info"
    assert _title(_obj(section, "ranking")) == "Class separation: Mutual information (bits)"
    best_mi = section.summary.ranking.sort_values("mutual_info").iloc[-1]["feature"]
    top = _obj(section, "ranking").dframe()
    assert set(top.loc[top["group"] == "top 3", "feature"]) >= {best_mi}
    # The top-3 line follows the selected statistic.
    text = section.top3_text()
    assert "Mutual information" in text and "KS" not in text and f"`{best_mi}`" in text


def test_scatter_axes_follow_the_selectors(state: AppState) -> None:
    section = EDASection(state=state)
    section.param.update(scatter_x="feature1", scatter_y="amount")
    element = _obj(section, "scatter")
    assert isinstance(element, hv.Image)
    assert [d.name for d in element.kdims] == ["feature1", "amount"]
    section.scatter_y = "feature1"
    assert section.scatter_spec() is None
    assert "two different features" in section.scatter_text()


def test_interactive_scatter_is_a_dynamic_map_on_demand(state: AppState) -> None:
    section = EDASection(state=state)
    static = section.charts["scatter"]
    assert list(section._interactive) == [static.__panel__()]
    section.interactive_scatter = True
    (pane,) = section._interactive
    assert isinstance(pane.object, hv.DynamicMap)
    section.interactive_scatter = False
    assert list(section._interactive) == [static.__panel__()]


def test_scatter_keeps_every_fraud_visible(state: AppState) -> None:
    frame = state.dataset
    dmap = scatter_plot(frame, "feature14", "feature12")
    image = dmap[()]
    codes = image.dimension_values(2, flat=False)
    assert codes.dtype == np.uint8 and codes.shape == (eda_ui.SCATTER_SIZE[1], eda_ui.SCATTER_SIZE[0])
    fraud_pixels = (codes == eda_ui.FRAUD_CODE).sum()
    # 200 frauds: each lands on a fraud pixel (some share one), even where clear transactions are dense.
    assert 100 <= fraud_pixels <= 200
    assert ((codes >= 1) & (codes <= eda_ui.CLEAR_SHADES)).sum() > 1000
    with pytest.raises(ValueError, match="two different columns"):
        scatter_plot(frame, "amount", "amount")


def test_encode_classes_codes() -> None:
    clear = np.zeros((6, 8), dtype="uint32")
    clear[1, 1], clear[1, 2], clear[4, 6] = 1, 50, 5
    fraud = np.zeros((6, 8), dtype="uint32")
    fraud[1, 2] = 1
    xs, ys = np.arange(8) + 0.5, np.arange(6) + 0.5
    stack = hv.ImageStack((xs, ys, np.dstack([clear, fraud])), kdims=["x", "y"], vdims=["clear", "fraud"])
    codes = encode_classes(stack, spread_px=1).dimension_values(2, flat=False)
    assert codes[1, 2] == eda_ui.FRAUD_CODE                      # the fraud wins over the dense clear pixel
    assert codes[0, 1] == codes[2, 3] == eda_ui.FRAUD_HALO_CODE   # grown by one pixel
    assert codes[5, 0] == 0                                       # empty stays transparent
    assert 1 <= codes[4, 6] <= eda_ui.CLEAR_SHADES
    palette = eda_ui.class_raster_palette()
    assert len(palette) == 256 and palette[0].endswith("00") and palette[255] == eda_ui.FRAUD_COLOR


def test_widgets_are_per_instance(state: AppState) -> None:
    a, b = EDASection(state=state), EDASection(state=state)
    assert a.charts["distribution"] is not b.charts["distribution"]
    a.feature = "feature5"
    assert b.feature == b.summary.top_features[0] != "feature5"
    assert a._describe is not b._describe


def test_standalone_section_loads_the_data_itself() -> None:
    section = EDASection()
    assert section.state.dataset is not None and section.summary is not None


def test_a_failing_summary_is_shown(state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(frame):
        raise RuntimeError("disk full")

    monkeypatch.setattr(eda_ui.eda, "get_summary", broken)
    shown: list[str] = []

    class Notifications:
        def error(self, message: str, duration: int = 0) -> None:
            shown.append(message)

    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: Notifications()))
    section = EDASection(state=state)
    assert section.summary is None
    assert "disk full" in section.header_html() and "could not be computed" in section.header_html()
    assert shown == ["Could not compute the EDA: disk full"]
    assert all(chart.item is None for chart in section.charts.values())


def test_section_renders_to_bokeh(state: AppState) -> None:
    section = EDASection(state=state)
    root = section.__panel__().get_root()
    from bokeh.models import Plot
    assert not list(root.select({"type": Plot}))  # the charts travel as items, built by BokehJS in the browser
    items = [model.data.item for model in root.references() if hasattr(model, "data") and hasattr(model.data, "item")]
    assert len([item for item in items if '"name":"Figure"' in item.replace(" ", "")]) >= 9
