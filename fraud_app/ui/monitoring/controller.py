"""The Monitoring tab's controller: its state, outputs and actions, and no widgets.

Every database read (the report, the review queue and its explanations) runs in a worker
thread; only the short assignment of the results runs on the event loop. The periodic refresh
runs only while the tab is on screen (``visible``; the section keeps it up to date).
"""

from __future__ import annotations

import asyncio
import logging
from types import MappingProxyType
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import panel as pn
import param

from fraud_app.ui.base import notify_error
from fraud_app.ui.state import AppState

log = logging.getLogger(__name__)

#: The windows a user can pick, in hours.
WINDOWS = {"Last 24 hours": 24, "Last 7 days": 24 * 7, "Last 30 days": 24 * 30}
#: Columns of the review queue table.
QUEUE_COLUMNS = ["id", "created_at", "source", "fraud_probability", "verdict", "top_contributions"]
#: How many contributions the queue shows per prediction.
TOP_CONTRIBUTIONS = 3


def _explain(features: dict[str, float], model: str) -> str:
    from fraud_app.inference import explain

    frame = explain(features, model=model, top=TOP_CONTRIBUTIONS)
    return ", ".join(f"{row.feature} {row.contribution:+.3f}" for row in frame.itertuples())


def queue_frame(rows: list[dict[str, Any]], model: str) -> pd.DataFrame:
    """The review queue as a table (runs in the worker thread: each row's explanation is a model call)."""
    records = []
    for row in rows:
        try:
            top = _explain(row["features"], model)
        except Exception as exc:  # the model cannot explain (e.g. it was deleted): say so, keep the row
            top = f"(no explanation: {exc})"
        records.append({"id": row["id"], "created_at": row["created_at"][:19].replace("T", " "),
                        "source": row["source"], "fraud_probability": row["fraud_probability"],
                        "verdict": "Fraudulent" if row["is_fraud"] else "Clear", "top_contributions": top})
    return pd.DataFrame.from_records(records, columns=QUEUE_COLUMNS).astype(
        {"id": "int64", "fraud_probability": "float64"})


