"""The Training tab on Dask: how a lazy data set trains, and the dashboard link while a cluster is in use (#14)."""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from fraud_app.data import DatasetInfo
from fraud_app.training.distributed import DEFAULT_SAMPLE_ROWS, DISTRIBUTED_KINDS, VALIDATION_SHARE
from fraud_app.ui.training.controller import TrainingController, kind_label


def lazy_html(info: DatasetInfo | None) -> str:
    """One line on how a lazy data set trains (empty for an in-memory one)."""
    if info is None or not info.lazy:
        return ""
    return (f"<p class='lazy-data'>The data set is too big for memory ({html.escape(info.read_text)}): "
            f"{kind_label(DISTRIBUTED_KINDS[0])} trains on the Dask cluster (threshold and calibration on a "
            f"{VALIDATION_SHARE:.0%} validation share of the training rows); the other kinds train on a "
            f"stratified sample of at most {DEFAULT_SAMPLE_ROWS:,} rows, and the result says so.</p>")


def cluster_html(info: dict[str, Any]) -> str:
    """One line on the cluster (empty when none is in use: the tab shows nothing)."""
    if not info.get("running") or not info.get("dashboard"):
        return ""
    link = html.escape(str(info["dashboard"]), quote=True)
    workers = int(info["workers"])
    return (f"<p class='cluster'>Dask cluster: {workers} worker{'s' if workers != 1 else ''} at "
            f"{html.escape(str(info['scheduler']))}, <a href='{link}' target='_blank' rel='noopener'>"
            "dashboard</a></p>")


class ClusterLink(pn.viewable.Viewer):
    """How a lazy data set trains, and the running cluster's dashboard link; read again whenever a training
    starts or ends."""

    controller = param.ClassSelector(class_=TrainingController, doc="The Training tab's controller.")
    text = param.String(default="", constant=True, doc="The HTML line (empty without a cluster).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.refresh()
        self._pane = pn.pane.HTML(self.param.text, sizing_mode="stretch_width", margin=(0, 10))

    @param.depends("controller.running", "controller.state.dataset_info", watch=True)
    def refresh(self) -> None:
        from fraud_app.scale import engine

        with param.edit_constant(self):
            self.text = lazy_html(self.controller.state.dataset_info) + cluster_html(engine.describe())

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane


__all__ = ["ClusterLink", "cluster_html", "lazy_html"]
