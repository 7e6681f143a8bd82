"""The one prediction service used by the Inference tab and the REST API (no Panel).

``score_and_save`` validates, scores with the named (or active) model and saves every
result in one transaction. Models are loaded once per process and kept, keyed by
``(name, version)``; a cheap ``stat`` of the model's ``metadata.json`` (and of the
models folder and ``active.json`` for the active model) notices a re-save, a new
threshold, a deletion or a change of the active model, also by another process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.config import get_settings
from fraud_app.data import MODEL_FEATURES
from fraud_app.inference.validation import (
    MAX_BATCH,
    PredictionInputError,
    check_value,
    feature_bounds,
    parse_request,
    row_to_array,
    transactions_to_array,
)
from fraud_app.models import (
    FraudModel,
    InvalidModelNameError,
    ModelNotFoundError,
    get_active_model_name,
    load_model,
    validate_model_name,
)
from fraud_app.models.errors import ModelLoadError
from fraud_app.models.store import ACTIVE_FILE, METADATA_FILE, read_metadata, warn_once
from fraud_app.storage import SOURCES, insert_predictions

log = logging.getLogger(__name__)

#: Even when no file looks changed, re-read a cached model's version at least this often (seconds).
REVALIDATE_S = 2.0


class NoModelError(LookupError):
    """No model was named and none is saved (train and save one first)."""


# -- the model cache ------------------------------------------------------------------------------

_MODELS_DIR_ENV = ("FRAUD_APP_MODELS_DIR", "FRAUD_APP_OUTPUT_DIR", "FRAUD_APP_HOME")
_models_dir_cache: tuple[tuple, Path, str] | None = None


def _models_root() -> tuple[Path, str]:
    """The models folder (as Path and str), re-derived only when a relevant variable changes."""
    global _models_dir_cache
    environ = os.environ
    key = (environ.get("FRAUD_APP_MODELS_DIR"), environ.get("FRAUD_APP_OUTPUT_DIR"), environ.get("FRAUD_APP_HOME"),
           environ.get("FRAUD_APP_MODELS_URL"))
    cached = _models_dir_cache
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    from fraud_app.models.store import models_dir as store_models_dir

    path = store_models_dir()  # FRAUD_APP_MODELS_URL (shared store) or FRAUD_APP_MODELS_DIR
    _models_dir_cache = (key, path, str(path))
    return path, str(path)


def models_dir() -> Path:
    """The models folder (``FRAUD_APP_MODELS_DIR``, default ``<output>/models``)."""
    return _models_root()[0]


def _stat_key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_nlink)


@dataclass
class _Entry:
    model: FraudModel
    signature: tuple
    checked: float


class _ModelCache:
    """Loaded models keyed by (name, version), one per process (reset after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._entries: dict[str, _Entry] = {}
        #: Models that failed to load, with the signature they failed at: not retried until it changes.
        self._failed: dict[str, tuple[tuple, ModelLoadError]] = {}
        self._active: tuple[tuple, str | None, float] | None = None

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked: never share native model state with the parent
            self._entries.clear()
            self._failed.clear()
            self._active = None
            self._pid = os.getpid()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._failed.clear()
            self._active = None

    def active_name(self) -> str | None:
        root = _models_root()[1]
        signature = (root, _stat_key(root), _stat_key(os.path.join(root, ACTIVE_FILE)))
        now = time.monotonic()
        cached = self._active
        if cached is not None and cached[0] == signature and now - cached[2] < REVALIDATE_S \
                and self._pid == os.getpid():
            return cached[1]
        with self._lock:
            self._check_pid()
            name = get_active_model_name()
            self._active = (signature, name, now)
            return name

    def get(self, name: str) -> FraudModel:
        meta_path = os.path.join(_models_root()[1], name, METADATA_FILE)
        signature = (meta_path, _stat_key(meta_path))
        if signature[1] is None:
            raise ModelNotFoundError(f"no saved model named {name!r}")
        now = time.monotonic()
        entry = self._entries.get(name)
        if entry is not None and entry.signature == signature and now - entry.checked < REVALIDATE_S \
                and self._pid == os.getpid():
            return entry.model
        with self._lock:
            self._check_pid()
            entry = self._entries.get(name)
            if entry is not None and entry.signature == signature:
                if now - entry.checked < REVALIDATE_S:
                    return entry.model
                if read_metadata(name).get("version") == entry.model.version:
                    entry.checked = now
                    return entry.model
            failed = self._failed.get(name)
            if failed is not None and failed[0] == signature:
                raise failed[1]
            try:
                model = load_model(name)
                _warm_up(model)
            except ModelLoadError as exc:
                error = ModelLoadError(f"model {name!r} cannot be loaded: {_strip_name(str(exc), name)}")
                self._failed[name] = (signature, error)
                warn_once(os.path.dirname(meta_path), str(exc))
                raise error from None
            self._failed.pop(name, None)
            self._entries[name] = _Entry(model, signature, time.monotonic())
            log.info("loaded model %r version %s", name, model.version)
            return model


def _strip_name(message: str, name: str) -> str:
    prefix = f"model {name!r}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _warm_up(model: FraudModel) -> None:
    """Score one row so that lazily built native state exists before the first request."""
    _predict(model, np.zeros((1, len(MODEL_FEATURES))))


_cache = _ModelCache()


def clear_model_cache() -> None:
    """Forget every loaded model (the next call loads again)."""
    _cache.clear()


def resolve_model_name(name: str | None = None) -> str:
    """``name`` validated, or the active model's name.

    Raises
    ------
    InvalidModelNameError, NoModelError
    """
    if name is not None:
        return validate_model_name(name)
    active = _cache.active_name()
    if active is None:
        raise NoModelError("no saved model yet: train and save a model first (Training tab or "
                           "`python -m fraud_app train`)")
    return active


def get_model(name: str | None = None) -> FraudModel:
    """The saved model ``name`` (default: the active one), loaded once per process and version.

    Raises
    ------
    InvalidModelNameError : a malformed name.
    ModelNotFoundError : no model of that name.
    NoModelError : no name given and no model saved.
    """
    resolved = resolve_model_name(name)
    try:
        return _cache.get(resolved)
    except ModelNotFoundError:
        if name is None:  # the active model vanished between resolving and loading: try once more
            _cache.clear()
            return _cache.get(resolve_model_name(None))
        raise


def active_model_info() -> dict[str, Any] | None:
    """Name, kind, version and threshold of the active model, without scoring anything."""
    try:
        model = get_model()
    except (NoModelError, ModelNotFoundError):
        return None
    return {"name": model.name, "kind": model.kind, "version": model.version, "threshold": model.threshold}


# -- scoring --------------------------------------------------------------------------------------

def _predict(model: FraudModel, values: np.ndarray) -> np.ndarray:
    """P(fraud) for an already validated ``(n, 29)`` float array in MODEL_FEATURES order.

    ``values`` passed :func:`~fraud_app.inference.validation.row_to_array` (finite floats in
    MODEL_FEATURES order), which is exactly what :meth:`FraudModel.predict_proba_array` takes, so
    the per-column DataFrame checks of ``predict_proba`` (about 1.5 ms for one row with pandas 3)
    are skipped on this hot path. It applies the model's calibration, like ``predict_proba``.
    """
    model.require_fitted()
    scores = model.predict_proba_array(values)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != values.shape[0]:
        raise RuntimeError(f"model returned {scores.shape[0]} scores for {values.shape[0]} rows")
    if not (scores.min() >= 0.0 and scores.max() <= 1.0):  # also catches NaN
        if np.isnan(scores).any():
            raise RuntimeError("the model returned NaN scores")
        scores = np.clip(scores, 0.0, 1.0)
    return scores


def _frame_to_array(frame: pd.DataFrame, max_rows: int) -> np.ndarray:
    missing = [c for c in MODEL_FEATURES if c not in frame.columns]
    if missing:
        raise PredictionInputError(f"missing column {missing[0]}", missing[0])
    if len(frame) == 0:
        raise PredictionInputError("the frame holds no transactions", "transactions")
    if len(frame) > max_rows:
        raise PredictionInputError(f"{len(frame):,} transactions; the limit is {max_rows:,} per call",
                                   "transactions")
    for column in MODEL_FEATURES:
        dtype = frame[column].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise PredictionInputError(f"column {column} must be numeric, got dtype {dtype}", column)
    values = frame[MODEL_FEATURES].to_numpy(dtype=np.float64, copy=True)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise PredictionInputError(f"transactions[{row}].{MODEL_FEATURES[col]} must be a finite number",
                                   f"transactions[{row}].{MODEL_FEATURES[col]}")
    low = np.array([feature_bounds(name)[0] for name in MODEL_FEATURES])
    high = np.array([feature_bounds(name)[1] for name in MODEL_FEATURES])
    out = (values < low) | (values > high)
    if out.any():
        row, col = (int(i) for i in np.argwhere(out)[0])
        check_value(MODEL_FEATURES[col], float(values[row, col]), f"transactions[{row}].")
    return values


def to_array(transactions: Any, *, max_rows: int = MAX_BATCH) -> tuple[np.ndarray, str | None]:
    """Validate transactions into an ``(n, 29)`` array; return it and a ``model`` key found in a single row."""
    if isinstance(transactions, pd.DataFrame):
        return _frame_to_array(transactions, max_rows), None
    if isinstance(transactions, Mapping) and "transactions" in transactions:
        values, model, _ = parse_request(transactions)
        return values, model
    if isinstance(transactions, Mapping):
        values = np.empty((1, len(MODEL_FEATURES)), dtype=np.float64)
        row_to_array(transactions, values[0], None, allow_model_key=True)
        model = transactions.get("model")
        if model is not None and not isinstance(model, str):
            raise PredictionInputError("model must be a string (a saved model's name)", "model")
        return values, model
    if isinstance(transactions, np.ndarray):
        raise PredictionInputError("pass transactions as mappings or a DataFrame with named columns",
                                   "transactions")
    if isinstance(transactions, Sequence) and len(transactions) > max_rows:
        raise PredictionInputError(f"transactions holds {len(transactions):,} transactions; the limit is "
                                   f"{max_rows:,} per request", "transactions")
    return transactions_to_array(transactions), None


def score_array(values: np.ndarray, model: str | None = None) -> tuple[FraudModel, np.ndarray, np.ndarray]:
    """Score a validated array: (the model used, P(fraud), is_fraud)."""
    fitted = get_model(model)
    scores = _predict(fitted, values)
    return fitted, scores, scores >= fitted.threshold


def save_scores(fitted: FraudModel, values: np.ndarray, scores: np.ndarray, source: str,
                deadline: float | None = None) -> list[dict[str, Any]]:
    """Store scored rows in one transaction and return them as stored.

    ``deadline`` (``time.monotonic()``): give up waiting for a database lock then (see
    :func:`fraud_app.storage.insert_predictions`); default: now plus the busy timeout.
    """
    return insert_predictions(build_rows(fitted, values, scores, source), deadline=deadline)


def build_rows(fitted: FraudModel, values: np.ndarray, scores: np.ndarray, source: str) -> list[dict[str, Any]]:
    """The rows :func:`fraud_app.storage.insert_predictions` stores for scored ``values``."""
    threshold = float(fitted.threshold)
    name, version = fitted.name, fitted.version
    return [
        {
            "model": name,
            "model_version": version,
            "features": dict(zip(MODEL_FEATURES, row, strict=True)),
            "fraud_probability": score,
            "is_fraud": score >= threshold,
            "threshold": threshold,
            "source": source,
        }
        for row, score in zip(values.tolist(), scores.tolist(), strict=True)
    ]


def score_and_save(transactions: Mapping | Sequence[Mapping] | pd.DataFrame, model: str | None = None,
                   source: str = "api") -> list[dict[str, Any]]:
    """Validate, score with the named (or active) model, save atomically, return the stored rows.

    Parameters
    ----------
    transactions : one mapping of the 29 inputs (it may also hold ``"model"``), a list of up to
        10,000 such mappings, or a DataFrame holding the 29 input columns (other columns ignored).
    model : a saved model's name; default: the active model.
    source : ``"ui"``, ``"api"`` or ``"batch"``.

    Returns
    -------
    list of dict
        one per transaction, in order: ``id``, ``created_at``, ``model``, ``model_version``,
        ``fraud_probability``, ``is_fraud``, ``threshold``, ``source``, ``features``.

    Raises
    ------
    PredictionInputError : invalid input; ``.field`` names the field. Nothing is saved.
    InvalidModelNameError : a malformed model name.
    ModelNotFoundError : no model of that name. NoModelError : no model saved at all.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    values, row_model = to_array(transactions)
    if row_model is not None and model is not None and row_model != model:
        raise PredictionInputError(f"two different models requested: {row_model!r} and {model!r}", "model")
    fitted, scores, _ = score_array(values, model or row_model)
    return save_scores(fitted, values, scores, source)


def score(transactions: Mapping | Sequence[Mapping] | pd.DataFrame, model: str | None = None) -> list[dict[str, Any]]:
    """Validate and score like :func:`score_and_save`, but save nothing (a what-if).

    Returns
    -------
    list of dict
        one per transaction, in order: ``model``, ``model_version``, ``fraud_probability``,
        ``is_fraud``, ``threshold``, ``features`` (no ``id``, ``created_at`` or ``source``:
        nothing was stored).

    Raises
    ------
    The same errors as :func:`score_and_save`.
    """
    values, row_model = to_array(transactions)
    if row_model is not None and model is not None and row_model != model:
        raise PredictionInputError(f"two different models requested: {row_model!r} and {model!r}", "model")
    fitted, scores, _ = score_array(values, model or row_model)
    threshold = float(fitted.threshold)
    return [
        {"model": fitted.name, "model_version": fitted.version, "fraud_probability": value,
         "is_fraud": value >= threshold, "threshold": threshold, "features": dict(zip(MODEL_FEATURES, row, strict=True))}
        for row, value in zip(values.tolist(), scores.tolist(), strict=True)
    ]


def explain(transaction: Mapping, model: str | None = None, top: int = 10,
            units: str = "probability") -> pd.DataFrame:
    """The features that moved one transaction's P(fraud) the most.

    Returns a frame with columns ``feature``, ``value``, ``contribution`` (positive = towards
    fraud), the ``top`` largest by absolute contribution first. ``units="probability"`` (default):
    contributions add up to P(fraud) minus the model's ``expected_value("probability")``.
    ``units="log_odds"``: they add up to logit(P(fraud)) minus ``expected_value("log_odds")``,
    readable for clear transactions too (see ``FraudModel.contributions``).
    """
    values, row_model = to_array(transaction)
    if len(values) != 1:
        raise PredictionInputError("explain takes exactly one transaction", "transactions")
    fitted = get_model(model or row_model)
    frame = pd.DataFrame(values, columns=list(MODEL_FEATURES))
    contributions = fitted.contributions(frame, units=units).iloc[0].to_numpy(dtype=np.float64)
    order = np.argsort(-np.abs(contributions), kind="stable")[: max(0, int(top))]
    return pd.DataFrame({
        "feature": [MODEL_FEATURES[i] for i in order],
        "value": values[0, order],
        "contribution": contributions[order],
    })


__all__ = [
    "MAX_BATCH", "InvalidModelNameError", "ModelNotFoundError", "NoModelError", "PredictionInputError",
    "active_model_info", "clear_model_cache", "explain", "get_model", "resolve_model_name", "save_scores",
    "score", "score_and_save", "score_array", "to_array",
]
