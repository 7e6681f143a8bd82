"""Batch scoring of an uploaded CSV: the format help (always shown), a template, every problem, the results.

The file is validated in one pass (:func:`fraud_app.inference.batch.parse_batch_csv`): every
problem is listed at once, capped, with the total. Nothing is saved unless every row is
valid; a valid file is scored and saved (source ``batch``) and shown highest P(fraud) first.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn
import param

from fraud_app.inference.batch import DELIMITERS, MAX_BATCH_ROWS
from fraud_app.ui.inference.controller import InferenceController, display_frame
from fraud_app.ui.inference.history import table_formatters
from fraud_app.ui.theme import stylesheet

BATCH_HELP = (
    f"**Format.** A CSV with a header row and the 29 model inputs `feature1` … `feature28` and `amount`, "
    f"in any order (Kaggle names `V1` … `V28`, `Amount` work too; `time`/`Time` and `is_fraud`/`Class` are "
    f"ignored), up to {MAX_BATCH_ROWS:,} rows. Comma-, semicolon- (with decimal commas, as European "
    f"spreadsheets export), tab- or `|`-separated. The whole file is checked first: **nothing is saved unless "
    f"every row is valid**; then every row is scored and saved (source *batch*)."
)


def problems_markdown(problems: list[str], total: int) -> str:
    """The refused file's problems as a Markdown list, with the total when it is capped."""
    if not problems:
        return ""
    head = f"**Nothing was saved.** {total} problem{'s' if total != 1 else ''} found"
    head += f" (the first {len(problems)} listed):" if total > len(problems) else ":"
    return head + "\n\n" + "\n".join(f"- {html.escape(p)}" for p in problems)


def batch_status(filename: str, frame: pd.DataFrame | None, result: pd.DataFrame | None, error: str | None,
                 model: str | None) -> str:
    """One line on the uploaded file: ready, scored, or refused."""
    name = html.escape(filename or "the file")
    if error:
        return f"**{name}** was refused."
    if frame is not None:
        delimiter = frame.attrs.get("delimiter", ",")
        read = f" (read as {DELIMITERS[delimiter]}-separated)" if delimiter != "," else ""
        return (f"**{name}**{read}: {len(frame):,} valid transactions, ready to be scored with "
                f"**{model or '—'}**.")
    if result is not None:
        frauds = int(result["is_fraud"].sum())
        return (f"**{name}**: scored {len(result):,} transactions with **{result['model'].iat[0]}** and saved "
                f"them as predictions #{int(result['id'].min())}–#{int(result['id'].max())} (source *batch*): "
                f"**{frauds:,} fraudulent** ({frauds / len(result):.2%}). Highest P(fraud) first.")
    return ""


class BatchView(pn.viewable.Viewer):
    """The Batch scoring card: help, template, upload, Score, problems, results and their download."""

    ctrl = param.ClassSelector(class_=InferenceController, doc="The tab's controller.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ctrl, css = self.ctrl, [stylesheet("inference")]
        self._table: pn.widgets.Tabulator | None = None
        self.file_input = pn.widgets.FileInput(accept=".csv,text/csv,text/plain", multiple=False, width=320,
                                               css_classes=["batch-file"])
        self.file_input.param.watch(self._on_file_chosen, "value")
        has_result = ctrl.param.batch_result.rx.is_not(None)
        self._layout = pn.Card(
            pn.pane.Markdown(BATCH_HELP, sizing_mode="stretch_width", css_classes=["batch-help"]),
            pn.Row(
                pn.widgets.FileDownload(callback=ctrl.template_file, filename="transactions-template.csv",
                                        label="⬇ Template CSV", width=170, css_classes=["batch-template"],
                                        stylesheets=css),
                self.file_input,
                pn.widgets.Button.from_param(
                    ctrl.param.score_batch, label="▶ Score and save batch", color="primary", width=220,
                    disabled=param.rx(ctrl.can_score_batch).rx.not_(), loading=ctrl.param.batch_busy,
                    css_classes=["score-batch"], stylesheets=css),
                pn.widgets.FileDownload(
                    callback=ctrl.scored_file, filename=ctrl.param.download_name, label="⬇ Download scored CSV",
                    color="success", visible=has_result, width=240, css_classes=["batch-download"],
                    stylesheets=css),
            ),
            pn.pane.Markdown(
                pn.bind(batch_status, ctrl.param.batch_filename, ctrl.param.batch_frame, ctrl.param.batch_result,
                        ctrl.param.batch_error, ctrl.param.model_name),
                sizing_mode="stretch_width", css_classes=["batch-status"]),
            pn.pane.Alert(pn.bind(problems_markdown, ctrl.param.batch_problems, ctrl.param.batch_problem_count),
                          alert_type="danger", visible=ctrl.param.batch_error.rx.is_not(None),
                          sizing_mode="stretch_width", css_classes=["batch-error"], stylesheets=css),
            # The table is built with the first result: a Tabulator built while hidden shows no rows.
            pn.panel(pn.bind(self._table_for, has_result)),
            title="Batch scoring (CSV)", collapsible=False, sizing_mode="stretch_width",
        )

    def _on_file_chosen(self, event: param.parameterized.Event) -> None:
        """Hand the chosen file to the controller (its name first, then its bytes)."""
        self.ctrl.param.update(batch_filename=self.file_input.filename or "", batch_csv=event.new)

    def _table_for(self, has_result: bool) -> pn.viewable.Viewable:
        if not has_result:
            return pn.Spacer(height=0)
        if self._table is None:
            self._table = pn.widgets.Tabulator(
                self.ctrl.param.batch_result.rx.pipe(lambda r: None if r is None else display_frame(r)), disabled=True, show_index=False,
                pagination="remote", page_size=10, sizing_mode="stretch_width", formatters=table_formatters(),
                css_classes=["batch-table"])
        return self._table

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["BATCH_HELP", "BatchView", "batch_status", "problems_markdown"]
