"""The Exploratory Data Analysis tab.

Every number comes from the process-wide cached :class:`fraud_app.eda.EDASummary`;
a session only turns it into HoloViews objects. The one chart that needs the rows
themselves, the 2-D scatter, is rasterised by datashader on the server, so the
browser receives an image rather than 284,807 points.
"""

from __future__ import annotations

import logging
from typing import Any

import datashader as ds
import holoviews as hv
import hvplot.pandas  # noqa: F401  (registers .hvplot on pandas objects)
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter
from holoviews.operation.datashader import rasterize

from fraud_app import eda
from fraud_app.data.schema import TARGET
from fraud_app.eda import CLASSES, EDA_COLUMNS, EDASummary, FeatureHistogram
from fraud_app.eda.stats import DESCRIBE_STATS
from fraud_app.ui.base import Section, busy, notify_error, register_section
from fraud_app.ui.theme import CLASS_COLORS, CLEAR_COLOR, FRAUD_COLOR

log = logging.getLogger(__name__)

CORRELATION_SUBSETS = {"All transactions": "all", "Clear only": "clear", "Fraud only": "fraud"}
RANKING_METRICS = {"KS statistic": "ks", "Mutual information (bits)": "mutual_info"}
#: Pixels of the scatter's raster (fixed, so the image size does not grow with the screen's pixel ratio).
SCATTER_SIZE = (560, 380)
PLOT_HEIGHT = 320
_SIZE = {"responsive": True, "height": PLOT_HEIGHT - 10}


