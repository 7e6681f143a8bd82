"""Training on Dask: ``lightgbm.dask.DaskLGBMClassifier`` on the cluster, saved like any other model.

:func:`run_distributed` is what :meth:`TrainingPipeline.run` does with a lazy data set
(:class:`~fraud_app.data.partitioned.LazyDataset`):

* the test rows are a held-out time range (``split="time"``: the latest ``test_size`` share of
  ``time``, from Dask's approximate quantile) or a seeded random share (``split="random"``);
* a seeded random 20 % of the training rows is the validation part: the model is boosted on the
  other 80 % by LightGBM's distributed data-parallel learner, then the validation rows are scored
  on the cluster and only their (label, score) pairs come back to choose the calibration and the
  threshold, as the in-memory "validation" method does;
* the test rows are scored on the cluster; the metrics come from their (label, score) pairs;
* the booster is saved in the normal store and format (LightGBM text), so inference, the API
  and the UI load it as any other model.

Kinds that cannot train distributed (the decision tree, random forest, the aggregator) train
in memory on a stratified sample (at most ``sample_rows`` rows); ``fit_info["trained_on"]`` says so.

Cancellation is checked between stages; during the distributed fit, a LocalCluster started by
this process is restarted (which stops LightGBM), while an external cluster finishes the fit and
the result is thrown away. Nothing is saved after a cancel.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.data import MODEL_FEATURES, TARGET
from fraud_app.models import ProgressEvent, Reporter, create
from fraud_app.models.base import TrainingCancelled, is_cancelled
from fraud_app.models.jsonutil import jsonable
from fraud_app.training.metrics import evaluate_scores, pr_curve, reliability_curve

log = logging.getLogger(__name__)

#: Kinds trained with lightgbm.dask; every other kind trains on a stratified sample in memory.
DISTRIBUTED_KINDS = ("lightgbm",)
#: Share of the training rows held out to choose the calibration and threshold.
VALIDATION_SHARE = 0.2
#: Rows of the stratified sample for kinds that cannot train distributed.
DEFAULT_SAMPLE_ROWS = 1_000_000


def _scores(model: Any, frame: Any, calibrated: bool) -> Any:
    """A Dask Series of scores of ``frame`` (computed on the workers with the model shipped to them)."""

    def score(part: pd.DataFrame) -> pd.Series:
        values = part[MODEL_FEATURES].to_numpy(dtype="float64")
        raw = model.predict_proba_array(values) if calibrated else model.predict_scores(values)
        return pd.Series(raw, index=part.index, dtype="float64")

    return frame.map_partitions(score, meta=pd.Series(dtype="float64"))


#: Bins of the time histogram that places the time-split boundary (its error is one bin's width).
TIME_BINS = 100_000


def time_boundary(times: Any, q: float, bins: int = TIME_BINS) -> float:
    """The ``q`` quantile of a Dask Series of times, to within ``(max - min) / bins``, in two light passes."""
    import dask

    low, high = (float(v) for v in dask.compute(times.min(), times.max()))
    if not high > low:
        return high
    edges = np.linspace(low, high, bins + 1)

    def counts(part: pd.Series) -> np.ndarray:
        return np.histogram(part.to_numpy(dtype="float64"), bins=edges)[0]

    (hist,) = dask.compute(dask.delayed(sum)([dask.delayed(counts)(p) for p in times.to_delayed()]))
    cumulative = np.cumsum(np.asarray(hist))
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(edges[min(index + 1, bins)])


def _split(frame: Any, split: str, test_size: float, seed: int) -> tuple[Any, Any, str]:
    if split == "time":
        boundary = time_boundary(frame["time"], 1 - test_size)
        return frame[frame["time"] < boundary], frame[frame["time"] >= boundary], f"time >= {boundary:,.0f} s"
    train, test = frame.random_split([1 - test_size, test_size], random_state=seed)
    return train, test, f"random {test_size:.0%} (seed {seed})"


def _fit_cancellable(fit, reporter: Reporter, cancel: Any, client: Any, started: float) -> Any:
    """Run ``fit()`` in a thread; report elapsed time; on cancel, stop a LocalCluster's fit by restarting it."""
    from fraud_app.scale import engine

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with warnings.catch_warnings():
                # lightgbm.dask sets each worker's threads from its Dask threads and says so for n_jobs
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored", category=UserWarning)
                box["value"] = fit()
        except BaseException as exc:  # re-raised below, in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="dask-lgbm-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(1.0)
        if is_cancelled(cancel):
            if engine.owns_cluster():
                client.restart()
            thread.join()
            raise TrainingCancelled("training cancelled")
        reporter("fit", 0.5, f"boosting on the cluster ({time.perf_counter() - started:.0f} s)")
    if "error" in box:
        raise box["error"]
    return box["value"]


