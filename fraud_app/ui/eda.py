"""The Exploratory Data Analysis tab.

Every number comes from the process-wide cached :class:`fraud_app.eda.EDASummary`;
a session only turns it into HoloViews objects. The one chart that needs the rows
themselves, the 2-D scatter, is rasterised by datashader on the server, so the
browser receives an image rather than 284,807 points.
"""

from __future__ import annotations

import html
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
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
from fraud_app.eda import lazy as lazy_eda
from fraud_app.eda import lazy_scatter
from fraud_app.eda.lazy_scatter import lazy_scatter_counts
from fraud_app.eda.stats import DESCRIBE_STATS
from fraud_app.data import DatasetInfo
from fraud_app.data.fetch import EXPECTED_FRAUDS, EXPECTED_ROWS
from fraud_app.ui.base import Section, card, notify_error, register_section
from fraud_app.ui.charts import ChartSpec, OffloopChart, in_server_session, run_off_loop
from fraud_app.ui.theme import CLASS_COLORS, CLEAR_COLOR, FRAUD_COLOR, stylesheet

log = logging.getLogger(__name__)

CORRELATION_SUBSETS = {"All transactions": "all", "Clear only": "clear", "Fraud only": "fraud"}
RANKING_METRICS = {"KS statistic": "ks", "Mutual information (bits)": "mutual_info"}
#: Pixels of the scatter's raster (fixed, so the image size does not grow with the screen's pixel ratio).
SCATTER_SIZE = (560, 380)
PLOT_HEIGHT = 320
_SIZE = {"responsive": True, "height": PLOT_HEIGHT - 10}
#: One thread counts a lazy set's scatter pixels on the Dask cluster (a pass over every row), apart from the
#: chart worker, so other sessions' charts are not queued behind it.
_DASK_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fds-dask-scatter")