@register_section
class EDASection(Section):
    """Explore the transactions: overview, distributions, correlations, class separation.

    Widgets are built per instance from the parameters below; each chart pane is
    updated by an ``_update_*`` watcher from the cached summary.
    """

    title = "Exploratory Data Analysis"
    icon = "▦"
    order = 10

    feature = param.Selector(
        default="amount", objects=EDA_COLUMNS,
        doc="Column whose per-class distribution is shown.",
    )
    log_amount = param.Boolean(
        default=True, doc="Show amount on a log10(1 + amount) axis (applies when the feature is amount).",
    )
    correlation_subset = param.Selector(
        default="all", objects=CORRELATION_SUBSETS,
        doc="Transactions the correlation heatmap is computed on: all, clear only, or fraud only.",
    )
    ranking_metric = param.Selector(
        default="ks", objects=RANKING_METRICS,
        doc="Measure of class separation the feature ranking is sorted by.",
    )
    scatter_x = param.Selector(default="feature14", objects=EDA_COLUMNS, doc="Horizontal axis of the scatter.")
    scatter_y = param.Selector(default="feature17", objects=EDA_COLUMNS, doc="Vertical axis of the scatter.")
    summary = param.ClassSelector(
        class_=EDASummary, default=None, allow_None=True, constant=True,
        doc="The process-wide cached EDA summary of the session's data set (None until loaded).",
    )

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._feature_select = pn.widgets.Select.from_param(self.param.feature, name="Feature", width=200)
        self._log_toggle = pn.widgets.Checkbox.from_param(
            self.param.log_amount, name="log10(1 + amount)", align="end", margin=(5, 10, 12, 10))
        self._subset_buttons = pn.widgets.RadioButtonGroup.from_param(
            self.param.correlation_subset, name="Transactions", color="primary", variant="outline")
        self._metric_buttons = pn.widgets.RadioButtonGroup.from_param(
            self.param.ranking_metric, name="Metric", color="primary", variant="outline")
        self._x_select = pn.widgets.Select.from_param(self.param.scatter_x, name="x", width=160)
        self._y_select = pn.widgets.Select.from_param(self.param.scatter_y, name="y", width=160)

        self._indicators = pn.FlexBox(sizing_mode="stretch_width")
        self._describe = pn.widgets.Tabulator(
            _empty_describe(),
            formatters={stat: NumberFormatter(format="0,0.000") for stat in DESCRIBE_STATS if stat != "count"},
            header_filters={column: {"type": "input", "placeholder": "filter"} for column in ("feature", "class")},
            disabled=True, show_index=False, pagination="local", page_size=10, layout="fit_data_table",
            theme="midnight" if pn.config.theme == "dark" else "default", sizing_mode="stretch_width",
        )
        self._balance = self._plot_pane()
        self._distribution = self._plot_pane()
        self._correlation = self._plot_pane(height=520)
        self._correlation_note = pn.pane.Markdown(sizing_mode="stretch_width", margin=(0, 10))
        self._ranking = self._plot_pane(height=520)
        self._top3 = pn.pane.Markdown(sizing_mode="stretch_width")
        self._amount = self._plot_pane()
        self._buckets = self._plot_pane()
        self._hourly_counts = self._plot_pane()
        self._hourly_rate = self._plot_pane()
        self._scatter = pn.pane.HoloViews(
            None, height=SCATTER_SIZE[1] + 70, width=SCATTER_SIZE[0] + 90, linked_axes=False)
        self._scatter_note = pn.pane.Markdown(sizing_mode="stretch_width")
        self._insights = pn.pane.Markdown(sizing_mode="stretch_width")
        self._status = pn.pane.Markdown("Loading the data set…", sizing_mode="stretch_width")

        self._layout = pn.Column(
            self._status,
            self._card("Overview", self._indicators, self._describe),
            self._card("Insights", self._insights),
            pn.Row(
                self._card("Class balance", self._balance),
                self._card("Distribution by class",
                           pn.Row(self._feature_select, self._log_toggle), self._distribution),
            ),
            pn.Row(
                self._card("Correlations", self._subset_buttons, self._correlation_note, self._correlation),
                self._card("Feature ranking by class separation", self._metric_buttons, self._top3,
                           self._ranking),
            ),
            pn.Row(
                self._card("Amount", self._amount, self._buckets),
                self._card("Hour of day", self._hourly_counts, self._hourly_rate),
            ),
            self._card("All transactions, two features at a time",
                       pn.Row(self._x_select, self._y_select), self._scatter_note, self._scatter),
            sizing_mode="stretch_width",
            css_classes=["eda-section"],
        )
        if self.state.dataset is not None:
            self._on_dataset()
        else:
            self._load_if_standalone()

    # ------------------------------------------------------------------ layout helpers

    @staticmethod
    def _plot_pane(height: int = PLOT_HEIGHT) -> pn.pane.HoloViews:
        return pn.pane.HoloViews(None, height=height, sizing_mode="stretch_width", linked_axes=False)

    @staticmethod
    def _card(title: str, *objects: Any) -> pn.Card:
        return pn.Card(*objects, title=title, collapsible=False, sizing_mode="stretch_width",
                       margin=(5, 5))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # ------------------------------------------------------------------ loading

    @param.depends("state.dataset", "state.dataset_error", watch=True)
    def _on_dataset(self) -> None:
        frame = self.state.dataset
        if frame is None:
            if self.state.dataset_error:
                self._status.object = f"**The data set could not be loaded:** {self.state.dataset_error}"
            return
        with busy(self._layout):
            try:
                summary = eda.get_summary(frame)
            except Exception as exc:
                self._status.object = f"**The EDA could not be computed:** {exc}"
                notify_error("Could not compute the EDA", exc)
                return
            if summary is self.summary:
                return
            top = summary.top_features
            # Start on the most telling views: the best-separating features.
            self.param.update(feature=top[0], scatter_x=top[0], scatter_y=top[1])
            with param.edit_constant(self):
                self.summary = summary
        log.debug("EDA tab built from summary %s", summary.fingerprint)
        self._status.object = ""
        self._status.visible = False

    # ------------------------------------------------------------------ chart updates

    @param.depends("summary", watch=True)
    def _update_static(self) -> None:
        """The charts that depend on the summary only."""
        s = self.summary
        if s is None:
            return
        self._indicators[:] = _overview_indicators(s.overview)
        self._describe.value = s.describe
        self._balance.object = class_balance_plot(s)
        amount = s.log_histograms["amount"]
        self._amount.object = histogram_overlay(amount, f"Amount by class, {amount.label}")
        self._buckets.object = amount_bucket_plot(s)
        self._hourly_counts.object, self._hourly_rate.object = hourly_plots(s)
        self._insights.object = "\n".join(f"- {note}" for note in s.insights)

    @param.depends("summary", "feature", "log_amount", watch=True)
    def _update_distribution(self) -> None:
        self._log_toggle.disabled = self.feature != "amount"
        if self.summary is None:
            return
        self._distribution.object = distribution_plot(self.summary, self.feature, self.log_amount)

    @param.depends("summary", "correlation_subset", watch=True)
    def _update_correlation(self) -> None:
        if self.summary is None:
            return
        self._correlation.object = correlation_plot(self.summary, self.correlation_subset)
        pair, r = eda.strongest_pair(self.summary.correlations[self.correlation_subset])
        self._correlation_note.object = "" if pair is None else (
            f"Strongest pair: `{pair[0]}`–`{pair[1]}`, r = {r:+.2f}. The PCA components are uncorrelated "
            "over all transactions by construction; within a class they need not be."
        )

    @param.depends("summary", "ranking_metric", watch=True)
    def _update_ranking(self) -> None:
        if self.summary is None:
            return
        self._ranking.object = ranking_plot(self.summary, self.ranking_metric)
        top = self.summary.ranking.head(3)
        self._top3.object = "**Top 3 (KS):** " + " · ".join(
            f"**{i}. `{row.feature}`** KS {row.ks:.2f}, MI {row.mutual_info:.3f} bits"
            for i, row in enumerate(top.itertuples(), start=1)
        )

    @param.depends("summary", "scatter_x", "scatter_y", watch=True)
    def _update_scatter(self) -> None:
        if self.summary is None or self.state.dataset is None:
            return
        if self.scatter_x == self.scatter_y:
            self._scatter_note.object = "Pick two different features."
            return
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            # In a served page, draw the scatter on the next tick: the other charts reach the
            # browser first (the first datashader call of a process also compiles its kernels).
            pn.state.execute(self._draw_scatter, schedule=True)
        else:
            self._draw_scatter()

    def _draw_scatter(self) -> None:
        frame = self.state.dataset
        with busy(self._scatter):
            try:
                self._scatter.object = scatter_plot(frame, self.scatter_x, self.scatter_y)
            except Exception as exc:
                notify_error("Could not draw the scatter", exc)
                return
        self._scatter_note.object = (
            f"All {len(frame):,} transactions, rasterised by datashader on the server. "
            f"<span style='color:{CLEAR_COLOR}'>■</span> clear (darker = denser) · "
            f"<span style='color:{FRAUD_COLOR}'>■</span> fraud (spread so that every fraud stays visible). "
            "Zoom to re-rasterise."
        )


