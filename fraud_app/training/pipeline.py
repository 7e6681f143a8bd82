"""TrainingPipeline: split (random or time-ordered), fit (out-of-fold or validation threshold), evaluate, save."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.data import TARGET, fingerprint
from fraud_app.models import (
    FraudModel,
    ModelExistsError,
    ProgressEvent,
    Reporter,
    create,
    model_exists,
    validate_model_name,
)
from fraud_app.models.base import DEFAULT_FOLDS, THRESHOLD_METHODS, CancelToken, ProgressCallback, check_features
from fraud_app.models.jsonutil import dumps, jsonable
from fraud_app.training.metrics import evaluate_scores, pr_curve, reliability_curve
from fraud_app.training.splits import SPLITS, train_test_indices

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    """What a pipeline run produced. ``to_dict()``/``to_json()`` leave out the model itself.

    ``metrics`` are on the held-out test rows (``y_test``/``test_scores``), ``pr_curve`` and
    ``reliability`` (see :func:`~fraud_app.training.metrics.reliability_curve`) too.
    ``threshold_labels``/``threshold_scores`` are the labels and calibrated scores the threshold
    was chosen on (out-of-fold scores of the training rows, or the validation split): use them,
    never the test scores, to suggest another threshold (e.g. the cheapest for given costs).
    """

    model: FraudModel = field(repr=False)
    name: str | None
    kind: str
    params: dict[str, Any]
    seed: int
    metrics: dict[str, Any]
    pr_curve: dict[str, list[float]] = field(repr=False)
    y_test: list[int] = field(repr=False)
    test_scores: list[float] = field(repr=False)
    duration_s: float
    fit_seconds: float
    saved: bool
    data_fingerprint: str | None
    test_size: float
    n_train: int
    trained_at: str | None
    model_version: str | None
    split: str = "random"
    threshold_method: str = "oof"
    folds: int | None = None
    reliability: dict[str, Any] = field(default_factory=dict, repr=False)
    threshold_labels: list[int] = field(default_factory=list, repr=False)
    threshold_scores: list[float] = field(default_factory=list, repr=False)
    #: Labeled predictions added to the training rows (``feedback=``), after deduplication.
    feedback_rows: int = 0

    @property
    def threshold(self) -> float:
        return float(self.metrics["threshold"])

    def to_dict(self, include_scores: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; ``y_test``/``test_scores`` only with ``include_scores``."""
        data = {
            "name": self.name, "kind": self.kind, "params": self.params, "seed": self.seed,
            "metrics": self.metrics, "pr_curve": self.pr_curve, "duration_s": self.duration_s,
            "fit_seconds": self.fit_seconds, "saved": self.saved, "data_fingerprint": self.data_fingerprint,
            "test_size": self.test_size, "n_train": self.n_train, "trained_at": self.trained_at,
            "model_version": self.model_version, "threshold": self.threshold,
            "fit_info": self.model.fit_info, "split": self.split, "threshold_method": self.threshold_method,
            "folds": self.folds, "reliability": self.reliability, "feedback_rows": self.feedback_rows,
        }
        if include_scores:
            data["y_test"] = self.y_test
            data["test_scores"] = self.test_scores
            data["threshold_labels"] = self.threshold_labels
            data["threshold_scores"] = self.threshold_scores
        return jsonable(data)

    def to_json(self, include_scores: bool = False, **kwargs: Any) -> str:
        return dumps(self.to_dict(include_scores=include_scores), **kwargs)


