"""The model abstraction: :class:`FraudModel`, its hyper-parameter declaration, the kind registry.

A kind is one subclass of :class:`FraudModel` decorated with :func:`register_kind`. It declares
its hyper-parameters once, as a nested ``Params`` class (a :class:`ModelParams`, i.e. a
``param.Parameterized``: ``bounds`` are the hard limits the model enforces, ``softbounds`` the
range a UI offers, ``doc`` the help the UI and the CLI show), and implements these public hooks:

``fit_estimator(X_train, y_train, X_val, y_val, reporter)``
    fit the estimator(s) on the training part; ``X_val``/``y_val`` (None for the final fit on
    all training rows) may serve early stopping. ``reporter`` forwards progress and checks
    for cancellation.
``predict_scores(X)``
    the kind's own (uncalibrated) P(fraud) for a validated float array in
    :data:`MODEL_FEATURES` order.
``raw_contributions(X)``
    per-feature contributions that add up, with a base value, to the kind's raw score in
    ``contribution_space`` (``"log_odds"`` for boosted trees, ``"probability"`` for trees).
``save_artifacts(folder)`` / ``load_artifacts(folder)``
    write/read the fitted estimator in a format that never runs code when read.

The base class does the rest: input checks, how the threshold is chosen (out-of-fold scores of
a stratified k-fold on the training rows, then a final fit on all of them; or a single
stratified validation split), probability calibration, contributions in log-odds or
probability units, metadata, and saving through the model store.
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
import param

from fraud_app.data import MODEL_FEATURES, SchemaError, fingerprint
from fraud_app.models.calibration import CALIBRATION_METHODS, Calibration, fit_calibration, logit, sigmoid
from fraud_app.models.errors import NotFittedError, TrainingCancelled, UnknownModelKindError

log = logging.getLogger(__name__)

#: Share of the data given to ``fit`` held out to choose the threshold with ``threshold_method="validation"``.
VALIDATION_FRACTION = 0.2
#: How ``fit`` chooses the threshold: out-of-fold scores (default) or one validation split.
THRESHOLD_METHODS: tuple[str, ...] = ("oof", "validation")
#: Folds of the stratified k-fold behind out-of-fold thresholds.
DEFAULT_FOLDS = 5
#: Units of :meth:`FraudModel.contributions`.
CONTRIBUTION_UNITS: tuple[str, ...] = ("log_odds", "probability")
#: Bumped when what ``metadata.json`` holds changes (1: before out-of-fold thresholds/calibration).
MODEL_FORMAT = 2


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
        self.prefix = ""

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
            message = self.prefix + message
            self.progress(ProgressEvent(stage, round(overall, 6), message, iteration, total))
        self.check()

    def sub(self, start: float, end: float, prefix: str = "") -> Reporter:
        """A reporter for the part ``[start, end]`` of this one's slice (messages get ``prefix``)."""
        span = self.end - self.start
        child = Reporter(self.progress, self.cancel, self.start + span * start, self.start + span * end)
        child.prefix = self.prefix + prefix
        return child


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


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) of a stratified, shuffled, seeded k-fold over ``y``'s positions."""
    from sklearn.model_selection import StratifiedKFold

    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or not 2 <= folds <= 20:
        raise ValueError(f"folds must be an integer from 2 to 20, got {folds!r}")
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=int(seed))
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(y)), y)]


# -- hyper-parameters -----------------------------------------------------------------------------