class MonitoringController(param.Parameterized):
    """State, outputs and actions of the Monitoring tab (tests drive it without a browser)."""

    state = param.ClassSelector(class_=AppState, doc="The session's shared state.")

    # -- inputs --------------------------------------------------------------------------------
    model = param.Selector(default=None, objects=[None], allow_None=True,
                           doc="The monitored model (None: the store's active model).")
    window = param.Selector(default="Last 7 days", objects=list(WINDOWS), doc="The time window, up to now.")
    bucket = param.Selector(default="hour", objects=["hour", "day"], doc="Volume buckets.")
    queue_size = param.Integer(default=10, bounds=(1, 100), doc="Predictions shown in the review queue.")
    refresh_period = param.Number(default=30.0, bounds=(1.0, 3600.0), constant=True,
                                  doc="Seconds between refreshes while the tab is on screen.")
    visible = param.Boolean(default=False, doc="Whether the tab is on screen (the periodic refresh runs only then).")

    # -- actions -------------------------------------------------------------------------------
    refresh = param.Event(doc="Read the report and the review queue again.")

    # -- outputs -------------------------------------------------------------------------------
    report = param.ClassSelector(class_=MappingProxyType, default=None, allow_None=True, constant=True,
                                 doc="The latest monitoring report (fraud_app.monitoring.report.monitoring_report), "
                                     "read-only. (A mapping proxy, not a dict: Param would compare every new "
                                     "report with the old one key by key, on the event loop.)")
    queue = param.DataFrame(default=None, allow_None=True, constant=True,
                            doc="Unlabeled predictions, highest fraud probability first, with their top contributions.")
    error = param.String(default=None, allow_None=True, constant=True,
                         doc="Why the last refresh failed (None when it worked).")
    loading = param.Boolean(default=False, constant=True, doc="A refresh is running.")
    updated_at = param.String(default="", constant=True, doc="When the report was last read (UTC, HH:MM:SS).")
    last_label = param.Dict(default=None, allow_None=True, constant=True,
                            doc="The prediction row last labeled in this session.")

    def __init__(self, **params: Any) -> None:
        if params.get("state") is None:
            params["state"] = AppState()
        super().__init__(**params)
        self._seq = 0
        self._queue_model: str | None = None

    # -- refreshing ----------------------------------------------------------------------------
    def _read(self, model: str | None, hours: int, bucket: str, size: int
              ) -> tuple[list[str], dict | None, pd.DataFrame | None]:
        """(model names, the report, the queue) read in the worker thread; the report or the queue is None
        when it equals the one on screen, so an unchanged refresh costs the event loop nothing."""
        from fraud_app.models.store import list_models
        from fraud_app.monitoring.report import monitoring_report, review_queue

        names = [meta["name"] for meta in list_models()]
        until = datetime.now(UTC)
        report = monitoring_report(model, since=until - timedelta(hours=hours), until=until, bucket=bucket)
        rows = review_queue(report["model"], limit=size)
        shown, shown_queue = self.report, self.queue
        if shown_queue is not None and [r["id"] for r in rows] == shown_queue["id"].tolist() \
                and self._queue_model == report["model"]:
            queue = None  # the same predictions: no explanation to compute, nothing to send
        else:
            queue = queue_frame(rows, report["model"])
        self._queue_model = report["model"]
        same = shown is not None and {k: v for k, v in report.items() if k not in ("since", "until")} == \
            {k: v for k, v in shown.items() if k not in ("since", "until")}
        return names, None if same else report, queue

    async def refresh_now(self) -> None:
        """Read the report and the queue in a worker thread, then publish them."""
        self._seq += 1
        seq = self._seq
        with param.edit_constant(self):
            self.loading = True
        try:
            names, report, queue = await asyncio.to_thread(self._read, self.model, WINDOWS[self.window],
                                                           self.bucket, self.queue_size)
        except Exception as exc:
            if seq == self._seq:
                message = str(exc)
                if "no model is saved yet" not in message:
                    log.warning("monitoring refresh failed: %s", message)
                with param.edit_constant(self):
                    self.param.update(error=message, report=None, queue=None)
            return
        finally:
            if seq == self._seq:
                with param.edit_constant(self):
                    self.loading = False
        if seq != self._seq:  # a newer refresh started meanwhile: let it win
            return
        if self.param.model.objects != [None, *names]:
            self.param.model.objects = [None, *names]
        # Each output in its own loop callback, so no single one holds the loop long.
        with param.edit_constant(self):
            self.param.update(error=None, updated_at=datetime.now(UTC).strftime("%H:%M:%S"))
        if report is not None:
            await asyncio.sleep(0)
            with param.edit_constant(self):
                self.report = MappingProxyType(report)
        if queue is not None:
            await asyncio.sleep(0)
            with param.edit_constant(self):
                self.queue = queue

    async def label(self, prediction_id: int, label: str | None) -> dict[str, Any] | None:
        """Set the label of one prediction (in a worker thread), then refresh; returns the updated row."""
        from fraud_app.storage import set_label

        user = pn.state.user if pn.state.curdoc is not None else None
        try:
            row = await asyncio.to_thread(set_label, int(prediction_id), label, f"ui ({user})" if user else "ui")
        except Exception as exc:
            notify_error(f"Could not label prediction {prediction_id}", exc)
            return None
        if row is None:
            notify_error(f"Prediction {prediction_id} no longer exists")
            return None
        with param.edit_constant(self):
            self.last_label = row
        self.state.param.trigger("predictions_changed")  # the Inference tab's table shows the label
        await self.refresh_now()
        return row

    @param.depends("refresh", "model", "window", "bucket", "queue_size", watch=True)
    async def _on_inputs(self) -> None:
        await self.refresh_now()

    @param.depends("visible", watch=True)
    async def _on_visible(self) -> None:
        if self.visible:
            await self.refresh_now()


__all__ = ["QUEUE_COLUMNS", "WINDOWS", "MonitoringController", "queue_frame"]