# ---------------------------------------------------------------------- chart builders (no pandas work)


def _empty_describe() -> pd.DataFrame:
    """The describe table's columns and dtypes, without rows (the table's columns never change)."""
    columns = {"feature": pd.Series(dtype="str"), "class": pd.Series(dtype="str"),
               "count": pd.Series(dtype="int64")}
    columns.update({stat: pd.Series(dtype="float64") for stat in DESCRIBE_STATS if stat != "count"})
    return pd.DataFrame(columns)


def _overview_indicators(ov: dict) -> list[pn.indicators.Number]:
    style = {"font_size": "28pt", "title_size": "11pt", "width": 190, "margin": (0, 10)}
    return [
        pn.indicators.Number(name="Transactions", value=ov["rows"], format="{value:,.0f}", **style),
        pn.indicators.Number(name="Frauds", value=ov["frauds"], format="{value:,.0f}",
                             default_color=FRAUD_COLOR, **style),
        pn.indicators.Number(name="Fraud rate", value=100 * ov["fraud_rate"], format="{value:.3f} %", **style),
        pn.indicators.Number(name="Time span", value=ov["time_span_hours"], format="{value:.1f} h", **style),
        pn.indicators.Number(name="Memory", value=ov["memory_mb"], format="{value:.1f} MB", **style),
    ]


def class_balance_plot(summary: EDASummary) -> hv.Overlay:
    """Bars of the transactions per class, labelled with count and share."""
    balance = summary.balance.assign(label=[f"{c:,}\n({s:.3%})" for c, s in
                                            zip(summary.balance["count"], summary.balance["share"], strict=True)])
    bars = balance.hvplot.bar(
        x="class", y="count", color="class", cmap=CLASS_COLORS, hover_cols=["share"],
        title="Transactions per class", xlabel="", ylabel="transactions", legend=False,
        ylim=(0, summary.overview["rows"] * 1.2), yformatter="%.0f", **_SIZE,
    )
    labels = hv.Labels(balance, kdims=["class", "count"], vdims=["label"]).opts(
        text_baseline="bottom", text_font_size="10pt")
    return bars * labels


