"""The EDA tab without a browser: built from the cached summary, reactive, per instance."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from fraud_app import eda
from fraud_app.eda import cache as eda_cache
from fraud_app.ui import eda as eda_ui
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


def _title(pane: pn.pane.HoloViews) -> str:
    return pane.object.opts.get().kwargs.get("title", "")


def test_section_builds_every_chart_from_the_summary(state: AppState) -> None:
    section = EDASection(state=state)
    summary = section.summary
    assert summary is eda.get_summary(state.dataset)
    for pane in (section._balance, section._distribution, section._correlation, section._ranking,
                 section._amount, section._buckets, section._hourly_counts, section._hourly_rate,
                 section._scatter):
        assert pane.object is not None
    assert len(section._indicators) == 5 and section._indicators[0].value == 20_000
    assert section._describe.value is summary.describe
    assert "200 of 20,000" in section._insights.object
    # It opens on the best-separating features.
    top = summary.top_features
    assert (section.feature, section.scatter_x, section.scatter_y) == (top[0], top[0], top[1])
    assert _title(section._distribution) == f"Distribution of {top[0]} by class"
    assert top[0] in section._top3.object and top[2] in section._top3.object
    assert section.__panel__().loading is False


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
    assert second._distribution.object is not None


def test_picking_a_feature_updates_the_distribution(state: AppState) -> None:
    section = EDASection(state=state)
    section.feature = "feature2"
    assert _title(section._distribution) == "Distribution of feature2 by class"
    hist = section._distribution.object.Histogram.Clear
    np.testing.assert_allclose(hist.dimension_values(1), section.summary.histograms["feature2"].clear_density)
    assert section._log_toggle.disabled is True
    # The widget drives the parameter.
    section._feature_select.value = "feature7"
    assert _title(section._distribution) == "Distribution of feature7 by class"


def test_log_option_for_amount(state: AppState) -> None:
    section = EDASection(state=state)
    section.param.update(feature="amount", log_amount=True)
    assert section._log_toggle.disabled is False
    assert _title(section._distribution) == "Distribution of log10(1 + amount) by class"
    section.log_amount = False
    assert _title(section._distribution) == "Distribution of amount by class"


def test_correlation_subset_and_ranking_metric(state: AppState) -> None:
    section = EDASection(state=state)
    section.correlation_subset = "fraud"
    assert _title(section._correlation) == "Correlations: fraud only"
    assert "Strongest pair" in section._correlation_note.object
    heat = section._correlation.object
    assert len(heat) == 29 * 29
    section.ranking_metric = "mutual_info"
    assert _title(section._ranking) == "Class separation: Mutual information (bits)"
    best_mi = section.summary.ranking.sort_values("mutual_info").iloc[-1]["feature"]
    bars = section._ranking.object
    top = bars.dframe()
    assert set(top.loc[top["group"] == "top 3", "feature"]) >= {best_mi}


def test_scatter_axes_follow_the_selectors(state: AppState) -> None:
    section = EDASection(state=state)
    section.param.update(scatter_x="feature1", scatter_y="amount")
    element = section._scatter.object[()]
    assert isinstance(element, hv.Image)
    assert [d.name for d in element.kdims] == ["feature1", "amount"]
    section.scatter_y = "feature1"
    assert "two different features" in section._scatter_note.object


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
    assert a._feature_select is not b._feature_select
    a._feature_select.value = "feature5"
    assert b.feature == b.summary.top_features[0] != "feature5"
    assert a._describe is not b._describe


def test_standalone_section_loads_the_data_itself() -> None:
    section = EDASection()
    assert section.state.dataset is not None and section.summary is not None


def test_a_failing_summary_is_shown_and_resets_busy(state: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
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
    assert "disk full" in section._status.object
    assert shown == ["Could not compute the EDA: disk full"]
    assert section.__panel__().loading is False


def test_section_renders_to_bokeh(state: AppState) -> None:
    section = EDASection(state=state)
    root = section.__panel__().get_root()
    from bokeh.models import Plot
    plots = list(root.select({"type": Plot}))
    assert len(plots) >= 9
