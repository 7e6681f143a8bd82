"""The model abstraction: :class:`FraudModel`, the kind registry and :func:`create`.

A kind is one subclass of :class:`FraudModel` decorated with :func:`register_kind`.
Subclasses implement four hooks:

``_fit_split(X_train, y_train, X_val, y_val, reporter)``
    fit the estimator(s) on the training part; the validation part may be used for
    early stopping. ``reporter`` forwards progress and checks for cancellation.
``_predict_scores(X)``
    P(fraud) for a validated float array with the columns of :data:`MODEL_FEATURES`.
``_contributions(X)``
    per-feature contributions in probability units, shape ``(n, 29)``.
``_save_artifacts(folder)`` / ``_load_artifacts(folder)``
    write/read the fitted estimator in a format that never runs code when read.

The base class does the rest: input checks, the stratified validation split, the
F1-maximising threshold, metadata, and saving through the model store.
"""

from __future__ import annotations

import abc
import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fraud_app.data import MODEL_FEATURES, SchemaError, fingerprint
from fraud_app.models.errors import NotFittedError, TrainingCancelled, UnknownModelKindError

log = logging.getLogger(__name__)

#: Share of the data given to ``fit`` that is held out to choose the threshold (and stop early).
VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    Attributes
    ----------
    stage : short stage name. The pipeline reports, in order: ``"prepare"``, ``"split"``,
        ``"validation_split"``, ``"fit"`` (once per boosting round / chunk of trees),
        ``"threshold"``, ``"fitted"``, ``"evaluate"``, ``"save"`` (when saving), ``"done"``.
    fraction : overall progress in [0, 1].
    message : a human-readable line.
    iteration, total : the boosting round / tree count when the stage iterates, else None.
    """

    stage: str
    fraction: float
    message: str
    iteration: int | None = None
    total: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


ProgressCallback = Callable[[ProgressEvent], None]
CancelToken = threading.Event | Callable[[], bool] | None


def is_cancelled(cancel: CancelToken) -> bool:
    """True when ``cancel`` (a ``threading.Event`` or a zero-argument callable) is set."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class Reporter:
    """Maps a model's own progress (0..1) into a slice of the caller's range and checks cancellation."""

    def __init__(self, progress: ProgressCallback | None = None, cancel: CancelToken = None,
                 start: float = 0.0, end: float = 1.0) -> None:
        self.progress = progress
        self.cancel = cancel
        self.start = float(start)
        self.end = float(end)

    def check(self) -> None:
        """Raise :class:`TrainingCancelled` if cancellation was requested."""
        if is_cancelled(self.cancel):
            raise TrainingCancelled("training was cancelled")

    def __call__(self, stage: str, fraction: float, message: str,
                 iteration: int | None = None, total: int | None = None) -> None:
        """Report ``fraction`` of this reporter's slice, then check cancellation."""
        if self.progress is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
            overall = self.start + (self.end - self.start) * fraction
            self.progress(ProgressEvent(stage, round(overall, 6), message, iteration, total))
        self.check()

    def sub(self, start: float, end: float) -> Reporter:
        """A reporter for the part ``[start, end]`` of this one's slice."""
        span = self.end - self.start
        return Reporter(self.progress, self.cancel, self.start + span * start, self.start + span * end)


# -- input checks ---------------------------------------------------------------------------------