def histogram_overlay(hist: FeatureHistogram, title: str) -> hv.Overlay:
    """Overlaid, density-normalised per-class histograms on their shared bins."""
    dim = hv.Dimension(hist.column if hist.label == hist.column else "log_" + hist.column, label=hist.label)
    layers = [
        hv.Histogram((hist.edges, density), kdims=[dim], vdims=[hv.Dimension("density")], label=name).opts(
            color=CLASS_COLORS[name], fill_alpha=0.45, line_alpha=0.8, line_color=CLASS_COLORS[name])
        for name, density in (("clear", hist.clear_density), ("fraud", hist.fraud_density))
    ]
    return hv.Overlay(layers).opts(title=title, legend_position="top_right", **_SIZE,
                                   tools=["hover"], show_grid=True)


def distribution_plot(summary: EDASummary, feature: str, log_amount: bool) -> hv.Overlay:
    """The distribution of one column by class (log10(1 + amount) when asked for amount)."""
    if feature == "amount" and log_amount:
        hist = summary.log_histograms["amount"]
    else:
        hist = summary.histograms[feature]
    return histogram_overlay(hist, f"Distribution of {hist.label} by class")


def correlation_plot(summary: EDASummary, subset: str) -> hv.HeatMap:
    """Heatmap of the Pearson correlations of the model inputs."""
    names = {v: k for k, v in CORRELATION_SUBSETS.items()}
    # The diagonal (always 1) is blanked so that the colour scale shows the pairs.
    values = summary.correlations[subset].to_numpy().copy()
    np.fill_diagonal(values, np.nan)
    matrix = pd.DataFrame(values, index=summary.correlations[subset].index,
                          columns=summary.correlations[subset].columns)
    return matrix.hvplot.heatmap(
        cmap="RdBu_r", clim=(-1, 1), rot=90, title=f"Correlations: {names[subset].lower()}",
        xlabel="", ylabel="", responsive=True, height=500,
    ).opts(tools=["hover"], colorbar=True, fontsize={"xticks": 7, "yticks": 7})


def ranking_plot(summary: EDASummary, metric: str) -> hv.Element:
    """Bars of every model input's class separation, the top three highlighted."""
    names = {v: k for k, v in RANKING_METRICS.items()}
    ranking = summary.ranking.sort_values(metric, ascending=True)
    top = set(summary.ranking.sort_values(metric, ascending=False)["feature"].head(3))
    ranking = ranking.assign(group=np.where(ranking["feature"].isin(top), "top 3", "other"))
    return ranking.hvplot.barh(
        x="feature", y=metric, color="group", cmap={"top 3": FRAUD_COLOR, "other": CLEAR_COLOR},
        hover_cols=["ks", "mutual_info", "rank"], legend="bottom_right",
        title=f"Class separation: {names[metric]}", xlabel="", ylabel=names[metric],
        responsive=True, height=500,
    ).opts(fontsize={"yticks": 7})


def amount_bucket_plot(summary: EDASummary) -> hv.Overlay:
    """Fraud rate per amount bucket, against the overall rate."""
    buckets = summary.amount_buckets.assign(fraud_rate_pct=lambda d: 100 * d["fraud_rate"].fillna(0))
    overall = 100 * summary.overview["fraud_rate"]
    bars = buckets.hvplot.bar(
        x="bucket", y="fraud_rate_pct", hover_cols=["transactions", "frauds"], color=FRAUD_COLOR,
        title="Fraud rate by amount bucket", xlabel="amount", ylabel="fraud rate (%)", rot=30, **_SIZE,
    )
    line = hv.HLine(overall).opts(color="grey", line_dash="dashed", line_width=1.5)
    return (bars * line).opts(responsive=True)


def hourly_plots(summary: EDASummary) -> tuple[hv.Element, hv.Element]:
    """Transactions per hour of the day (stacked by class), and the fraud rate per hour."""
    hourly = summary.hourly.assign(
        clear=lambda d: d["transactions"] - d["frauds"],
        fraud_rate_pct=lambda d: 100 * d["fraud_rate"].fillna(0),
    )
    counts = hourly.hvplot.bar(
        x="hour", y="transactions", color=CLEAR_COLOR, hover_cols=["frauds"],
        title="Transactions by hour of day", xlabel="hour (since the first transaction, mod 24)",
        ylabel="transactions", **_SIZE,
    )
    overall = 100 * summary.overview["fraud_rate"]
    rate = (
        hourly.hvplot.line(x="hour", y="fraud_rate_pct", color=FRAUD_COLOR, line_width=2,
                           hover_cols=["frauds", "transactions"], title="Fraud rate by hour of day",
                           xlabel="hour", ylabel="fraud rate (%)", **_SIZE)
        * hourly.hvplot.scatter(x="hour", y="fraud_rate_pct", color=FRAUD_COLOR, size=30, **_SIZE)
        * hv.HLine(overall).opts(color="grey", line_dash="dashed", line_width=1.5)
    ).opts(responsive=True)
    return counts, rate


