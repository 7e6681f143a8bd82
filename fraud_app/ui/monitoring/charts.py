"""The Monitoring tab's charts as :class:`~fraud_app.ui.charts.ChartSpec`: drawn off the event loop.

Each spec is keyed by the data it draws (a tuple), so two sessions looking at the same
report share the HoloViews object and an unchanged report draws nothing new.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import pandas as pd

from fraud_app.ui.charts import ChartSpec

SOURCE_COLORS = {"api": "#1f77b4", "ui": "#2ca02c", "batch": "#9467bd"}
#: The lowest share the score distribution's log axis shows.
SHARE_FLOOR = 1e-5


def _volume(rows: tuple[tuple[str, str, int, int], ...], window: tuple[str, str]) -> Any:
    frame = pd.DataFrame(list(rows), columns=["bucket", "source", "count", "flagged"])
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True).dt.tz_localize(None)
    frame["flagged rate"] = frame["flagged"] / frame["count"].where(frame["count"] > 0)
    # The whole window on the time axis: a lone bucket would otherwise get an axis a millisecond wide.
    xlim = tuple(pd.Timestamp(t) for t in window)  # UTC, to the minute, without the zone (as the buckets)

    def by_source(column: str) -> Any:
        if not len(frame):
            return hv.Curve([], "bucket", column)
        return hv.Overlay([
            hv.Curve(part, "bucket", column, label=source).opts(color=SOURCE_COLORS.get(source, "#7f7f7f"))
            * hv.Scatter(part, "bucket", column).opts(color=SOURCE_COLORS.get(source, "#7f7f7f"), size=5)
            for source, part in frame.groupby("source")])

    return (by_source("count").opts(title="Predictions per bucket, by source", responsive=True, height=260,
                                    tools=["hover"], xlim=xlim)
            + by_source("flagged rate").opts(title="Flagged rate, by source", responsive=True, height=260,
                                             tools=["hover"], yformatter="%.2f", xlim=xlim)).cols(2)


def _scores(edges: tuple[float, ...], live: tuple[float, ...], reference: tuple[float, ...] | None) -> Any:
    # Bins as text ("0.00-0.05"): numbers as the first key of grouped bars give Bokeh a numeric axis
    # that the grouped (categorical) bars cannot be drawn on, and the chart came out empty.
    bins = [f"{a:.2f}-{b:.2f}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    rows = [(c, "live", v) for c, v in zip(bins, live, strict=True)]
    if reference is not None:
        rows += [(c, "training (validation)", v) for c, v in zip(bins, reference, strict=True)]
    frame = pd.DataFrame(rows, columns=["P(fraud)", "distribution", "share"])
    # A log scale, so the rare high-score bins stay visible next to the first one (about 99 % of
    # transactions); an empty bin is not drawn (NaN) rather than drawn at the floor.
    frame["share"] = frame["share"].where(frame["share"] > 0)
    share = hv.Dimension("share", range=(SHARE_FLOOR, 1.0))
    return hv.Bars(frame, ["P(fraud)", "distribution"], share).opts(
        title="Score distribution: live against the training reference (log scale)", responsive=True,
        height=280, tools=["hover"], xrotation=90, multi_level=False, cmap=["#d62728", "#7f7f7f"],
        show_legend=True, logy=True)


def _psi(values: tuple[tuple[str, float], ...], threshold: float) -> Any:
    frame = pd.DataFrame(list(values), columns=["feature", "PSI"])
    frame["drifted"] = frame["PSI"] > threshold
    bars = hv.Bars(frame, "feature", ["PSI", "drifted"]).opts(
        color=hv.dim("drifted").categorize({True: "#d62728", False: "#1f77b4"}), xrotation=90,
        tools=["hover"], responsive=True, height=280)
    line = hv.HLine(threshold).opts(color="#d62728", line_dash="dashed", line_width=2)
    # At the first input's category: a number here would add a category of its own to the axis.
    label = hv.Text(frame["feature"].iloc[0], threshold, f" alert above {threshold:g}", halign="left",
                    valign="bottom").opts(text_color="#d62728", text_font_size="9pt")
    return (bars * line * label).opts(title="PSI per input against the training reference")


def volume_spec(report: dict[str, Any]) -> ChartSpec:
    rows = tuple((v["bucket"], v["source"], v["count"], v["flagged"]) for v in report["volume"])
    # The window (UTC) to the minute: a refresh within the same minute draws nothing new.
    window = tuple(pd.Timestamp(report[end]).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M")
                   for end in ("since", "until"))
    return ChartSpec(_volume, rows, window, key=(rows, window))


def scores_spec(report: dict[str, Any]) -> ChartSpec:
    histogram = report["score_histogram"]
    reference = tuple(histogram["reference"]) if histogram["reference"] is not None else None
    args = (tuple(histogram["edges"]), tuple(round(v, 6) for v in histogram["live"]), reference)
    return ChartSpec(_scores, *args, key=args)


def psi_spec(report: dict[str, Any]) -> ChartSpec | None:
    if not report["psi"]:
        return None
    values = tuple((name, round(value or 0.0, 6)) for name, value in report["psi"].items())
    threshold = float(report["thresholds"]["psi"])
    return ChartSpec(_psi, values, threshold, key=(values, threshold))


__all__ = ["psi_spec", "scores_spec", "volume_spec"]
