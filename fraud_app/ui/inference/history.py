"""The saved predictions: one page of the database's log, newest first, with Newer/Older.

Rows saved anywhere (Predict with Save to log, batches, REST clients, other sessions) appear
within the controller's ``poll_period``. The table is built when the first page has been read,
so the tab's controls appear before it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from fraud_app.data import MODEL_FEATURES
from fraud_app.ui.inference.controller import InferenceController
from fraud_app.ui.theme import stylesheet


def table_formatters() -> dict[str, Any]:
    """Number formats of the prediction tables (probabilities to 5 decimals, amounts in money format)."""
    formatters: dict[str, Any] = {"fraud_probability": NumberFormatter(format="0.00000"),
                                  "threshold": NumberFormatter(format="0.0000")}
    formatters.update({name: NumberFormatter(format="0.0000") for name in MODEL_FEATURES if name != "amount"})
    formatters["amount"] = NumberFormatter(format="0,0.00")
    return formatters


def pager_text(page: int, pages: int, total: int) -> str:
    """``Page 2 of 3 · 41 saved predictions``."""
    return f"Page **{page}** of {pages} · {total:,} saved prediction{'' if total == 1 else 's'}"


class HistoryView(pn.viewable.Viewer):
    """The Saved predictions card, bound to ``predictions``, ``page`` and ``total_predictions``."""

    ctrl = param.ClassSelector(class_=InferenceController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl, css = self.ctrl, [stylesheet("inference")]
        self._table: pn.widgets.Tabulator | None = None
        pager = pn.pane.Markdown(pn.bind(lambda page, _total: pager_text(page, ctrl.page_count(), _total), ctrl.param.page,
                                         ctrl.param.total_predictions),
                                 margin=(8, 10), css_classes=["pager"])
        self._layout = pn.Card(
            pn.Row(
                pn.widgets.Button.from_param(ctrl.param.newer_page, label="← Newer", width=110, stylesheets=css,
                                             disabled=param.rx(ctrl.can_page_newer).rx.not_()),
                pn.widgets.Button.from_param(ctrl.param.older_page, label="Older →", width=110, stylesheets=css,
                                             disabled=param.rx(ctrl.can_page_older).rx.not_()),
                pager),
            pn.panel(pn.bind(self._table_for, ctrl.param.predictions)),
            title="Saved predictions (newest first)", collapsible=False, sizing_mode="stretch_width",
        )

    def _table_for(self, frame: pd.DataFrame | None) -> pn.viewable.Viewable:
        """A placeholder until the first page is read; then the one table, bound to ``predictions``."""
        if frame is None:
            return pn.pane.Markdown("Reading the saved predictions…", margin=(0, 10))
        if self._table is None:
            self._table = pn.widgets.Tabulator(
                self.ctrl.param.predictions, disabled=True, show_index=False, pagination=None,
                sizing_mode="stretch_width", layout="fit_data_stretch", height=None,
                formatters=table_formatters(), css_classes=["predictions-table"],
            )
        return self._table

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["HistoryView", "pager_text", "table_formatters"]
