"""The Training tab's chart and table builders: pure functions of the controller's outputs.

The confusion matrix, the precision-recall curve and the reliability curve (HoloViews), the
overlaid curves of compared models, and the frames behind the runs, saved-models and comparison
tables. The views draw the charts off the event loop (:class:`fraud_app.ui.charts.OffloopChart`). No widgets and no state: the views in this package call them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend and its options)
import numpy as np
import pandas as pd

from fraud_app.ui.theme import ACCENT_COLOR, FRAUD_COLOR

#: Class labels of the confusion matrix, 0 then 1.
CLASS_LABELS = ("Clear", "Fraudulent")
_CELLS = (("TN", "FP"), ("FN", "TP"))
#: Pale blues so black count labels stay readable on every cell.
_CMAP = ["#f4f8fc", "#c6dbef", "#6baed6"]
#: Metric columns of the runs table, in display order.
RUN_METRICS = ("f1", "precision", "recall", "pr_auc", "roc_auc", "threshold")
RUN_COLUMNS = ("id", "created_at", "model", "kind", "saved", *RUN_METRICS, "duration_s", "params")
MODEL_COLUMNS = ("active", "name", "kind", "f1", "pr_auc", "threshold", "saved_at", "version")
#: Runs-table columns kept off screen (shown in the row's detail instead), so the metrics fit.
RUN_DETAIL_COLUMNS = ("kind", "params")


def confusion_frame(matrix: Sequence[Sequence[int]] | None) -> pd.DataFrame:
    """One row per cell of ``[[tn, fp], [fn, tp]]``: Predicted, Actual, Count, Cell, Text, Shade.

    Without a matrix the four cells are still there (count 0, no text), so the plot keeps its
    categorical axes when real counts arrive.
    """
    rows = []
    total = 0 if matrix is None else sum(int(v) for row in matrix for v in row)
    for actual in (0, 1):
        for predicted in (0, 1):
            count = 0 if matrix is None else int(matrix[actual][predicted])
            cell = _CELLS[actual][predicted]
            text = "" if matrix is None else f"{cell}\n{count:,}"
            # log(1 + count) scaled into [0, 1]: a fixed colour range, so updates need no range pass.
            shade = float(np.log1p(count) / np.log1p(total)) if total else 0.0
            rows.append((CLASS_LABELS[predicted], CLASS_LABELS[actual], count, cell, text, shade))
    frame = pd.DataFrame(rows, columns=["Predicted", "Actual", "Count", "Cell", "Text", "Shade"])
    # Plain Python strings: HoloViews reshapes columns, which Arrow-backed strings do not allow.
    return frame.astype({"Predicted": object, "Actual": object, "Cell": object, "Text": object})


def confusion_heatmap(matrix: Sequence[Sequence[int]] | None, threshold: float | None = None) -> hv.Overlay:
    """The confusion matrix as a heat map with counts, labelled Clear/Fraudulent.

    Colour follows ``log(1 + count)`` scaled by ``log(1 + total)`` (the classes differ by orders
    of magnitude; a fixed colour range keeps updates cheap); the hover and labels show counts.
    """
    frame = confusion_frame(matrix)
    title = "Confusion matrix" if threshold is None else f"Confusion matrix at threshold {threshold:.4f}"
    heat = hv.HeatMap(frame, kdims=["Predicted", "Actual"], vdims=["Shade", "Count"]).opts(
        cmap=_CMAP, colorbar=False, tools=["hover"],
        hover_tooltips=[("Actual", "@Actual"), ("Predicted", "@Predicted"), ("Count", "@Count")],
        xlabel="Predicted", ylabel="Actual", invert_yaxis=True, toolbar=None, default_tools=[],
        title=title, clim=(0.0, 1.0), height=300, min_width=300, responsive=True,
        fontsize={"title": "11pt", "labels": "11pt", "ticks": "11pt"},
    )
    labels = hv.Labels(frame, kdims=["Predicted", "Actual"], vdims=["Text"]).opts(
        text_color="black", text_font_size="12pt")
    return heat * labels


def pr_curve_plot(curve: Mapping[str, Sequence[float]] | None, chosen: Mapping[str, float] | None = None,
                  model_threshold: Mapping[str, float] | None = None) -> hv.Overlay:
    """The precision-recall curve with the chosen threshold (and the model's own one) marked.

    Parameters
    ----------
    curve : ``{"precision": [...], "recall": [...], "thresholds": [...]}`` (TrainingResult.pr_curve).
    chosen, model_threshold : ``{"recall", "precision", "threshold"}`` of a point to mark.
    """
    curve = curve or {"precision": [], "recall": [], "thresholds": []}
    line = hv.Curve((list(curve["recall"]), list(curve["precision"])), "Recall", "Precision",
                    label="Test split").opts(color=ACCENT_COLOR, line_width=2, interpolation="steps-post")
    points = []
    for point, label, color, marker in ((model_threshold, "Model's threshold", "#8c8c8c", "square"),
                                        (chosen, "Chosen", FRAUD_COLOR, "circle")):
        data = [] if point is None else [(point["recall"], point["precision"], point["threshold"])]
        points.append(hv.Points(data, ["Recall", "Precision"], ["Threshold"], label=label).opts(
            color=color, size=11, marker=marker, tools=["hover"]))
    return hv.Overlay([line, *points]).opts(
        title="Precision-recall curve (held-out test split)", xlim=(0, 1.02), ylim=(0, 1.05),
        legend_position="bottom_left", toolbar=None, height=300, min_width=300, responsive=True,
        fontsize={"title": "11pt", "labels": "11pt", "ticks": "10pt"})


def reliability_plot(reliability: Mapping[str, Any] | None, title: str | None = None) -> hv.Overlay:
    """The reliability curve: observed fraud rate against mean predicted P(fraud) per bin, log axes.

    ``reliability`` is :func:`fraud_app.training.metrics.reliability_curve`'s dict (``predicted``,
    ``observed``, ``count``, ``frauds``, ``ece``). Points on the diagonal mean calibrated
    probabilities. A bin without frauds has an observed rate of 0, which a log axis cannot show:
    it is drawn at the axis floor.
    """
    return reliability_overlay([("Test split", reliability or {})], title)


def _reliability_points(reliability: Mapping[str, Any], floor: float) -> list[tuple[float, float, int, int]]:
    predicted = list(reliability.get("predicted") or [])
    observed = list(reliability.get("observed") or [])
    counts = list(reliability.get("count") or [0] * len(predicted))
    frauds = list(reliability.get("frauds") or [0] * len(predicted))
    return [(max(float(p), floor), max(float(o), floor), int(n), int(f))
            for p, o, n, f in zip(predicted, observed, counts, frauds)]


#: The reliability chart's axis floor (bins below it, e.g. no fraud observed, are drawn on it).
RELIABILITY_FLOOR = 1e-5
#: One colour per compared model.
COMPARE_COLORS = (ACCENT_COLOR, FRAUD_COLOR, "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def reliability_overlay(curves: Sequence[tuple[str, Mapping[str, Any]]], title: str | None = None) -> hv.Overlay:
    """Reliability curves of one or more models (``(label, reliability)`` pairs) with the diagonal."""
    floor = RELIABILITY_FLOOR
    diagonal = hv.Curve([(floor, floor), (1.0, 1.0)], "Predicted", "Observed", label="Perfectly calibrated").opts(
        color="#8c8c8c", line_dash="dashed", line_width=1)
    layers: list[Any] = [diagonal]
    eces = []
    for i, (label, reliability) in enumerate(curves):
        points = _reliability_points(reliability, floor)
        color = COMPARE_COLORS[i % len(COMPARE_COLORS)]
        ece = reliability.get("ece")
        if ece is not None:
            eces.append(f"{float(ece):.2g}")
        layers.append(hv.Curve([p[:2] for p in points], "Predicted", "Observed", label=label).opts(
            color=color, line_width=2))
        layers.append(hv.Points(points, ["Predicted", "Observed"], ["Rows", "Frauds"], label=label).opts(
            color=color, size=7, tools=["hover"]))
    if title is None:
        title = "Reliability (held-out test split" + (f", ECE {', '.join(eces)})" if eces else ")")
    return hv.Overlay(layers).opts(
        title=title, logx=True, logy=True, xlim=(floor, 1.05), ylim=(floor, 1.05),
        xlabel="Mean predicted P(fraud)", ylabel="Observed fraud rate", legend_position="top_left",
        toolbar=None, height=300, min_width=300, responsive=True,
        fontsize={"title": "11pt", "labels": "11pt", "ticks": "10pt"})


def compare_pr_plot(models: Sequence[Mapping[str, Any]]) -> hv.Overlay:
    """The PR curves of compared models (``ModelComparison.models``), overlaid, each at its own threshold."""
    layers: list[Any] = []
    for i, model in enumerate(models):
        curve = model.get("pr_curve") or {"precision": [], "recall": []}
        color = COMPARE_COLORS[i % len(COMPARE_COLORS)]
        metrics = model.get("metrics") or {}
        label = f"{model['name']} (PR-AUC {float(metrics.get('pr_auc') or float('nan')):.3f})"
        layers.append(hv.Curve((list(curve["recall"]), list(curve["precision"])), "Recall", "Precision",
                               label=label).opts(color=color, line_width=2, interpolation="steps-post"))
        if metrics.get("recall") is not None:
            layers.append(hv.Points([(metrics["recall"], metrics["precision"], model.get("threshold"))],
                                    ["Recall", "Precision"], ["Threshold"], label=label).opts(
                color=color, size=10, tools=["hover"]))
    return hv.Overlay(layers).opts(
        title="Precision-recall curves (same test rows; dots at each model's threshold)", xlim=(0, 1.02),
        ylim=(0, 1.05), legend_position="bottom_left", toolbar=None, height=320, min_width=300, responsive=True,
        fontsize={"title": "11pt", "labels": "11pt", "ticks": "10pt"})


def compare_reliability_plot(models: Sequence[Mapping[str, Any]]) -> hv.Overlay:
    """The reliability curves of compared models, overlaid."""
    return reliability_overlay([(m["name"], m.get("reliability") or {}) for m in models],
                               "Reliability (same test rows)")


def comparison_frame(models: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per compared model: name, kind, F1, precision, recall, PR-AUC, ROC-AUC, Brier, threshold, held out."""
    rows = []
    for model in models:
        metrics = model.get("metrics") or {}
        rows.append({"name": model.get("name"), "kind": model.get("kind"),
                     **{key: _number(metrics.get(key)) for key in COMPARE_METRICS},
                     "threshold": _number(model.get("threshold")), "held_out": bool(model.get("held_out"))})
    return pd.DataFrame(rows, columns=["name", "kind", *COMPARE_METRICS, "threshold", "held_out"])


