"""The Dask dashboard link, shown in the Training tab while a Dask cluster is in use (issue #14)."""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from fraud_app.ui.training.controller import TrainingController


def cluster_html(info: dict[str, Any]) -> str:
    """One line on the cluster (empty when none is in use: the tab shows nothing)."""
    if not info.get("running") or not info.get("dashboard"):
        return ""
    link = html.escape(str(info["dashboard"]), quote=True)
    return (f"<p class='cluster'>Dask cluster: {int(info['workers'])} workers at "
            f"{html.escape(str(info['scheduler']))}, <a href='{link}' target='_blank' rel='noopener'>"
            "dashboard</a></p>")


class ClusterLink(pn.viewable.Viewer):
    """The running cluster's dashboard link; read again whenever a training starts or ends."""

    controller = param.ClassSelector(class_=TrainingController, doc="The Training tab's controller.")
    text = param.String(default="", constant=True, doc="The HTML line (empty without a cluster).")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.refresh()
        self._pane = pn.pane.HTML(self.param.text, sizing_mode="stretch_width", margin=(0, 10))

    @param.depends("controller.running", watch=True)
    def refresh(self) -> None:
        from fraud_app.scale import engine

        with param.edit_constant(self):
            self.text = cluster_html(engine.describe())

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane


__all__ = ["ClusterLink", "cluster_html"]