class TrainingPipeline:
    """Split (stratified random or time-ordered), fit, evaluate on the held-out test rows, optionally save.

    Parameters
    ----------
    kind : a registered model kind (``fraud_app.models.MODEL_KINDS``).
    params : hyper-parameters over the kind's defaults; ``random_state`` defaults to ``seed``.
    name : the name to save under (required with ``save=True``).
    save : save the fitted model to the model store.
    overwrite : replace a saved model of the same name.
    seed : seeds the random test split, the folds and (unless ``params`` says otherwise) the model.
    test_size : share held out for the test metrics.
    split : ``"random"`` (stratified, seeded: the assignment's protocol) or ``"time"`` (train on the
        earlier transactions, test on the latest ``test_size``; every training row is earlier).
    threshold_method : ``"oof"`` (out-of-fold scores of a stratified ``folds``-fold split of the
        training rows choose the calibration and threshold, then a final fit on all training rows)
        or ``"validation"`` (one stratified 20 % validation split of the training rows; faster).
        ``"oof"`` is the default everywhere: here, the Training tab, the CLI, ``evaluate`` and the
        benchmark.
    folds : folds for ``threshold_method="oof"``.
    feedback : labeled predictions (``fraud_app.monitoring.feedback.labeled_predictions()``) to add to
        the training rows, deduplicated against ``frame``; never to the test rows.

    Bad arguments (unknown kind or parameter, invalid name, a taken name without
    ``overwrite``, an unknown split or threshold method) raise ``ValueError`` subclasses here,
    before any work is done.
    """

    def __init__(self, kind: str, params: dict[str, Any] | None = None, *, name: str | None = None,
                 save: bool = False, overwrite: bool = False, seed: int = 0, test_size: float = 0.2,
                 split: str = "random", threshold_method: str = "oof", folds: int = DEFAULT_FOLDS,
                 feedback: pd.DataFrame | None = None) -> None:
        if not 0.0 < float(test_size) < 1.0:
            raise ValueError(f"test_size must be between 0 and 1, got {test_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if threshold_method not in THRESHOLD_METHODS:
            raise ValueError(f"threshold_method must be one of {', '.join(THRESHOLD_METHODS)}, "
                             f"got {threshold_method!r}")
        if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or not 2 <= folds <= 20:
            raise ValueError(f"folds must be an integer from 2 to 20, got {folds!r}")
        self.kind = kind
        self.params = dict(params or {})
        self.params.setdefault("random_state", int(seed))
        self.name = validate_model_name(name) if name is not None else None
        self.save = bool(save)
        self.overwrite = bool(overwrite)
        self.seed = int(seed)
        self.test_size = float(test_size)
        self.split = split
        self.threshold_method = threshold_method
        self.folds = int(folds)
        self.feedback = feedback
        if self.save and self.name is None:
            raise ValueError("a name is needed to save the model")
        create(kind, **self.params)  # validates kind and parameters now
        self._check_name_free()

    def _check_name_free(self) -> None:
        if self.save and not self.overwrite and model_exists(self.name):
            raise ModelExistsError(f"a model named {self.name!r} already exists (choose another name or overwrite it)")

    def split_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (train, test) of ``frame`` for this pipeline's split, test size and seed."""
        return train_test_indices(frame, self.split, self.test_size, self.seed)

    def run(self, frame: pd.DataFrame, progress: ProgressCallback | None = None,
            cancel: CancelToken = None) -> TrainingResult:
        """Train and evaluate on ``frame`` (the 29 inputs and ``is_fraud``; ``time`` for the time split).

        The model only ever sees the training rows: the threshold, the calibration and early
        stopping use out-of-fold (or validation) scores of training rows; the test rows are
        scored once, after the fit, for the metrics.

        Raises
        ------
        TrainingCancelled : ``cancel`` was set; nothing is saved.
        SchemaError : ``frame`` lacks an input or the label (or ``time`` for the time split).
        """
        from fraud_app.data.partitioned import LazyDataset

        if isinstance(frame, LazyDataset):  # beyond memory: train on the Dask cluster
            from fraud_app.training.distributed import run_distributed

            return run_distributed(self, frame, progress, cancel)
        started = time.perf_counter()
        reporter = Reporter(progress, cancel)
        reporter("prepare", 0.0, "checking the data")
        if not isinstance(frame, pd.DataFrame) or TARGET not in frame.columns:
            from fraud_app.data import SchemaError

            raise SchemaError(f"the training frame needs the label column {TARGET!r}")
        check_features(frame)
        y = frame[TARGET].to_numpy()
        how = ("stratified" if self.split == "random" else "time-ordered")
        reporter("split", 0.01, f"{how} {1 - self.test_size:.0%}/{self.test_size:.0%} split, seed {self.seed}")
        train, test = self.split_rows(frame)
        train_frame, test_frame = frame.iloc[train], frame.iloc[test]
        y_test = y[test].astype(int)
        from fraud_app.monitoring.feedback import add_feedback  # labeled predictions: training rows only

        train_frame, feedback_rows = add_feedback(train_frame, self.feedback, frame)

        model = create(self.kind, **self.params)
        fit_started = time.perf_counter()
        model.fit_with(train_frame, train_frame[TARGET].to_numpy(), reporter.sub(0.02, 0.9), threshold_method=self.threshold_method,
                       folds=self.folds)
        fit_seconds = time.perf_counter() - fit_started

        reporter("evaluate", 0.92, f"scoring {len(test):,} held-out transactions")
        scores = model.predict_proba(test_frame)
        metrics = evaluate_scores(y_test, scores, model.threshold)
        curve = pr_curve(y_test, scores)
        reliability = reliability_curve(y_test, scores)
        model.metrics = {k: metrics[k] for k in
                         ("f1", "precision", "recall", "pr_auc", "roc_auc", "brier", "log_loss", "threshold",
                          "confusion_matrix", "n_test", "n_test_fraud")}
        model.metrics.update(seed=self.seed, test_size=self.test_size, split=self.split,
                             threshold_method=self.threshold_method, ece=reliability["ece"],
                             folds=self.folds if self.threshold_method == "oof" else None)
        model.data_fingerprint = str(frame.attrs.get("fingerprint") or fingerprint(frame))
        model.fit_info["feedback_rows"] = feedback_rows
        from fraud_app.monitoring.reference import build_reference  # saved with the model (metadata "reference")

        model.monitoring_reference = build_reference(
            train_frame, None if model.threshold_scores is None else model.threshold_scores[1], model.threshold)

        saved = False
        if self.save:
            reporter("save", 0.97, f"saving as {self.name!r}")
            self._check_name_free()
            model.save(self.name, overwrite=self.overwrite)
            saved = True
        duration = time.perf_counter() - started
        if progress is not None:
            progress(ProgressEvent("done", 1.0, f"done in {duration:.1f} s: F1 {metrics['f1']:.3f}"))
        log.info("trained %s (seed %d, %s split, %s threshold) in %.1f s: F1 %.3f, PR-AUC %.3f", self.kind,
                 self.seed, self.split, self.threshold_method, duration, metrics["f1"],
                 metrics["pr_auc"] or float("nan"))
        labels, chosen_on = model.threshold_scores if model.threshold_scores is not None else ([], [])
        return TrainingResult(
            model=model, name=model.name if saved else self.name, kind=self.kind, params=dict(model.params),
            seed=self.seed, metrics=jsonable(model.metrics), pr_curve=curve, y_test=y_test.tolist(),
            test_scores=scores.tolist(), duration_s=round(duration, 3), fit_seconds=round(fit_seconds, 3),
            saved=saved, data_fingerprint=model.data_fingerprint, test_size=self.test_size,
            n_train=int(len(train_frame)), trained_at=model.trained_at, model_version=model.version,
            split=self.split, threshold_method=self.threshold_method,
            folds=self.folds if self.threshold_method == "oof" else None, reliability=jsonable(reliability),
            threshold_labels=np.asarray(labels, dtype=int).tolist(),
            threshold_scores=np.asarray(chosen_on, dtype=float).tolist(), feedback_rows=feedback_rows)