def check_features(X: Any) -> np.ndarray:
    """Return the 29 model inputs of ``X`` as a float64 array, in :data:`MODEL_FEATURES` order.

    Raises
    ------
    SchemaError
        when ``X`` is not a DataFrame, lacks an input, has a non-numeric input, or holds NaN/inf.
    """
    if not isinstance(X, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame with the model inputs, got {type(X).__name__}")
    missing = [c for c in MODEL_FEATURES if c not in X.columns]
    if missing:
        raise SchemaError(f"missing model input(s): {', '.join(missing)}")
    frame = X[MODEL_FEATURES]
    bad = [c for c in MODEL_FEATURES if not (pd.api.types.is_numeric_dtype(frame[c])
                                             and not pd.api.types.is_bool_dtype(frame[c]))]
    if bad:
        raise SchemaError(f"non-numeric model input(s): {', '.join(bad)}")
    values = frame.to_numpy(dtype=np.float64, copy=True)
    if not np.isfinite(values).all():
        cols = [MODEL_FEATURES[i] for i in np.flatnonzero(~np.isfinite(values).all(axis=0))]
        raise SchemaError(f"NaN or infinite values in model input(s): {', '.join(cols)}")
    return values


def check_target(y: Any, n_rows: int) -> np.ndarray:
    """Return ``y`` as an int8 array of 0/1 with both classes present."""
    values = np.asarray(y)
    if values.ndim != 1 or len(values) != n_rows:
        raise ValueError(f"y must be one label per row ({n_rows}), got shape {values.shape}")
    if not np.isin(values, (0, 1)).all():
        raise ValueError("y must hold only 0 (legitimate) and 1 (fraud)")
    values = values.astype(np.int8)
    n_fraud = int(values.sum())
    if n_fraud < 4 or n_rows - n_fraud < 4:
        raise ValueError(f"need at least 4 frauds and 4 legitimate rows to fit, got {n_fraud} and {n_rows - n_fraud}")
    return values


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold that maximises F1 of ``scores >= threshold`` on ``y_true``.

    Ties go to the highest threshold. The returned value lies half-way between the
    lowest score still flagged and the next lower distinct score, clipped into (0, 1).
    """
    y_true = np.asarray(y_true).astype(np.int8)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s_sorted = scores[order]
    y_sorted = y_true[order]
    # Cut only at the end of each run of equal scores.
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_run]
    flagged = np.arange(1, len(scores) + 1)[last_of_run]
    positives = int(y_true.sum())
    f1 = 2 * tp / (flagged + positives)
    best = int(np.argmax(f1))  # first max = highest threshold among ties
    cut_scores = s_sorted[last_of_run]
    low = cut_scores[best]
    below = cut_scores[best + 1] if best + 1 < len(cut_scores) else 0.0
    threshold = (low + below) / 2.0 if below < low else low
    return float(np.clip(threshold, 1e-6, 1 - 1e-6))


def stratified_split(n_rows: int, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out) of a stratified, seeded split holding out ``fraction``."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n_rows)
    train, held = train_test_split(idx, test_size=fraction, stratify=y, random_state=seed)
    return np.sort(train), np.sort(held)


# -- the base class -------------------------------------------------------------------------------

class FraudModel(abc.ABC):
    """A fraud classifier on the 29 model inputs, with its own decision threshold.

    Attributes
    ----------
    name : the saved name, or None until saved/loaded.
    kind : the registered kind name.
    params : the hyper-parameters (JSON-serialisable).
    features : the model inputs, always :data:`MODEL_FEATURES`.
    threshold : P(fraud) at or above which ``predict`` says fraud; chosen in ``fit``.
    metrics : evaluation metrics (filled by the training pipeline).
    trained_at : ISO-8601 UTC time of the fit.
    data_fingerprint : fingerprint of the data it was trained on.
    version : a new id each time the model is saved.
    """

    kind: ClassVar[str] = ""
    #: Default hyper-parameters; ``create(kind, **params)`` accepts exactly these keys.
    default_params: ClassVar[dict[str, Any]] = {}
    #: Format of the saved estimator (for the README / metadata).
    file_format: ClassVar[str] = ""
    #: The key tunables shown by the Training tab: name -> {"default", "bounds" or "objects", "doc"}.
    hyperparameters: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            raise ValueError(f"unknown parameter(s) for {self.kind!r}: {', '.join(unknown)}; "
                             f"expected some of: {', '.join(sorted(self.default_params))}")
        merged = copy.deepcopy(self.default_params)
        merged.update(params)
        self.params: dict[str, Any] = self._validate_params(merged)
        self.name: str | None = None
        self.features: list[str] = list(MODEL_FEATURES)
        self.threshold: float = 0.5
        self.metrics: dict[str, Any] = {}
        self.trained_at: str | None = None
        self.data_fingerprint: str | None = None
        self.version: str | None = None
        self.saved_at: str | None = None
        self.fit_info: dict[str, Any] = {}
        self._fitted = False

    # -- hooks -------------------------------------------------------------------------------
    def _validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check/normalise the merged parameters; raise ValueError naming a bad one."""
        return params

    @abc.abstractmethod
    def _fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                   reporter: Reporter) -> None:
        """Fit on the training part (the validation part may serve early stopping)."""

    @abc.abstractmethod
    def _predict_scores(self, X: np.ndarray) -> np.ndarray:
        """P(fraud) for a checked float array."""

    @abc.abstractmethod
    def _contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-feature contributions in probability units, shape (n, 29), and the expected value."""

    @abc.abstractmethod
    def _save_artifacts(self, folder: Path) -> None:
        """Write the fitted estimator into ``folder`` (no pickle)."""

    @abc.abstractmethod
    def _load_artifacts(self, folder: Path) -> None:
        """Read the estimator written by :meth:`_save_artifacts` without running code from it."""

    # -- public API --------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return int(self.params.get("random_state", 0) or 0)

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def fit(self, X: pd.DataFrame, y: Any, *, progress: ProgressCallback | None = None,
            cancel: CancelToken = None) -> FraudModel:
        """Fit on ``X``/``y`` and choose the threshold on a stratified validation split of them.

        ``VALIDATION_FRACTION`` (20 %) of the rows, stratified and seeded by ``random_state``,
        are held out; the estimator is fitted on the rest (early stopping, if any, watches the
        held-out part) and the threshold maximising F1 on the held-out part is kept. The
        model is *not* refitted on all rows, so the threshold matches the model that uses it.

        Raises
        ------
        SchemaError : ``X`` lacks a model input or holds non-numeric/NaN values.
        TrainingCancelled : ``cancel`` was set between stages or iterations.
        """
        reporter = Reporter(progress, cancel)
        self._fit_with(X, y, reporter)
        return self

    def _fit_with(self, X: pd.DataFrame, y: Any, reporter: Reporter) -> None:
        values = check_features(X)
        labels = check_target(y.to_numpy() if isinstance(y, pd.Series) else y, len(values))
        reporter("validation_split", 0.0,
                 f"holding out {VALIDATION_FRACTION:.0%} of the training rows for validation")
        train, val = stratified_split(len(values), labels, VALIDATION_FRACTION, self.seed)
        started = time.perf_counter()
        self._fitted = False
        self.fit_split(values[train], labels[train], values[val], labels[val], reporter.sub(0.02, 0.97))
        reporter("threshold", 0.98, "choosing the threshold on the validation split")
        frame = X[MODEL_FEATURES].copy()
        frame["is_fraud"] = labels
        self.data_fingerprint = fingerprint(frame)
        self.fit_info.update({
            "n_rows": int(len(values)), "n_fraud": int(labels.sum()),
            "n_train": int(len(train)), "n_validation": int(len(val)),
            "n_validation_fraud": int(labels[val].sum()),
            "fit_seconds": round(time.perf_counter() - started, 3),
        })
        reporter("fitted", 1.0, f"fitted; threshold {self.threshold:.4f}")

    def fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                  reporter: Reporter | None = None, allow_refit: bool = True) -> FraudModel:
        """Fit on an explicit train/validation split of checked arrays and set the threshold.

        Used by :meth:`fit` and by the aggregator, whose members share its split. When the
        kind supports it and ``params["refit"]`` is true, the estimator is refitted on
        train + validation *after* the threshold was chosen (``allow_refit=False`` defers that).
        """
        reporter = reporter or Reporter()
        self._fit_split(X_train, y_train, X_val, y_val, reporter)
        self._fitted = True
        val_scores = self._predict_scores(X_val)
        self.threshold = best_f1_threshold(y_val, val_scores)
        self.trained_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.version = None
        self.fit_info["validation_f1"] = _f1(y_val, val_scores >= self.threshold)
        if allow_refit and self.params.get("refit"):
            self.refit(np.vstack([X_train, X_val]), np.concatenate([y_train, y_val]), reporter)
        return self

    def refit(self, X: np.ndarray, y: np.ndarray, reporter: Reporter | None = None) -> None:
        """Refit the estimator on all of ``X``/``y``, keeping the threshold (kinds with ``refit``)."""
        reporter = reporter or Reporter()
        reporter("refit", 1.0, f"refitting on all {len(X):,} rows, keeping the threshold")
        self._refit(X, y, reporter)
        self.fit_info["refitted_on"] = int(len(X))

    def _refit(self, X: np.ndarray, y: np.ndarray, reporter: Reporter) -> None:
        raise NotImplementedError(f"the {self.kind} kind cannot refit")

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"the {self.kind} model is not fitted; call fit() or load a saved model")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(fraud) for each row of ``X``, shape ``(n,)``."""
        self._require_fitted()
        return np.asarray(self._predict_scores(check_features(X)), dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 for each row: 1 when P(fraud) >= ``threshold``."""
        return (self.predict_proba(X) >= self.threshold).astype(np.int8)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-feature contributions to each row's P(fraud), in probability units.

        One row per row of ``X``, one column per model input (:data:`MODEL_FEATURES`);
        positive values push towards fraud. For every kind a row's contributions add
        up to ``predict_proba(row) - expected_value``.
        """
        self._require_fitted()
        values, _ = self._contributions(check_features(X))
        return pd.DataFrame(values, columns=list(MODEL_FEATURES), index=X.index)

    def expected_value(self) -> float:
        """The P(fraud) that contributions are measured from (the model's base value)."""
        self._require_fitted()
        return float(self._contributions(np.zeros((1, len(self.features))))[1])

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable facts about the model (also what ``metadata.json`` holds)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "params": copy.deepcopy(self.params),
            "features": list(self.features),
            "threshold": float(self.threshold),
            "metrics": copy.deepcopy(self.metrics),
            "trained_at": self.trained_at,
            "data_fingerprint": self.data_fingerprint,
            "version": self.version,
            "saved_at": self.saved_at,
            "file_format": self.file_format,
            "contribution_units": "probability",
            "fit_info": copy.deepcopy(self.fit_info),
        }

    def save(self, name: str, overwrite: bool = False) -> Path:
        """Save under ``<models_dir>/<name>/``; see :func:`fraud_app.models.store.save_model`."""
        from fraud_app.models.store import save_model

        return save_model(self, name, overwrite=overwrite)

    @classmethod
    def load(cls, name: str) -> FraudModel:
        """Load a saved model by name; see :func:`fraud_app.models.store.load_model`."""
        from fraud_app.models.store import load_model

        model = load_model(name)
        if cls is not FraudModel and not isinstance(model, cls):
            raise TypeError(f"model {name!r} is a {model.kind!r} model, not {cls.kind!r}")
        return model

    def _restore_state(self, meta: Mapping[str, Any]) -> None:
        """Set the non-estimator state from saved metadata."""
        self.name = meta.get("name")
        self.threshold = float(meta["threshold"])
        self.metrics = dict(meta.get("metrics") or {})
        self.trained_at = meta.get("trained_at")
        self.data_fingerprint = meta.get("data_fingerprint")
        self.version = meta.get("version")
        self.saved_at = meta.get("saved_at")
        self.fit_info = dict(meta.get("fit_info") or {})

    def __repr__(self) -> str:
        state = f"threshold={self.threshold:.4f}" if self._fitted else "unfitted"
        return f"<{type(self).__name__} name={self.name!r} kind={self.kind!r} {state}>"