def class_raster_palette() -> list[str]:
    """256 colours indexed by :func:`encode_classes`' codes: transparent, clear shades, fraud reds."""
    light, dark = np.array([198, 219, 239]), np.array([8, 48, 107])
    shades = [light + (dark - light) * i / (CLEAR_SHADES - 1) for i in range(CLEAR_SHADES)]
    palette = ["#ffffff00"] + ["#{:02x}{:02x}{:02x}".format(*np.round(c).astype(int)) for c in shades]
    palette += [palette[-1]] * (254 - len(palette))
    return [*palette, "#ff6b6b", FRAUD_COLOR]


CLEAR_SHADES = 200
FRAUD_HALO_CODE, FRAUD_CODE = 254, 255


def encode_classes(element: hv.ImageStack, spread_px: int = 2) -> hv.Image:
    """Turn per-class count rasters into one image of colour codes (one byte per pixel).

    Code 0 is empty; 1-200 are clear transactions, histogram-equalised over the
    filled pixels (darker = denser); 254/255 mark fraud pixels, grown by ``spread_px``
    so that every fraud stays visible even where clear transactions are dense.
    """
    clear = element.dimension_values("clear", flat=False)
    fraud = element.dimension_values("fraud", flat=False) > 0
    codes = np.zeros(clear.shape, dtype="uint8")
    filled = clear > 0
    if filled.any():
        values = clear[filled]
        ranks = np.searchsorted(np.sort(values), values, side="right") / len(values)
        codes[filled] = 1 + np.minimum((ranks * CLEAR_SHADES).astype("int64"), CLEAR_SHADES - 1)
    halo = _grow(fraud, spread_px)
    codes[halo] = FRAUD_HALO_CODE
    codes[fraud] = FRAUD_CODE
    xs = element.dimension_values(0, expanded=False)
    ys = element.dimension_values(1, expanded=False)
    return hv.Image((xs, ys, codes), kdims=element.kdims, vdims=[hv.Dimension("code", range=(0, 255))])


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    """Dilate a boolean raster by ``px`` pixels (a square neighbourhood)."""
    if px <= 0 or not mask.any():
        return mask.copy()
    padded = np.pad(mask, px)
    grown = np.zeros_like(mask)
    rows, cols = mask.shape
    for dy in range(2 * px + 1):
        for dx in range(2 * px + 1):
            grown |= padded[dy:dy + rows, dx:dx + cols]
    return grown


def scatter_plot(frame: pd.DataFrame, x: str, y: str) -> hv.DynamicMap:
    """All rows of two columns, rasterised by datashader and coloured by class.

    Datashader counts the clear and the fraudulent transactions per pixel in one
    pass (``ds.by``) at the current zoom; :func:`encode_classes` turns the two count
    layers into one byte per pixel, so the browser receives a small indexed image
    rather than 284,807 points (or a four-byte RGBA image).
    """
    if x == y:
        raise ValueError("the scatter needs two different columns")
    codes = frame[TARGET].to_numpy().astype("int8")
    points = hv.Points(
        pd.DataFrame({x: frame[x].to_numpy(), y: frame[y].to_numpy(),
                      "class": pd.Categorical.from_codes(codes, categories=list(CLASSES))}),
        kdims=[x, y], vdims=["class"],
    )
    width, height = SCATTER_SIZE
    raster = rasterize(points, aggregator=ds.by("class", ds.count()), width=width, height=height,
                       pixel_ratio=1, x_range=_padded_range(points.dimension_values(0)),
                       y_range=_padded_range(points.dimension_values(1)))
    return raster.apply(encode_classes).opts(
        hv.opts.Image(cmap=class_raster_palette(), clim=(0, 255), colorbar=False,
                      width=width + 80, height=height + 60, title=f"{y} against {x}", xlabel=x, ylabel=y,
                      default_tools=["pan", "wheel_zoom", "box_zoom", "reset"], tools=[],
                      active_tools=["wheel_zoom"]))


def _padded_range(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * 0.02 or 0.5
    return low - pad, high + pad


__all__ = [
    "EDASection", "amount_bucket_plot", "class_balance_plot", "correlation_plot", "distribution_plot",
    "histogram_overlay", "hourly_plots", "ranking_plot", "scatter_plot",
]
