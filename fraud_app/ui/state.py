"""The state shared by the sections of one browser session."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pandas as pd
import param

from fraud_app import eda
from fraud_app.data import DatasetInfo, dataset_info, is_loaded, load_transactions

log = logging.getLogger(__name__)

_info_lock = threading.Lock()
_info: dict[str, DatasetInfo] = {}


def shared_dataset_info(frame: pd.DataFrame) -> DatasetInfo:
    """:func:`fraud_app.data.dataset_info` of the shared frame, computed once per process."""
    key = str(frame.attrs.get("fingerprint") or id(frame))
    with _info_lock:
        info = _info.get(key)
        if info is None:
            info = _info[key] = dataset_info(frame)
        return info


def prepare_dataset() -> None:
    """Load the data set and compute its EDA summary, once per process (slow the first time).

    Sessions call it in a worker thread before :meth:`AppState.load_dataset`, which then
    only publishes what is already in memory; the server's warm-up calls it at start.
    """
    frame = load_transactions()
    shared_dataset_info(frame)
    eda.get_summary(frame)


def dataset_ready() -> bool:
    """True when the data set and its summary are in memory (a session needs no worker thread)."""
    if not is_loaded():
        return False
    return eda.is_cached(load_transactions())


class AppState(param.Parameterized):
    """What several tabs of one session use: the data set, the active model, the latest results.

    One instance per session is handed to every :class:`~fraud_app.ui.base.Section`
    as ``state``. The data set itself is the process-wide cached frame from
    :func:`fraud_app.data.load_transactions` (shared and read-only); only the
    handle lives here. Outputs are ``constant`` and written with ``param.edit_constant``
    through the methods below.
    """

    dataset = param.DataFrame(
        default=None, allow_None=True, constant=True,
        doc="The transactions frame (the process-wide cached one; read-only). None until loaded.",
    )
    dataset_info = param.ClassSelector(
        class_=DatasetInfo, default=None, allow_None=True, constant=True,
        doc="Rows, frauds, fraud rate, time span, memory, source and fingerprint of the data set.",
    )
    dataset_error = param.String(
        default=None, allow_None=True, constant=True,
        doc="Why the data set could not be loaded (None when it loaded, or before the first attempt).",
    )
    active_model = param.String(
        default=None, allow_None=True,
        doc="Name of the model the Inference tab scores with (None: the store's active model).",
    )
    training_result = param.Parameter(
        default=None, constant=True,
        doc="The latest fraud_app.training.TrainingResult of this session (None before any run).",
    )
    models_changed = param.Event(
        doc="Fired after a model was saved, deleted or made active; model lists refresh on it.",
    )
    predictions_changed = param.Event(
        doc="Fired after predictions were saved; prediction tables refresh on it.",
    )

    def load_dataset(self) -> pd.DataFrame:
        """Load the data set (cached once per process) and publish it on ``dataset``.

        Calling it again when the same frame is already published changes nothing
        (no watcher fires).

        Raises
        ------
        fraud_app.data.DataNotFoundError, fraud_app.data.SchemaError
            after recording the message in ``dataset_error``.
        """
        try:
            frame = load_transactions()
            info = shared_dataset_info(frame)
        except Exception as exc:
            with param.edit_constant(self):
                self.dataset_error = str(exc)
            raise
        if frame is self.dataset:
            return frame
        with param.edit_constant(self):
            self.param.update(dataset_error=None, dataset_info=info, dataset=frame)
        log.debug("session state: data set %s (%d rows)", info.fingerprint, info.rows)
        return frame

    def set_training_result(self, result: Any) -> None:
        """Publish the latest training result of this session."""
        with param.edit_constant(self):
            self.training_result = result


__all__ = ["AppState", "dataset_ready", "prepare_dataset", "shared_dataset_info"]