#: Training rows (at most) drawn on the cluster for the monitoring reference's feature deciles.
REFERENCE_ROWS = 200_000


def _monitoring_reference(model: Any, train: Any, rows: int, seed: int, client: Any) -> dict[str, Any]:
    """The monitoring reference (fraud_app.monitoring) from a seeded sample of the training rows and the
    validation scores the threshold was chosen on, as the in-memory pipeline saves it with the model."""
    from fraud_app.monitoring.reference import build_reference

    fraction = min(1.0, REFERENCE_ROWS / max(rows, 1))
    sample = client.compute(train[MODEL_FEATURES].sample(frac=fraction, random_state=seed + 2), sync=True)
    return build_reference(sample, model.threshold_scores[1], model.threshold)


def run_distributed(pipeline: Any, dataset: Any, progress: Any = None, cancel: Any = None,
                    sample_rows: int = DEFAULT_SAMPLE_ROWS) -> Any:
    """Train ``pipeline``'s kind on a lazy data set; returns a :class:`~fraud_app.training.TrainingResult`."""
    if pipeline.kind not in DISTRIBUTED_KINDS:
        return _run_on_sample(pipeline, dataset, progress, cancel, sample_rows)
    import lightgbm as lgb
    from lightgbm.dask import DaskLGBMClassifier

    from fraud_app.scale.engine import get_client
    from fraud_app.training.pipeline import TrainingResult

    # lightgbm.dask prints its set-up messages; route them to the log (stdout may carry --json)
    lgb.register_logger(logging.getLogger("lightgbm"))
    started = time.perf_counter()
    reporter = Reporter(progress, cancel)
    reporter("prepare", 0.0, f"{dataset.read_text()}; connecting to the cluster")
    client = get_client()
    workers = len(client.scheduler_info().get("workers", {}))
    reporter("split", 0.02, f"held-out test rows: {pipeline.split} split; dashboard {client.dashboard_link}")
    frame = dataset.frame
    train, test, test_rule = _split(frame, pipeline.split, pipeline.test_size, pipeline.seed)
    fit_part, val_part = train.random_split([1 - VALIDATION_SHARE, VALIDATION_SHARE],
                                            random_state=pipeline.seed + 1)
    model = create("lightgbm", **pipeline.params)
    native = model._lgb_params()
    params = {k: v for k, v in native.items() if k not in ("num_threads", "metric", "force_col_wise")}
    params["tree_learner"] = "data"
    clf = DaskLGBMClassifier(client=client, n_estimators=int(model.params["n_estimators"]), **params)
    reporter("fit", 0.05, f"boosting {model.params['n_estimators']} rounds on {workers} workers")
    fit_started = time.perf_counter()
    _fit_cancellable(lambda: clf.fit(fit_part[MODEL_FEATURES], fit_part[TARGET]), reporter.sub(0.05, 0.8), cancel,
                     client, fit_started)
    fit_seconds = time.perf_counter() - fit_started
    model.booster_ = lgb.Booster(model_str=clf.booster_.model_to_string())
    model.fit_info = {"threshold_method": "validation", "engine": "dask", "workers": workers,
                      "partitions": dataset.partitions, "best_iteration": int(model.booster_.current_iteration())}
    model.fitted = True

    reporter("threshold", 0.82, "scoring the validation rows on the cluster")
    raw, y_val = client.compute([_scores(model, val_part, calibrated=False), val_part[TARGET]], sync=True)
    raw, y_val = raw.to_numpy(), y_val.to_numpy().astype("int8")
    model._choose_threshold(raw, y_val)
    del raw
    reporter("threshold", 0.86, "sampling training rows for the monitoring reference")
    model.monitoring_reference = _monitoring_reference(model, train, dataset.rows, pipeline.seed, client)
    reporter.check()
    reporter("evaluate", 0.9, f"scoring the held-out test rows ({test_rule}) on the cluster")
    scores, y_test = client.compute([_scores(model, test, calibrated=True), test[TARGET]], sync=True)
    scores, y_test = scores.to_numpy(), y_test.to_numpy().astype(int)
    n_fit = int(len(y_val) / VALIDATION_SHARE * (1 - VALIDATION_SHARE))  # approximate until counted below
    n_fit = int(fit_part.shape[0].compute()) if len(y_val) < 1_000_000 else n_fit
    metrics = evaluate_scores(y_test, scores, model.threshold)
    curve = pr_curve(y_test, scores)
    reliability = reliability_curve(y_test, scores)
    from datetime import UTC, datetime

    model.trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    model.fit_info.update({"n_train": n_fit, "n_validation": int(len(y_val)), "n_validation_fraud": int(y_val.sum()),
                           "fit_seconds": round(fit_seconds, 3), "test_rows": test_rule})
    model.metrics = {k: metrics[k] for k in ("f1", "precision", "recall", "pr_auc", "roc_auc", "brier", "log_loss",
                                              "threshold", "confusion_matrix", "n_test", "n_test_fraud")}
    model.metrics.update(seed=pipeline.seed, test_size=pipeline.test_size, split=pipeline.split,
                         threshold_method="validation", ece=reliability["ece"], folds=None, engine="dask")
    model.data_fingerprint = dataset.fingerprint
    saved = False
    if pipeline.save:
        reporter("save", 0.97, f"saving as {pipeline.name!r}")
        pipeline._check_name_free()
        model.save(pipeline.name, overwrite=pipeline.overwrite)
        saved = True
    duration = time.perf_counter() - started
    if progress is not None:
        progress(ProgressEvent("done", 1.0, f"done in {duration:.1f} s: F1 {metrics['f1']:.3f}"))
    labels, chosen_on = model.threshold_scores
    return TrainingResult(
        model=model, name=model.name if saved else pipeline.name, kind=pipeline.kind, params=dict(model.params),
        seed=pipeline.seed, metrics=jsonable(model.metrics), pr_curve=curve, y_test=y_test, test_scores=scores,
        duration_s=round(duration, 3), fit_seconds=round(fit_seconds, 3), saved=saved,
        data_fingerprint=model.data_fingerprint, test_size=pipeline.test_size, n_train=n_fit,
        trained_at=model.trained_at, model_version=model.version, split=pipeline.split,
        threshold_method="validation", folds=None, reliability=jsonable(reliability),
        threshold_labels=np.asarray(labels, dtype=int), threshold_scores=np.asarray(chosen_on, dtype=float))