@register_section
class EDASection(Section):
    """Explore the transactions: overview, distributions, correlations, class separation.

    The section holds the choices (feature, subset, metric, scatter axes) and one
    output, the process-wide cached :class:`~fraud_app.eda.EDASummary`. Each chart is
    a :class:`~fraud_app.ui.charts.ChartSpec` computed from those Parameters
    (``*_spec`` methods) and drawn by an :class:`~fraud_app.ui.charts.OffloopChart`
    bound to it, off the event loop; text outputs are bound the same way. Nothing is
    pushed into widgets by hand.
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
    interactive_scatter = param.Boolean(
        default=False,
        doc="Re-rasterise the scatter on the server at every zoom (otherwise one image of all rows).",
    )
    summary = param.ClassSelector(
        class_=EDASummary, default=None, allow_None=True, constant=True,
        doc="The process-wide cached EDA summary of the session's data set (None until loaded).",
    )
    summary_error = param.String(default=None, allow_None=True, constant=True,
                                 doc="Why the summary could not be computed (None when it was, or before).")
    lazy_scatter_ready = param.Tuple(
        default=None, allow_None=True, length=2, constant=True,
        doc="A lazy data set's scatter axes (x, y) whose pixel counts are in memory: the scatter waits for them "
            "(counted on the cluster in their own thread, so the chart worker stays free for other charts).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.charts: dict[str, OffloopChart] = {}
        """The static charts built so far, by name (each an :class:`OffloopChart` bound to its ``*_spec``)."""
        self._describe: pn.widgets.Tabulator | None = None
        self._interactive = pn.Column(sizing_mode="stretch_width")
        # The first paint is one HTML pane (what the data is, the headline numbers); the cards
        # follow in one step once built off the loop, and each chart is drawn off the loop.
        self._layout = pn.Column(
            pn.pane.HTML(self.header_html, sizing_mode="stretch_width", css_classes=["eda-header"],
                         stylesheets=[stylesheet("eda")]),
            sizing_mode="stretch_width", css_classes=["eda-section"],
        )
        self._pending = [self._insights_card, self._distribution_row, self._correlation_row,
                         self._amount_hour_row, self._scatter_card, self._statistics_card]
        if self.state.data is not None:
            self._on_dataset()
        else:
            self._load_if_standalone()
        if in_server_session():
            pn.state.onload(self._build_next)
        else:
            self._build_next()  # outside a server every card is built at once

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # ------------------------------------------------------------------ progressive layout

    def _build_next(self) -> None:
        """Add the cards to the page: built in the worker thread, attached on the loop in one step.

        One step, not one card per tick: BokehJS builds a layout's new child views asynchronously
        (the charts' ES modules load first), and a second change to the same column while it does
        left a removed copy of the feature ``Select`` listening to its model, which swallowed the
        next pick (measured with the browser test; see docs/architecture.md).
        """
        if not self._pending:
            return
        builders, self._pending = self._pending, []
        started = time.perf_counter()

        def build() -> list[pn.viewable.Viewable]:
            return [builder() for builder in builders]

        def attach(cards: list[pn.viewable.Viewable]) -> None:
            attach_started = time.perf_counter()
            self._layout.extend(cards)
            log.debug("EDA: cards added in %.1f ms (%d cards built off the loop in %.1f ms)",
                      1000 * (time.perf_counter() - attach_started), len(cards), 1000 * (attach_started - started))

        run_off_loop(build, attach)

    def _chart(self, name: str, spec: Any, title: str, height: int = PLOT_HEIGHT) -> OffloopChart:
        self.charts[name] = OffloopChart(spec=spec, title=title, height=height)
        return self.charts[name]

    def _insights_card(self) -> pn.viewable.Viewable:
        return card("Insights", pn.pane.Markdown(self.insights_text, sizing_mode="stretch_width"))

    def _distribution_row(self) -> pn.viewable.Viewable:
        feature = pn.widgets.Select.from_param(self.param.feature, name="Feature", width=200)
        log_box = pn.widgets.Checkbox.from_param(
            self.param.log_amount, name="log10(1 + amount)", align="end", margin=(5, 10, 12, 10),
            visible=self.param.feature.rx() == "amount")
        return pn.Row(
            card("Class balance", self._chart("balance", self.balance_spec, "class balance")),
            card("Distribution by class", pn.Row(feature, log_box),
                 self._chart("distribution", self.distribution_spec, "distribution")),
            sizing_mode="stretch_width",
        )

    def _correlation_row(self) -> pn.viewable.Viewable:
        subset = pn.widgets.RadioButtonGroup.from_param(
            self.param.correlation_subset, name="Transactions", color="primary", variant="outline")
        metric = pn.widgets.RadioButtonGroup.from_param(
            self.param.ranking_metric, name="Metric", color="primary", variant="outline")
        return pn.Row(
            card("Correlations", subset,
                 pn.pane.Markdown(self.correlation_text, sizing_mode="stretch_width", margin=(0, 10)),
                 self._chart("correlation", self.correlation_spec, "correlation heatmap", 520)),
            card("Feature ranking by class separation", metric,
                 pn.pane.Markdown(self.top3_text, sizing_mode="stretch_width"),
                 self._chart("ranking", self.ranking_spec, "feature ranking", 520)),
            sizing_mode="stretch_width",
        )

    def _amount_hour_row(self) -> pn.viewable.Viewable:
        return pn.Row(
            card("Amount (euros)", self._chart("amount", self.amount_spec, "amount histogram"),
                 self._chart("buckets", self.buckets_spec, "fraud rate by amount")),
            card("Hour of day (hours since the first transaction)",
                 self._chart("hourly_counts", self.hourly_counts_spec, "transactions by hour"),
                 self._chart("hourly_rate", self.hourly_rate_spec, "fraud rate by hour")),
            sizing_mode="stretch_width",
        )

    def _scatter_card(self) -> pn.viewable.Viewable:
        self._interactive.objects = [
            self._chart("scatter", self.scatter_spec, "scatter of all transactions", SCATTER_SIZE[1] + 70)]
        x = pn.widgets.Select.from_param(self.param.scatter_x, name="x", width=160)
        y = pn.widgets.Select.from_param(self.param.scatter_y, name="y", width=160)
        # On a lazy set each zoom would be a pass over every row on the cluster: one image, computed once.
        zoom = pn.widgets.Checkbox.from_param(self.param.interactive_scatter, name="Re-rasterise on zoom",
                                              align="end", margin=(5, 10, 12, 10),
                                              visible=self.state.param.lazy_dataset.rx.is_(None))
        return card("All transactions, two features at a time", pn.Row(x, y, zoom),
                    pn.pane.Markdown(self.scatter_text, sizing_mode="stretch_width"),
                    self._interactive)

    def _statistics_card(self) -> pn.viewable.Viewable:
        self._describe = pn.widgets.Tabulator(
            self.summary.describe if self.summary is not None else _empty_describe(),
            formatters={stat: NumberFormatter(format="0,0.000") for stat in DESCRIBE_STATS if stat != "count"},
            header_filters={column: {"type": "input", "placeholder": "filter"} for column in ("feature", "class")},
            disabled=True, show_index=False, pagination="local", page_size=10, layout="fit_columns",
            height=380, theme="midnight" if pn.config.theme == "dark" else "default",
            sizing_mode="stretch_width", css_classes=["eda-describe"],
        )
        return card("Statistics by class", self._describe)

    # ------------------------------------------------------------------ loading

    @param.depends("state.dataset", "state.lazy_dataset", watch=True)
    def _on_dataset(self) -> None:
        data = self.state.data
        if data is None:
            return
        try:
            # In the app both are in memory already (prepared off the loop): this only looks them up.
            summary = eda.get_summary(data) if self.state.lazy_dataset is None else lazy_eda.get_lazy_summary(data)
        except Exception as exc:
            with param.edit_constant(self):
                self.summary_error = str(exc)
            notify_error("Could not compute the EDA", exc)
            return
        if summary is self.summary:
            return
        top = summary.top_features
        # Start on the most telling views: the best-separating features.
        with param.parameterized.batch_call_watchers(self):
            self.param.update(feature=top[0], scatter_x=top[0], scatter_y=top[1])
            with param.edit_constant(self):
                self.summary = summary
        if self._describe is not None:
            self._describe.value = summary.describe
        log.debug("EDA tab built from summary %s", summary.fingerprint)

    # ------------------------------------------------------------------ text outputs

    @param.depends("state.dataset_info", "state.dataset_error", "summary", "summary_error")
    def header_html(self) -> str:
        """What the data set is and its headline numbers, as one HTML block (cheap to send)."""
        status = ""
        if self.summary is None:
            if self.state.dataset_error:
                status = (f"<p class='status error'><b>The data set could not be loaded:</b> "
                          f"{html.escape(self.state.dataset_error)}</p>")
            elif self.summary_error:
                status = (f"<p class='status error'><b>The EDA could not be computed:</b> "
                          f"{html.escape(self.summary_error)}</p>")
            else:
                status = "<p class='status'>Loading the data set and its summary…</p>"
        about = markdown_to_html(describe_dataset(self.state.dataset_info))
        numbers = "" if self.summary is None else "".join(
            f"<div class='number{' fraud' if fraud else ''}'><div class='value'>{value}</div>"
            f"<div class='name'>{name}</div></div>" for name, value, fraud in overview_numbers(self.summary))
        return f"{status}<div class='about'>{about}</div><div class='numbers'>{numbers}</div>"

    @param.depends("summary")
    def insights_text(self) -> str:
        """Findings computed from the summary (Markdown bullets)."""
        if self.summary is None:
            return "Insights appear once the summary is ready."
        return "\n".join(f"- {note}" for note in self.summary.insights)

    @param.depends("summary", "correlation_subset")
    def correlation_text(self) -> str:
        """The strongest pair of the selected subset."""
        if self.summary is None:
            return ""
        pair, r = eda.strongest_pair(self.summary.correlations[self.correlation_subset])
        return "" if pair is None else (
            f"Strongest pair: `{pair[0]}`–`{pair[1]}`, r = {r:+.2f}. The PCA components are uncorrelated "
            "over all transactions by construction; within a class they need not be."
        )

    @param.depends("summary", "ranking_metric")
    def top3_text(self) -> str:
        """The three best-separating features under the selected statistic."""
        if self.summary is None:
            return ""
        metric = self.ranking_metric
        name = {v: k for k, v in RANKING_METRICS.items()}[metric]
        top = self.summary.ranking.sort_values(metric, ascending=False).head(3)
        value = (lambda row: f"KS {row.ks:.2f}") if metric == "ks" else (
            lambda row: f"MI {row.mutual_info:.3f} bits")
        return f"**Top 3 by {name}:** " + " · ".join(
            f"**{i}. `{row.feature}`** {value(row)}" for i, row in enumerate(top.itertuples(), start=1))

    @param.depends("summary", "scatter_x", "scatter_y", "interactive_scatter", "lazy_scatter_ready")
    def scatter_text(self) -> str:
        """How to read the scatter."""
        if self.summary is None:
            return ""
        if self.scatter_x == self.scatter_y:
            return "Pick two different features."
        rows = self.summary.overview["rows"]
        if self.state.lazy_dataset is not None and self.lazy_scatter_ready != (self.scatter_x, self.scatter_y):
            return (f"Rasterising all {rows:,} transactions ({self.scatter_y} against {self.scatter_x}) with "
                    "datashader on the Dask cluster…")
        if self.state.lazy_dataset is not None:
            where = "on the Dask cluster, once (cached on disk)"
            zoom = "Zoom enlarges this image (re-rasterising would be a pass over every row)."
        else:
            where = "on the server"
            zoom = ("Zoom to re-rasterise at the new range." if self.interactive_scatter else
                    "Tick *Re-rasterise on zoom* to redraw the points at each zoom.")
        return (f"All {rows:,} transactions, rasterised by datashader {where}. "
                f"<span style='color:{CLEAR_COLOR}'>■</span> clear (darker = denser) · "
                f"<span style='color:{FRAUD_COLOR}'>■</span> fraud (spread so that every fraud stays visible). "
                + zoom)

    # ------------------------------------------------------------------ chart specs

    def _spec(self, builder: Any, *args: Any) -> ChartSpec | None:
        if self.summary is None:
            return None
        return ChartSpec(builder, self.summary, *args, key=(self.summary.fingerprint, *args))

    @param.depends("summary")
    def balance_spec(self) -> ChartSpec | None:
        return self._spec(class_balance_plot)

    @param.depends("summary", "feature", "log_amount")
    def distribution_spec(self) -> ChartSpec | None:
        return self._spec(distribution_plot, self.feature, self.log_amount and self.feature == "amount")

    @param.depends("summary", "correlation_subset")
    def correlation_spec(self) -> ChartSpec | None:
        return self._spec(correlation_plot, self.correlation_subset)

    @param.depends("summary", "ranking_metric")
    def ranking_spec(self) -> ChartSpec | None:
        return self._spec(ranking_plot, self.ranking_metric)

    @param.depends("summary")
    def amount_spec(self) -> ChartSpec | None:
        return self._spec(amount_histogram_plot)

    @param.depends("summary")
    def buckets_spec(self) -> ChartSpec | None:
        return self._spec(amount_bucket_plot)

    @param.depends("summary")
    def hourly_counts_spec(self) -> ChartSpec | None:
        return self._spec(hourly_counts_plot)

    @param.depends("summary")
    def hourly_rate_spec(self) -> ChartSpec | None:
        return self._spec(hourly_rate_plot)

    @param.depends("summary", "scatter_x", "scatter_y", "lazy_scatter_ready")
    def scatter_spec(self) -> ChartSpec | None:
        data = self.state.data
        if self.summary is None or data is None or self.scatter_x == self.scatter_y:
            return None
        key = (self.summary.fingerprint, self.scatter_x, self.scatter_y)
        if self.state.lazy_dataset is not None:
            if self.lazy_scatter_ready != (self.scatter_x, self.scatter_y):
                return None  # still counting on the cluster (see _handle_lazy_scatter)
            return ChartSpec(lazy_scatter_plot, data, self.scatter_x, self.scatter_y, *self._lazy_ranges(), key=key)
        return ChartSpec(static_scatter_plot, data, self.scatter_x, self.scatter_y, key=key)

    def _lazy_ranges(self) -> list[tuple[float, float]]:
        return [summary_range(self.summary, column) for column in (self.scatter_x, self.scatter_y)]

    @param.depends("summary", "scatter_x", "scatter_y", watch=True)
    def _handle_lazy_scatter(self) -> None:
        """A lazy set's new scatter axes: count their pixels on the cluster, in the Dask thread, then draw them."""
        data = self.state.lazy_dataset
        if data is None or self.summary is None or self.scatter_x == self.scatter_y:
            return
        axes = (self.scatter_x, self.scatter_y)
        size = {"width": SCATTER_SIZE[0], "height": SCATTER_SIZE[1]}
        x_range, y_range = self._lazy_ranges()

        def count() -> tuple[str, str]:
            lazy_scatter_counts(data, *axes, x_range=x_range, y_range=y_range, **size)
            return axes

        def ready(done: tuple[str, str]) -> None:
            with param.edit_constant(self):
                self.lazy_scatter_ready = done

        if lazy_scatter.is_in_memory(data, *axes, **size):
            ready(axes)
        else:
            run_off_loop(count, ready, pool=_DASK_POOL)

    @param.depends("interactive_scatter", "scatter_x", "scatter_y", watch=True)
    def _on_interactive_scatter(self) -> None:
        """Swap the static image for a DynamicMap that re-rasterises on zoom (and back)."""
        frame = self.state.dataset  # an in-memory set only (the box is hidden for a lazy one)
        wanted = self.interactive_scatter and frame is not None and self.scatter_x != self.scatter_y
        if not wanted:
            self._interactive.objects = [self.charts["scatter"]] if "scatter" in self.charts else []
            return
        try:
            plot = scatter_plot(frame, self.scatter_x, self.scatter_y)
        except Exception as exc:
            notify_error("Could not draw the scatter", exc)
            return
        self._interactive.objects = [pn.pane.HoloViews(
            plot, height=SCATTER_SIZE[1] + 70, width=SCATTER_SIZE[0] + 90, linked_axes=False)]



def describe_dataset(info: DatasetInfo | None) -> str:
    """Two lines on what the data set is (Markdown)."""
    if info is None:
        return "Loading the data set…"
    counts = (f"{info.rows:,} transactions over {info.time_span_hours:.1f} hours, "
              f"{info.frauds:,} of them fraud ({info.fraud_rate:.3%}); {info.read_text}"
              + (" on Dask (above FRAUD_APP_MAX_IN_MEMORY_ROWS: never loaded whole)." if info.lazy else "."))
    if info.source == "synthetic":
        return (f"**A seeded synthetic data set** with the real one's columns (class-conditional Gaussians), "
                f"for tests and demos: {counts}")
    columns = ("`amount` is in euros; `time` counts seconds from the first transaction, so hours below are "
               "hours since the start, not clock time.")
    if (info.rows, info.frauds) != (EXPECTED_ROWS, EXPECTED_FRAUDS):  # another set in the canonical schema
        name = Path(str(info.source).rstrip("/")).name or str(info.source)  # markdown_to_html escapes it
        return (f"**Card transactions from `{name}`** (the canonical schema): {counts} `feature1` … "
                f"`feature28` are its model inputs; {columns}")
    return (
        f"**Card transactions by European cardholders over two days in September 2013** (ULB / Worldline): "
        f"{counts} `feature1` … `feature28` are anonymised PCA components of the original, confidential "
        f"features; {columns}"
    )


# ---------------------------------------------------------------------- chart builders (no pandas work)


def _empty_describe() -> pd.DataFrame:
    """The describe table's columns and dtypes, without rows (the table's columns never change)."""
    columns = {"feature": pd.Series(dtype="str"), "class": pd.Series(dtype="str"),
               "count": pd.Series(dtype="int64")}
    columns.update({stat: pd.Series(dtype="float64") for stat in DESCRIBE_STATS if stat != "count"})
    return pd.DataFrame(columns)


def overview_numbers(summary: EDASummary) -> list[tuple[str, str, bool]]:
    """The headline numbers: (name, formatted value, is it about fraud)."""
    ov = summary.overview
    amounts = summary.describe[summary.describe["feature"] == "amount"].set_index("class")["50%"]
    return [
        ("Transactions", f"{ov['rows']:,}", False),
        ("Frauds", f"{ov['frauds']:,}", True),
        ("Fraud rate", f"{100 * ov['fraud_rate']:.3f} %", True),
        ("Time span", f"{ov['time_span_hours']:.1f} h", False),
        ("Median fraud amount", f"€ {float(amounts.get('fraud', np.nan)):,.2f}", True),
        ("Median clear amount", f"€ {float(amounts.get('clear', np.nan)):,.2f}", False),
    ]


def markdown_to_html(text: str) -> str:
    """The little Markdown :func:`describe_dataset` uses (bold, code) as HTML."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


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


def _hourly_frame(summary: EDASummary) -> pd.DataFrame:
    return summary.hourly.assign(
        clear=lambda d: d["transactions"] - d["frauds"],
        fraud_rate_pct=lambda d: 100 * d["fraud_rate"].fillna(0),
    )


def hourly_counts_plot(summary: EDASummary) -> hv.Element:
    """Transactions per hour since the first transaction, modulo 24."""
    return _hourly_frame(summary).hvplot.bar(
        x="hour", y="transactions", color=CLEAR_COLOR, hover_cols=["frauds"],
        title="Transactions by hour", xlabel="hour since the first transaction, mod 24",
        ylabel="transactions", **_SIZE,
    )


def hourly_rate_plot(summary: EDASummary) -> hv.Overlay:
    """The fraud rate per hour since the first transaction (mod 24), against the overall rate."""
    hourly = _hourly_frame(summary)
    overall = 100 * summary.overview["fraud_rate"]
    return (
        hourly.hvplot.line(x="hour", y="fraud_rate_pct", color=FRAUD_COLOR, line_width=2,
                           hover_cols=["frauds", "transactions"], title="Fraud rate by hour",
                           xlabel="hour since the first transaction, mod 24", ylabel="fraud rate (%)", **_SIZE)
        * hourly.hvplot.scatter(x="hour", y="fraud_rate_pct", color=FRAUD_COLOR, size=30, **_SIZE)
        * hv.HLine(overall).opts(color="grey", line_dash="dashed", line_width=1.5)
    ).opts(responsive=True)


def amount_histogram_plot(summary: EDASummary) -> hv.Overlay:
    """Amounts by class on a log10(1 + amount) axis."""
    amount = summary.log_histograms["amount"]
    return histogram_overlay(amount, f"Amount by class, {amount.label}")


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
    xs = element.dimension_values(0, expanded=False)
    ys = element.dimension_values(1, expanded=False)
    codes = class_codes(element.dimension_values("clear", flat=False),
                        element.dimension_values("fraud", flat=False), spread_px)
    return hv.Image((xs, ys, codes), kdims=element.kdims, vdims=[hv.Dimension("code", range=(0, 255))])


def class_codes(clear: np.ndarray, fraud_counts: np.ndarray, spread_px: int = 2) -> np.ndarray:
    """One byte per pixel from the per-pixel counts of clear and fraud rows (see :func:`encode_classes`)."""
    fraud = fraud_counts > 0
    codes = np.zeros(clear.shape, dtype="uint8")
    filled = clear > 0
    if filled.any():
        values = clear[filled]
        ranks = np.searchsorted(np.sort(values), values, side="right") / len(values)
        codes[filled] = 1 + np.minimum((ranks * CLEAR_SHADES).astype("int64"), CLEAR_SHADES - 1)
    halo = _grow(fraud, spread_px)
    codes[halo] = FRAUD_HALO_CODE
    codes[fraud] = FRAUD_CODE
    return codes


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


def scatter_plot(frame: pd.DataFrame, x: str, y: str, dynamic: bool = True) -> hv.DynamicMap | hv.Image:
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
                       pixel_ratio=1, dynamic=dynamic, x_range=_padded_range(points.dimension_values(0)),
                       y_range=_padded_range(points.dimension_values(1)))
    return raster.apply(encode_classes).opts(_scatter_opts(x, y))


def _scatter_opts(x: str, y: str) -> hv.Options:
    width, height = SCATTER_SIZE
    return hv.opts.Image(cmap=class_raster_palette(), clim=(0, 255), colorbar=False,
                         width=width + 80, height=height + 60, title=f"{y} against {x}", xlabel=x, ylabel=y,
                         default_tools=["pan", "wheel_zoom", "box_zoom", "reset"], tools=[],
                         active_tools=["wheel_zoom"])


def _padded_range(values: np.ndarray) -> tuple[float, float]:
    return _pad(float(values.min()), float(values.max()))


def _pad(low: float, high: float) -> tuple[float, float]:
    pad = (high - low) * 0.02 or 0.5
    return low - pad, high + pad


def static_scatter_plot(frame: pd.DataFrame, x: str, y: str) -> hv.Image:
    """All rows of two columns as one image (datashader, computed once): the scatter without a server stream."""
    return scatter_plot(frame, x, y, dynamic=False)


def summary_range(summary: EDASummary, column: str) -> tuple[float, float]:
    """The padded range of ``column`` over every row, from the summary's per-class minima and maxima."""
    rows = summary.describe[summary.describe["feature"] == column]
    return _pad(float(rows["min"].min()), float(rows["max"].max()))


def lazy_scatter_plot(dataset: Any, x: str, y: str, x_range: tuple[float, float],
                      y_range: tuple[float, float]) -> hv.Image:
    """Every row of a lazy data set, two columns at a time: datashader on the cluster, coloured as :func:`scatter_plot`.

    The per-pixel counts come from :func:`fraud_app.eda.lazy_scatter.lazy_scatter_counts` (computed
    once per process, cached on disk); this only turns them into the same one-byte image.
    """
    width, height = SCATTER_SIZE
    counts = lazy_scatter_counts(dataset, x, y, width=width, height=height, x_range=x_range, y_range=y_range)
    image = hv.Image((counts.xs, counts.ys, class_codes(counts.clear, counts.fraud)), kdims=[x, y],
                     vdims=[hv.Dimension("code", range=(0, 255))])
    return image.opts(_scatter_opts(x, y))


__all__ = [
    "EDASection", "amount_bucket_plot", "amount_histogram_plot", "class_balance_plot", "correlation_plot",
    "describe_dataset", "distribution_plot", "histogram_overlay", "hourly_counts_plot",
    "hourly_rate_plot", "lazy_scatter_plot", "ranking_plot", "scatter_plot", "static_scatter_plot", "summary_range",
]