class ModelParams(param.Parameterized):
    """Base of every kind's ``Params``: one declaration per hyper-parameter.

    ``bounds`` are hard limits (the model refuses values outside them), ``softbounds`` the range
    a UI offers, ``doc`` the help text of the UI and the CLI. Parameters with a negative
    ``precedence`` (``n_jobs``, ``random_state``) are settings, not tunables: UIs hide them.
    """

    @classmethod
    def names(cls) -> list[str]:
        """The declared hyper-parameters, in declaration order."""
        return [n for n in cls.param if n != "name"]

    @classmethod
    def tunables(cls) -> list[str]:
        """The hyper-parameters a UI shows (precedence not negative)."""
        return [n for n in cls.names() if (cls.param[n].precedence is None or cls.param[n].precedence >= 0)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {n: copy.deepcopy(cls.param[n].default) for n in cls.names()}

    def values(self) -> dict[str, Any]:
        """The current values, as ``create(kind, **values)`` takes them."""
        return {n: copy.deepcopy(getattr(self, n)) for n in self.names()}

    @classmethod
    def describe(cls, name: str) -> str:
        """One line of help for ``name``: doc, default, hard limits, suggested range or choices."""
        p = cls.param[name]
        parts = [(p.doc or name).strip().rstrip(".")]
        parts.append(f"default {p.default!r}")
        if isinstance(p, param.Selector):
            parts.append("one of " + ", ".join(repr(o) for o in p.objects))
        elif isinstance(p, param.Boolean):
            parts.append("true or false")
        elif isinstance(p, param.Number):
            if p.bounds is not None:
                parts.append(f"limits {_fmt_bounds(p.bounds)}")
            if p.softbounds is not None:
                parts.append(f"usual range {_fmt_bounds(p.softbounds)}")
            if p.allow_None:
                parts.append("null allowed")
        return f"{name}: " + "; ".join(parts)


def _fmt_bounds(bounds: tuple) -> str:
    low, high = bounds
    return f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"


def _plain(value: Any) -> Any:
    """numpy scalars as Python scalars (param's Integer wants an int)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def hyperparameter_spec(params_cls: type[ModelParams]) -> dict[str, dict[str, Any]]:
    """The tunables of a ``Params`` class as ``{name: {"default", "bounds" | "objects", "doc"}}``.

    A *view* derived from the declaration (never a second one): ``bounds`` are the
    ``softbounds`` (the UI range) where declared, else the hard ``bounds``.
    """
    spec: dict[str, dict[str, Any]] = {}
    for name in params_cls.tunables():
        p = params_cls.param[name]
        entry: dict[str, Any] = {"default": copy.deepcopy(p.default), "doc": p.doc}
        if isinstance(p, param.Boolean):
            entry["objects"] = [False, True]
        elif isinstance(p, param.Selector):
            entry["objects"] = list(p.objects)
        elif isinstance(p, param.Number):
            entry["bounds"] = tuple(p.softbounds or p.bounds)
        elif getattr(p, "objects_hint", None) is not None:
            entry["objects"] = list(p.objects_hint)
        spec[name] = entry
    return spec


# -- the base class -------------------------------------------------------------------------------

class FraudModel(abc.ABC):
    """A fraud classifier on the 29 model inputs, with its own decision threshold.

    Attributes
    ----------
    name : the saved name, or None until saved/loaded.
    kind : the registered kind name.
    params : the hyper-parameters (JSON-serialisable), validated by the kind's ``Params``.
    features : the model inputs, always :data:`MODEL_FEATURES`.
    threshold : P(fraud) at or above which ``predict`` says fraud; chosen in ``fit``.
    calibration : the map from the kind's raw scores to P(fraud), or None (see ``params["calibration"]``).
    metrics : evaluation metrics (filled by the training pipeline).
    trained_at : ISO-8601 UTC time of the fit.
    data_fingerprint : fingerprint of the data it was trained on.
    version : a new id each time the model is saved.
    fitted : True once fitted or loaded (the store sets it after ``load_artifacts``).
    fit_info : how it was fitted: ``threshold_method`` ("oof" or "validation"), folds, rows, timings...
    """

    kind: ClassVar[str] = ""
    #: The hyper-parameter declaration (a nested ``param.Parameterized``); ``create(kind, **params)``
    #: accepts exactly its names.
    Params: ClassVar[type[ModelParams] | None] = None
    #: Defaults, derived from ``Params`` at registration (a kind without ``Params`` sets it itself).
    default_params: ClassVar[dict[str, Any]] = {}
    #: The UI view of the tunables, derived from ``Params`` at registration (see :func:`hyperparameter_spec`).
    hyperparameters: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Format of the saved estimator (for the docs / metadata).
    file_format: ClassVar[str] = ""
    #: The space in which :meth:`raw_contributions` add up: ``"log_odds"`` or ``"probability"``.
    contribution_space: ClassVar[str] = "probability"
    #: Values of parameters missing from a saved model's metadata (saved before they existed): how
    #: such a model behaved. Saved models had no calibration before it existed.
    legacy_params: ClassVar[dict[str, Any]] = {"calibration": "none"}

    def __init__(self, **params: Any) -> None:
        defaults = self.Params.defaults() if self.Params is not None else copy.deepcopy(self.default_params)
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(f"unknown parameter(s) for {self.kind!r}: {', '.join(unknown)}; "
                             f"expected some of: {', '.join(sorted(defaults))}")
        merged = defaults
        merged.update({k: _plain(v) for k, v in params.items()})
        if self.Params is not None:
            try:
                merged = self.Params(**merged).values()
            except (ValueError, TypeError) as exc:
                raise ValueError(f"invalid parameter for {self.kind!r}: {exc}") from None
        self.params: dict[str, Any] = self.check_params(merged)
        self.name: str | None = None
        self.features: list[str] = list(MODEL_FEATURES)
        self.threshold: float = 0.5
        self.calibration: Calibration | None = None
        self.metrics: dict[str, Any] = {}
        self.trained_at: str | None = None
        self.data_fingerprint: str | None = None
        self.version: str | None = None
        self.saved_at: str | None = None
        self.fit_info: dict[str, Any] = {}
        self.fitted = False
        #: (labels, calibrated scores) the threshold was chosen on: out-of-fold or validation. Not saved.
        self.threshold_scores: tuple[np.ndarray, np.ndarray] | None = None
        #: The fitted fold models of the last out-of-fold fit, until :meth:`final_fit` has run (a kind
        #: may keep them as its final model instead of refitting: LightGBM's ``final_model="fold_bag"``).
        self.fold_models: list[FraudModel] = []

    # -- hooks -------------------------------------------------------------------------------
    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Checks beyond the ``Params`` declaration (e.g. between parameters); raise ValueError."""
        return params

    @abc.abstractmethod
    def fit_estimator(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None,
                      y_val: np.ndarray | None, reporter: Reporter) -> None:
        """Fit on the training part (the validation part, when given, may serve early stopping)."""

    @abc.abstractmethod
    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """The kind's own (uncalibrated) P(fraud) for a checked float array."""

    @abc.abstractmethod
    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-feature contributions, shape (n, 29), and the base value, adding up to the raw score
        in :attr:`contribution_space` (log-odds of ``predict_scores``, or ``predict_scores`` itself)."""

    @abc.abstractmethod
    def save_artifacts(self, folder: Path) -> None:
        """Write the fitted estimator into ``folder`` (no pickle)."""

    @abc.abstractmethod
    def load_artifacts(self, folder: Path) -> None:
        """Read the estimator written by :meth:`save_artifacts` without running code from it."""

    def final_fit(self, X: np.ndarray, y: np.ndarray, reporter: Reporter) -> None:
        """The final fit on all training rows, after the out-of-fold threshold (no early stopping)."""
        self.fit_estimator(X, y, None, None, reporter)

    @classmethod
    def hyperparameter_view(cls) -> dict[str, dict[str, Any]]:
        """The UI view of the tunables (:func:`hyperparameter_spec` of ``Params``)."""
        return hyperparameter_spec(cls.Params) if cls.Params is not None else {}

    def fold_model(self) -> FraudModel:
        """A fresh, unfitted model with the same parameters, fitted on one fold."""
        return type(self)(**copy.deepcopy(self.params))

    def cross_val_scores(self, X: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                         reporter: Reporter) -> np.ndarray:
        """Out-of-fold P(fraud) for every row: fold *i*'s model never saw the rows it scores.

        Each fold model may stop early on its held-out fold (never on any test row). The fold
        models' ``best_iteration`` values are kept in ``fit_info["fold_best_iterations"]``, the
        fitted fold models in :attr:`fold_models` (until the final fit).
        """
        scores = np.empty(len(y), dtype=np.float64)
        best = []
        k = len(folds)
        self.fold_models = []
        for i, (fit_rows, held) in enumerate(folds):
            sub = reporter.sub(i / k, (i + 1) / k, prefix=f"fold {i + 1}/{k}: ")
            model = self.fold_model()
            model.fit_estimator(X[fit_rows], y[fit_rows], X[held], y[held], sub)
            model.fitted = True
            scores[held] = model.predict_proba_array(X[held])
            best.append(model.fit_info.get("best_iteration"))
            self.fold_models.append(model)
        if any(b is not None for b in best):
            self.fit_info["fold_best_iterations"] = [int(b) for b in best if b is not None]
        return scores

    # -- public API --------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return int(self.params.get("random_state", 0) or 0)

    @property
    def is_fitted(self) -> bool:
        return self.fitted

    def fit(self, X: pd.DataFrame, y: Any, *, threshold_method: str = "oof", folds: int = DEFAULT_FOLDS,
            progress: ProgressCallback | None = None, cancel: CancelToken = None) -> FraudModel:
        """Fit on ``X``/``y``; choose the threshold (and the calibration) on scores it did not fit.

        ``threshold_method="oof"`` (default): a stratified ``folds``-fold split of these rows
        (seeded by ``random_state``); each fold's model scores the rows it did not see; the
        calibration and the F1-best threshold are chosen on those out-of-fold scores; then the
        final model is fitted on *all* rows (boosting for the mean early-stopped round count of
        the folds, scaled to the larger data, when early stopping is on).

        ``threshold_method="validation"`` (faster): ``VALIDATION_FRACTION`` of the rows are held
        out (stratified, seeded); the model is fitted on the rest and the threshold chosen on
        the held-out part (the model is only refitted on all rows with ``params["refit"]``).

        ``fit_info["threshold_method"]`` records which was used.

        Raises
        ------
        SchemaError : ``X`` lacks a model input or holds non-numeric/NaN values.
        TrainingCancelled : ``cancel`` was set between stages or iterations.
        ValueError : an unknown ``threshold_method`` or bad ``folds``.
        """
        reporter = Reporter(progress, cancel)
        self.fit_with(X, y, reporter, threshold_method=threshold_method, folds=folds)
        return self

    def fit_with(self, X: pd.DataFrame, y: Any, reporter: Reporter, *, threshold_method: str = "oof",
                 folds: int = DEFAULT_FOLDS) -> None:
        """:meth:`fit` with a caller's :class:`Reporter` (the training pipeline uses it)."""
        if threshold_method not in THRESHOLD_METHODS:
            raise ValueError(f"threshold_method must be one of {', '.join(THRESHOLD_METHODS)}, "
                             f"got {threshold_method!r}")
        values = check_features(X)
        labels = check_target(y.to_numpy() if isinstance(y, pd.Series) else y, len(values))
        started = time.perf_counter()
        self.fitted = False
        self.fit_info = {}
        if threshold_method == "oof":
            splits = stratified_folds(labels, folds, self.seed)
            reporter("folds", 0.0, f"{folds}-fold out-of-fold scores on {len(values):,} training rows")
            self.fit_oof(values, labels, splits, reporter.sub(0.01, 0.99))
            self.fit_info.update({"n_rows": int(len(values)), "n_fraud": int(labels.sum()),
                                  "n_train": int(len(values)), "folds": int(folds)})
        else:
            reporter("validation_split", 0.0,
                     f"holding out {VALIDATION_FRACTION:.0%} of the training rows for validation")
            train, val = stratified_split(len(values), labels, VALIDATION_FRACTION, self.seed)
            self.fit_split(values[train], labels[train], values[val], labels[val], reporter.sub(0.02, 0.97))
            reporter("threshold", 0.98, "chose the calibration and threshold on the validation split")
            self.fit_info.update({
                "n_rows": int(len(values)), "n_fraud": int(labels.sum()),
                "n_train": int(len(train)), "n_validation": int(len(val)),
                "n_validation_fraud": int(labels[val].sum()),
            })
        frame = X[MODEL_FEATURES].copy()
        frame["is_fraud"] = labels
        self.data_fingerprint = fingerprint(frame)
        self.fit_info["fit_seconds"] = round(time.perf_counter() - started, 3)
        reporter("fitted", 1.0, f"fitted; threshold {self.threshold:.4f}")

    def fit_oof(self, X: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                reporter: Reporter | None = None) -> np.ndarray:
        """Out-of-fold threshold and calibration on checked arrays, then the final fit on all rows.

        Returns the calibrated out-of-fold scores (the aggregator averages its members' ones).
        """
        reporter = reporter or Reporter()
        k = len(folds)
        share = k / (k + 1)
        self.fit_info["threshold_method"] = "oof"
        raw = self.cross_val_scores(X, y, folds, reporter.sub(0.0, share))
        reporter("threshold", share, "calibrating and choosing the threshold on the out-of-fold scores")
        scores = self._choose_threshold(raw, y)
        self.fit_info["final_fit_rows"] = int(len(y))
        self.final_fit(X, y, reporter.sub(share, 1.0, prefix=f"final fit on all {len(y):,} rows: "))
        self.fold_models = []
        self.fitted = True
        self.trained_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.version = None
        return scores

    def fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                  reporter: Reporter | None = None, allow_refit: bool = True) -> FraudModel:
        """Fit on an explicit train/validation split of checked arrays; calibrate and set the threshold on it.

        When the kind supports it and ``params["refit"]`` is true, the estimator is refitted on
        train + validation *after* the threshold was chosen (``allow_refit=False`` defers that).
        """
        reporter = reporter or Reporter()
        self.fit_info["threshold_method"] = "validation"
        self.fit_estimator(X_train, y_train, X_val, y_val, reporter)
        self.fitted = True
        self._choose_threshold(self.predict_scores(X_val), y_val)
        self.trained_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.version = None
        if allow_refit and self.params.get("refit"):
            self.refit(np.vstack([X_train, X_val]), np.concatenate([y_train, y_val]), reporter)
        return self

    def _choose_threshold(self, raw: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fit the calibration on ``raw`` scores the model did not fit, then the F1-best threshold."""
        self.calibration = fit_calibration(self.params.get("calibration", "none"), raw, y)
        scores = self.calibration(raw) if self.calibration is not None else np.asarray(raw, dtype=np.float64)
        self.threshold = best_f1_threshold(y, scores)
        self.threshold_scores = (np.asarray(y, dtype=np.int8), scores)
        key = "oof" if self.fit_info.get("threshold_method") == "oof" else "validation"
        self.fit_info[f"{key}_f1"] = _f1(y, scores >= self.threshold)
        self.fit_info[f"{key}_brier"] = float(np.mean((scores - y) ** 2))
        self.fit_info[f"{key}_rows"] = int(len(y))
        return scores

    def refit(self, X: np.ndarray, y: np.ndarray, reporter: Reporter | None = None) -> None:
        """Refit the estimator on all of ``X``/``y``, keeping the threshold (kinds with ``refit``)."""
        reporter = reporter or Reporter()
        reporter("refit", 1.0, f"refitting on all {len(X):,} rows, keeping the threshold")
        self.refit_estimator(X, y, reporter)
        self.fit_info["refitted_on"] = int(len(X))

    def refit_estimator(self, X: np.ndarray, y: np.ndarray, reporter: Reporter) -> None:
        """Hook of :meth:`refit` (validation-split thresholds only)."""
        raise NotImplementedError(f"the {self.kind} kind cannot refit")

    def require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"the {self.kind} model is not fitted; call fit() or load a saved model")

    def predict_proba_array(self, X: np.ndarray) -> np.ndarray:
        """P(fraud) (calibrated) for an already checked ``(n, 29)`` float array in MODEL_FEATURES order.

        The fast path of the prediction service; :meth:`predict_proba` checks a DataFrame first.
        """
        scores = np.asarray(self.predict_scores(X), dtype=np.float64)
        return self.calibration(scores) if self.calibration is not None else scores

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(fraud) for each row of ``X``, shape ``(n,)``."""
        self.require_fitted()
        return self.predict_proba_array(check_features(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 for each row: 1 when P(fraud) >= ``threshold``."""
        return (self.predict_proba(X) >= self.threshold).astype(np.int8)

    def contributions_array(self, X: np.ndarray, units: str = "log_odds") -> tuple[np.ndarray, float]:
        """Contributions of a checked array in ``units`` and the base value they start from.

        For every row, ``base + contributions.sum()`` equals the row's P(fraud) (``"probability"``)
        or its log-odds ``log(P / (1 - P))`` (``"log_odds"``, P clipped into [1e-7, 1 - 1e-7]).
        The kind's own contributions (in :attr:`contribution_space`) are rescaled per row by one
        factor, so signs and proportions are kept; LightGBM without calibration needs no
        rescaling in log-odds (its ``pred_contrib`` is additive there).
        """
        if units not in CONTRIBUTION_UNITS:
            raise ValueError(f"units must be one of {', '.join(CONTRIBUTION_UNITS)}, got {units!r}")
        contrib, base = self.raw_contributions(X)
        contrib = np.asarray(contrib, dtype=np.float64)
        raw_total = base + contrib.sum(axis=1)

        def target(raw: np.ndarray) -> np.ndarray:
            p = sigmoid(raw) if self.contribution_space == "log_odds" else np.clip(raw, 0.0, 1.0)
            if self.calibration is not None:
                p = self.calibration(p)
            return logit(p) if units == "log_odds" else p

        base_out = float(target(np.array([base]))[0])
        if self.calibration is None and units == self.contribution_space:
            return contrib, float(base)
        diff = raw_total - base
        safe = np.abs(diff) > 1e-9
        h = 1e-6
        slope = (target(raw_total + h) - target(raw_total - h)) / (2 * h)
        scale = np.where(safe, (target(raw_total) - base_out) / np.where(safe, diff, 1.0), slope)
        return contrib * scale[:, None], base_out

    def contributions(self, X: pd.DataFrame, units: str = "probability") -> pd.DataFrame:
        """Per-feature contributions to each row's P(fraud); positive values push towards fraud.

        One row per row of ``X``, one column per model input (:data:`MODEL_FEATURES`).

        ``units="probability"`` (default, unchanged): a row's contributions add up to
        ``P(fraud) - expected_value("probability")``. ``units="log_odds"``: they add up to
        ``logit(P(fraud)) - expected_value("log_odds")``; readable for clear transactions too
        (a P(fraud) of 0.00002 is -10.8 in log-odds, not "0.0000"). See :meth:`contributions_array`.
        """
        self.require_fitted()
        values, _ = self.contributions_array(check_features(X), units)
        return pd.DataFrame(values, columns=list(MODEL_FEATURES), index=X.index)

    def expected_value(self, units: str = "probability") -> float:
        """The base value contributions in ``units`` start from (P(fraud) or log-odds)."""
        self.require_fitted()
        return self.contributions_array(np.zeros((1, len(self.features))), units)[1]

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable facts about the model (also what ``metadata.json`` holds)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "params": copy.deepcopy(self.params),
            "features": list(self.features),
            "threshold": float(self.threshold),
            "threshold_method": self.fit_info.get("threshold_method"),
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
            "metrics": copy.deepcopy(self.metrics),
            "trained_at": self.trained_at,
            "data_fingerprint": self.data_fingerprint,
            "version": self.version,
            "saved_at": self.saved_at,
            "file_format": self.file_format,
            "model_format": MODEL_FORMAT,
            "contribution_units": list(CONTRIBUTION_UNITS),
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

    def restore_state(self, meta: Mapping[str, Any]) -> None:
        """Set the non-estimator state from saved metadata (the store calls it before ``load_artifacts``)."""
        self.name = meta.get("name")
        self.threshold = float(meta["threshold"])
        self.calibration = Calibration.from_dict(meta.get("calibration"))
        self.metrics = dict(meta.get("metrics") or {})
        self.trained_at = meta.get("trained_at")
        self.data_fingerprint = meta.get("data_fingerprint")
        self.version = meta.get("version")
        self.saved_at = meta.get("saved_at")
        self.fit_info = dict(meta.get("fit_info") or {})
        self.fit_info.setdefault("threshold_method", meta.get("threshold_method") or "validation")

    def __repr__(self) -> str:
        state = f"threshold={self.threshold:.4f}" if self.fitted else "unfitted"
        return f"<{type(self).__name__} name={self.name!r} kind={self.kind!r} {state}>"


def _f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    tp = int(np.sum((predicted == 1) & (y_true == 1)))
    denominator = int(np.sum(predicted)) + int(np.sum(y_true))
    return 2 * tp / denominator if denominator else 0.0


def calibration_param(default: str = "none") -> param.Selector:
    """The ``calibration`` hyper-parameter every kind declares (with its own default)."""
    return param.Selector(
        default=default, objects=list(CALIBRATION_METHODS),
        doc="Map the scores to probabilities fitted on out-of-fold (or validation) scores: 'none', "
            "'sigmoid' (Platt, keeps the ranking) or 'isotonic'.")


#: The hyper-parameters the gradient-boosting kinds (LightGBM, XGBoost) share, declared once: a kind takes them
#: with :func:`boosting_param`, overriding a default or a doc where its library differs.
_BOOSTING_PARAMS: dict[str, tuple[type[param.Parameter], dict[str, Any]]] = {
    "subsample": (param.Number, {"default": 0.8, "bounds": (1e-6, 1.0), "softbounds": (0.1, 1.0),
                                 "doc": "Share of rows sampled for each tree."}),
    "colsample_bytree": (param.Number, {"default": 0.8, "bounds": (1e-6, 1.0), "softbounds": (0.1, 1.0),
                                        "doc": "Share of inputs sampled for each tree."}),
    "reg_lambda": (param.Number, {"default": 1.0, "bounds": (0.0, 1e9), "softbounds": (0.0, 100.0),
                                  "doc": "L2 regularisation of leaf values."}),
    "scale_pos_weight": (param.Number, {"default": 1.0, "bounds": (1e-6, 1e9), "softbounds": (1.0, 600.0),
                                        "doc": "Weight of the fraud class (1 = none; large values over-flag and "
                                               "inflate the probabilities)."}),
    "max_delta_step": (param.Number, {"default": 0.0, "bounds": (0.0, 1e9), "softbounds": (0.0, 10.0),
                                      "doc": "Cap on each leaf's output (0 = no cap); a small cap steadies boosting "
                                             "when frauds are rare."}),
    "random_state": (param.Integer, {"default": 0, "bounds": (0, 2**31 - 1), "precedence": -1,
                                     "doc": "Seed of the row and column sampling."}),
}


def boosting_param(name: str, **overrides: Any) -> param.Parameter:
    """The shared gradient-boosting hyper-parameter ``name`` (:data:`_BOOSTING_PARAMS`), with ``overrides``
    (``default``, ``doc``...) for one kind."""
    kind, spec = _BOOSTING_PARAMS[name]
    return kind(**{**spec, **overrides})


# -- registry -------------------------------------------------------------------------------------

_KINDS: dict[str, type[FraudModel]] = {}
#: kind -> {param: {"default", "bounds" | "objects", "doc"}}: a view of each kind's ``Params``
#: (filled by :func:`register_kind`; the declaration is the ``Params`` class).
HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {}


def register_kind(cls_or_name: type[FraudModel] | str | None = None):
    """Register a :class:`FraudModel` subclass under its ``kind`` (or the given name).

    Use as ``@register_kind`` or ``@register_kind("my_kind")``. ``default_params`` and
    ``hyperparameters`` are derived from the kind's ``Params`` declaration.
    """

    def decorator(cls: type[FraudModel]) -> type[FraudModel]:
        name = cls_or_name if isinstance(cls_or_name, str) else cls.kind
        if not name:
            raise ValueError(f"{cls.__name__} needs a kind name")
        if not issubclass(cls, FraudModel):
            raise TypeError(f"{cls.__name__} is not a FraudModel")
        cls.kind = name
        if cls.Params is not None:
            cls.default_params = cls.Params.defaults()
            cls.hyperparameters = cls.hyperparameter_view()
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