#: Metric columns of the comparison table.
COMPARE_METRICS = ("f1", "precision", "recall", "pr_auc", "roc_auc", "brier")


def _params_text(params: Mapping[str, Any] | None) -> str:
    """A compact one-line summary of hyper-parameters (members by kind, no seed)."""
    parts = []
    for key, value in (params or {}).items():
        if key in ("random_state", "n_jobs"):
            continue
        if key == "members" and isinstance(value, list):
            value = "+".join(str(m.get("kind", m)) if isinstance(m, Mapping) else str(m) for m in value)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def runs_frame(runs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The recorded training runs as a table, one row per run, metrics side by side."""
    rows = []
    for run in runs:
        metrics = run.get("metrics") or {}
        created = str(run.get("created_at") or "")
        rows.append({
            "id": int(run["id"]),
            "created_at": created.replace("T", " ")[:16],  # to the minute: the table stays narrow
            "model": run.get("model") or "",
            "kind": run.get("kind") or "",
            "saved": bool(run.get("saved")),
            **{key: _number(metrics.get(key)) for key in RUN_METRICS},
            "duration_s": _number(run.get("duration_s")),
            "params": _params_text(run.get("params")),
        })
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    return frame.astype({key: "float64" for key in (*RUN_METRICS, "duration_s")})


@functools.cache
def _empty_runs_frame() -> pd.DataFrame:
    return runs_frame([])


def empty_runs_frame() -> pd.DataFrame:
    """An empty runs table with its columns and types (a copy of one built once per process)."""
    return _empty_runs_frame().copy()


def models_frame(models: Sequence[Mapping[str, Any]], active: str | None) -> pd.DataFrame:
    """The saved models as a table (newest first), the active one ticked (``"✓"``)."""
    rows = []
    for meta in models:
        metrics = meta.get("metrics") or {}
        rows.append({
            "active": "✓" if meta.get("name") == active else "",
            "name": meta.get("name"),
            "kind": meta.get("kind"),
            "f1": _number(metrics.get("f1")),
            "pr_auc": _number(metrics.get("pr_auc")),
            "threshold": _number(meta.get("threshold")),
            "saved_at": str(meta.get("saved_at") or "").replace("T", " ")[:19],
            "version": meta.get("version"),
        })
    frame = pd.DataFrame(rows, columns=list(MODEL_COLUMNS))
    return frame.astype({"f1": "float64", "pr_auc": "float64", "threshold": "float64"})


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


__all__ = [
    "CLASS_LABELS", "COMPARE_METRICS", "MODEL_COLUMNS", "compare_pr_plot", "compare_reliability_plot",
    "comparison_frame", "reliability_overlay", "reliability_plot", "RUN_COLUMNS", "RUN_DETAIL_COLUMNS", "RUN_METRICS", "confusion_frame",
    "confusion_heatmap",
    "empty_runs_frame", "models_frame", "pr_curve_plot", "runs_frame",
]