def _run_on_sample(pipeline: Any, dataset: Any, progress: Any, cancel: Any, sample_rows: int) -> Any:
    """A kind that cannot train distributed: train on a stratified sample in memory, and say so."""
    from fraud_app.data.partitioned import stratified_sample
    from fraud_app.scale.engine import get_client

    reporter = Reporter(progress, cancel)
    reporter("prepare", 0.0, f"{pipeline.kind} cannot train distributed: drawing a stratified sample of at most "
                             f"{sample_rows:,} of {dataset.rows:,} rows on the cluster")
    get_client()
    sample = stratified_sample(dataset, sample_rows, pipeline.seed)
    note = (f"stratified sample of {len(sample):,} of {dataset.rows:,} rows ({pipeline.kind} cannot train "
            "distributed)")
    inner = copy.copy(pipeline)
    inner.save = False
    result = inner.run(sample, progress=progress, cancel=cancel)
    result.model.fit_info["trained_on"] = note
    result.model.fit_info["engine"] = "dask-sample"
    result.model.data_fingerprint = dataset.fingerprint
    result.data_fingerprint = dataset.fingerprint
    if pipeline.save:
        pipeline._check_name_free()
        result.model.save(pipeline.name, overwrite=pipeline.overwrite)
        result.saved = True
        result.name = pipeline.name
        result.model_version = result.model.version
    log.info("%s trained on a %s", pipeline.kind, note)
    return result


def plan_text(kind: str, rows: int, sample_rows: int = DEFAULT_SAMPLE_ROWS) -> str:
    """How ``kind`` will train on a lazy data set of ``rows`` rows, in words (shown when a run starts)."""
    if kind in DISTRIBUTED_KINDS:
        return f"on the Dask cluster (lightgbm.dask, {rows:,} rows)"
    return (f"on a stratified sample of at most {min(sample_rows, rows):,} of {rows:,} rows "
            f"({kind} cannot train distributed)")


def engine_note(fit_info: dict[str, Any]) -> str | None:
    """Where a model trained, in words, from its ``fit_info``: None for an ordinary in-memory fit."""
    engine = fit_info.get("engine")
    if engine == "dask":
        return (f"trained on the Dask cluster ({fit_info.get('workers', '?')} workers, "
                f"{fit_info.get('partitions', '?')} partitions)")
    if engine == "dask-sample":
        return f"trained on a {fit_info.get('trained_on', 'stratified sample')}"
    return None


__all__ = ["DEFAULT_SAMPLE_ROWS", "DISTRIBUTED_KINDS", "REFERENCE_ROWS", "VALIDATION_SHARE", "engine_note", "plan_text",
           "run_distributed"]