def _f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    tp = int(np.sum((predicted == 1) & (y_true == 1)))
    denominator = int(np.sum(predicted)) + int(np.sum(y_true))
    return 2 * tp / denominator if denominator else 0.0


# -- registry -------------------------------------------------------------------------------------

_KINDS: dict[str, type[FraudModel]] = {}
#: kind -> {param: {"default", "bounds" | "objects", "doc"}}; filled by :func:`register_kind`.
HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {}


def register_kind(cls_or_name: type[FraudModel] | str | None = None):
    """Register a :class:`FraudModel` subclass under its ``kind`` (or the given name).

    Use as ``@register_kind`` or ``@register_kind("my_kind")``.
    """

    def decorator(cls: type[FraudModel]) -> type[FraudModel]:
        name = cls_or_name if isinstance(cls_or_name, str) else cls.kind
        if not name:
            raise ValueError(f"{cls.__name__} needs a kind name")
        if not issubclass(cls, FraudModel):
            raise TypeError(f"{cls.__name__} is not a FraudModel")
        cls.kind = name
        _KINDS[name] = cls
        HYPERPARAMETERS[name] = copy.deepcopy(cls.hyperparameters)
        return cls

    if isinstance(cls_or_name, type):
        return decorator(cls_or_name)
    return decorator


def model_kinds() -> tuple[str, ...]:
    """The registered kind names, in registration order."""
    return tuple(_KINDS)


def model_class(kind: str) -> type[FraudModel]:
    """The class registered for ``kind``."""
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise UnknownModelKindError(
            f"unknown model kind {kind!r}; choose one of: {', '.join(_KINDS)}") from None


def create(kind: str, **params: Any) -> FraudModel:
    """A new, unfitted model of ``kind`` with ``params`` over the kind's defaults."""
    return model_class(kind)(**params)
