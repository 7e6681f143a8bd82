"""The state shared by the sections of one browser session."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import param

from fraud_app import eda
from fraud_app.data import DatasetInfo, LazyDataset, is_loaded, load_transactions
from fraud_app.data import service as data_service
from fraud_app.eda import lazy as lazy_eda

log = logging.getLogger(__name__)


def shared_dataset_info(frame: pd.DataFrame | LazyDataset) -> DatasetInfo:
    """The :class:`DatasetInfo` of the shared data set, computed once per process (see :mod:`fraud_app.data.service`)."""
    return data_service.current_info(frame)


def prepare_dataset() -> None:
    """Open the data set and compute its EDA summary, once per process (slow the first time).

    In memory: the frame and :func:`fraud_app.eda.get_summary`. Above ``FRAUD_APP_MAX_IN_MEMORY_ROWS``:
    the :class:`LazyDataset` and :func:`fraud_app.eda.lazy.get_lazy_summary` (on the Dask cluster, or
    from the disk cache). Sessions call it in a worker thread before :meth:`AppState.load_dataset`,
    which then only publishes what is already in memory; the server's warm-up calls it at start.
    """
    data = data_service.current_dataset()
    if isinstance(data, LazyDataset):
        lazy_eda.get_lazy_summary(data)
    else:
        eda.get_summary(data)
    data_service.current_info(data)


def dataset_ready() -> bool:
    """True when the data set, its info and its summary are in memory (a session needs no worker thread)."""
    if data_service.dataset_mode() == "lazy":
        data = data_service.opened_lazy_dataset()
        return data is not None and lazy_eda.is_in_memory(data) and data_service.cached_info(data) is not None
    if not is_loaded():
        return False
    frame = load_transactions()
    return eda.is_cached(frame) and data_service.cached_info(frame) is not None


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
    lazy_dataset = param.ClassSelector(
        class_=LazyDataset, default=None, allow_None=True, constant=True,
        doc="The data set when it is above FRAUD_APP_MAX_IN_MEMORY_ROWS: a Dask DataFrame, never loaded whole "
            "(``dataset`` is then None). None otherwise.",
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

    @property
    def data(self) -> pd.DataFrame | LazyDataset | None:
        """The data set whichever way it is held: the frame, the :class:`LazyDataset`, or None before loading."""
        return self.dataset if self.dataset is not None else self.lazy_dataset

    def load_dataset(self) -> pd.DataFrame | LazyDataset:
        """Open the data set (once per process) and publish it on ``dataset`` (or ``lazy_dataset``).

        Calling it again when the same data set is already published changes nothing
        (no watcher fires).

        Raises
        ------
        fraud_app.data.DataNotFoundError, fraud_app.data.SchemaError
            after recording the message in ``dataset_error``.
        """
        try:
            data = data_service.current_dataset()
            info = shared_dataset_info(data)
        except Exception as exc:
            with param.edit_constant(self):
                self.dataset_error = str(exc)
            raise
        if data is self.data:
            return data
        lazy = isinstance(data, LazyDataset)
        with param.edit_constant(self):
            self.param.update(dataset_error=None, dataset_info=info, lazy_dataset=data if lazy else None,
                              dataset=None if lazy else data)
        log.debug("session state: data set %s (%s)", info.fingerprint, info.read_text)
        return data

    def set_training_result(self, result: Any) -> None:
        """Publish the latest training result of this session."""
        with param.edit_constant(self):
            self.training_result = result


__all__ = ["AppState", "dataset_ready", "prepare_dataset", "shared_dataset_info"]
