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


def _volume(rows: tuple[tuple[str, str, int, int], ...]) -> Any:
    frame = pd.DataFrame(list(rows), columns=["bucket", "source", "count", "flagged"])
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True).dt.tz_localize(None)
    frame["flagged rate"] = frame["flagged"] / frame["count"].where(frame["count"] > 0)
    volume = hv.Overlay([
        hv.Curve(part, "bucket", "count", label=source).opts(color=SOURCE_COLORS.get(source, "#7f7f7f"))
        * hv.Scatter(part, "bucket", "count").opts(color=SOURCE_COLORS.get(source, "#7f7f7f"), size=5)
        for source, part in frame.groupby("source")]) if len(frame) else hv.Curve([], "bucket", "count")
    rate = hv.Overlay([
        hv.Curve(part, "bucket", "flagged rate", label=source).opts(color=SOURCE_COLORS.get(source, "#7f7f7f"))
        for source, part in frame.groupby("source")]) if len(frame) else hv.Curve([], "bucket", "flagged rate")
    return (volume.opts(title="Predictions per bucket, by source", responsive=True, height=260, tools=["hover"])
            + rate.opts(title="Flagged rate, by source", responsive=True, height=260, tools=["hover"],
                        yformatter="%.2f")).cols(2)


def _scores(edges: tuple[float, ...], live: tuple[float, ...], reference: tuple[float, ...] | None) -> Any:
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    rows = [(c, "live", v) for c, v in zip(centers, live, strict=True)]
    if reference is not None:
        rows += [(c, "training (validation)", v) for c, v in zip(centers, reference, strict=True)]
    frame = pd.DataFrame(rows, columns=["P(fraud)", "distribution", "share"])
    return hv.Bars(frame, ["P(fraud)", "distribution"], "share").opts(
        title="Score distribution: live against the training reference", responsive=True, height=280,
        tools=["hover"], xrotation=90, multi_level=False, cmap=["#d62728", "#7f7f7f"], show_legend=True)


def _psi(values: tuple[tuple[str, float], ...], threshold: float) -> Any:
    frame = pd.DataFrame(list(values), columns=["feature", "PSI"])
    frame["drifted"] = frame["PSI"] > threshold
    bars = hv.Bars(frame, "feature", ["PSI", "drifted"]).opts(
        color=hv.dim("drifted").categorize({True: "#d62728", False: "#1f77b4"}), xrotation=90,
        tools=["hover"], responsive=True, height=280)
    line = hv.HLine(threshold).opts(color="#d62728", line_dash="dashed", line_width=2)
    label = hv.Text(0.5, threshold, f" alert above {threshold:g}", halign="left", valign="bottom").opts(
        text_color="#d62728", text_font_size="9pt")
    return (bars * line * label).opts(title="PSI per input against the training reference")


def volume_spec(report: dict[str, Any]) -> ChartSpec:
    rows = tuple((v["bucket"], v["source"], v["count"], v["flagged"]) for v in report["volume"])
    return ChartSpec(_volume, rows, key=rows)


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
