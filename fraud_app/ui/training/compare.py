"""The Training tab's model comparison: two or more saved models on the same test rows, overlaid.

The controller scores the chosen models with :func:`fraud_app.training.compare_models` on the
training runner (never on the event loop); this view shows the result: a table of the metrics
at each model's own threshold, their PR curves and their reliability curves overlaid, each
chart drawn off the event loop (:class:`~fraud_app.ui.charts.OffloopChart`).
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param
from bokeh.models.widgets.tables import BooleanFormatter, NumberFormatter

from fraud_app.training import ModelComparison
from fraud_app.ui.charts import ChartSpec, OffloopChart
from fraud_app.ui.theme import stylesheet
from fraud_app.ui.training import charts
from fraud_app.ui.training.controller import TrainingController
from fraud_app.ui.training.form import action_button, tooltip

#: Height of the comparison charts, in pixels.
COMPARE_HEIGHT = 330


def comparison_key(comparison: ModelComparison) -> tuple:
    """What identifies a comparison in a chart's cache key: its rows and each model's name and version."""
    return (comparison.split, comparison.seed, comparison.test_size, comparison.n_test,
            tuple((m["name"], m.get("version"), m.get("threshold")) for m in comparison.models))


def pr_spec(comparison: ModelComparison | None) -> ChartSpec | None:
    """The overlaid PR curves of a comparison (None before the first one)."""
    if comparison is None:
        return None
    return ChartSpec(charts.compare_pr_plot, comparison.models, key=comparison_key(comparison))


def reliability_spec(comparison: ModelComparison | None) -> ChartSpec | None:
    """The overlaid reliability curves of a comparison (None before the first one)."""
    if comparison is None:
        return None
    return ChartSpec(charts.compare_reliability_plot, comparison.models, key=comparison_key(comparison))


def comparison_table(comparison: ModelComparison | None) -> Any:
    return charts.comparison_frame([] if comparison is None else comparison.models)


class CompareModels(pn.viewable.Viewer):
    """Choose two or more saved models; see their metrics, PR curves and reliability curves on the same rows."""

    controller = param.ClassSelector(class_=TrainingController, doc="The Training tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl = self.controller
        choose = pn.widgets.MultiChoice.from_param(
            ctrl.param.compare_names, label="Saved models to compare", placeholder="two or more saved models",
            sizing_mode="stretch_width", css_classes=["training-compare-names"], disabled=ctrl.param.comparing)
        run = action_button(
            ctrl.param.compare, "Compare", button_type="primary", width=120, align="end",
            css_classes=["training-compare"],
            disabled=pn.bind(lambda names, busy: busy or len(names) < 2, ctrl.param.compare_names,
                             ctrl.param.comparing),
            description=tooltip("Score the chosen models on the same test rows (the first model's split), "
                                "off the event loop.", "top"))
        status = pn.pane.Markdown(ctrl.param.compare_status, sizing_mode="stretch_width",
                                  css_classes=["training-compare-status"])
        number = NumberFormatter(format="0.000")
        table = pn.widgets.Tabulator(
            pn.bind(comparison_table, ctrl.param.comparison), disabled=True, show_index=False,
            sizing_mode="stretch_width", layout="fit_data_stretch", css_classes=["training-compare-table"],
            visible=ctrl.param.comparison.rx.is_not(None),  # no empty table before the first comparison
            formatters={**{key: number for key in charts.COMPARE_METRICS}, "brier": NumberFormatter(format="0.00000"),
                        "threshold": NumberFormatter(format="0.0000"), "held_out": BooleanFormatter()},
            titles={"pr_auc": "PR-AUC", "roc_auc": "ROC-AUC", "f1": "F1", "held_out": "held out"})
        self.pr_chart = OffloopChart(spec=pn.bind(pr_spec, ctrl.param.comparison), title="compared PR curves",
                                     height=COMPARE_HEIGHT)
        self.reliability_chart = OffloopChart(spec=pn.bind(reliability_spec, ctrl.param.comparison),
                                              title="compared reliability curves", height=COMPARE_HEIGHT)
        chart_row = pn.Row(self.pr_chart, self.reliability_chart, sizing_mode="stretch_width",
                           visible=ctrl.param.comparison.rx.is_not(None))
        self._layout = pn.Card(
            pn.Row(choose, run, sizing_mode="stretch_width"), status, table, chart_row,
            title="Compare saved models", sizing_mode="stretch_width",
            css_classes=["training-compare-card"], stylesheets=[stylesheet("training")])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["CompareModels", "comparison_key", "comparison_table", "pr_spec", "reliability_spec"]
