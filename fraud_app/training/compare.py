"""Compare saved models on the same test rows (no Panel): PR curves, reliability curves and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.data import TARGET
from fraud_app.models import load_model
from fraud_app.models.jsonutil import jsonable
from fraud_app.training.metrics import evaluate_scores, pr_curve, reliability_curve
from fraud_app.training.splits import SPLITS, train_test_indices


@dataclass
class ModelComparison:
    """The result of :func:`compare_models`.

    Attributes
    ----------
    split, seed, test_size : the test rows every model was scored on.
    n_test, n_test_fraud : their number, and the frauds among them.
    models : one dict per model, in the order asked: ``name``, ``kind``, ``version``,
        ``threshold``, ``threshold_method``, ``metrics`` (f1, precision, recall, pr_auc, roc_auc,
        brier, log_loss, confusion_matrix... at the model's own threshold), ``pr_curve``
        (``precision``/``recall``/``thresholds`` lists), ``reliability`` (see
        :func:`~fraud_app.training.metrics.reliability_curve`) and ``held_out``: True when the
        model was trained with exactly this split (same split, seed, test size and data), so
        none of these rows was in its training part. False means the model may have *trained*
        on some of these rows: its figures are then flattering and not comparable.
    """

    split: str
    seed: int
    test_size: float
    n_test: int
    n_test_fraud: int
    models: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all_held_out(self) -> bool:
        """True when no model saw any of the test rows in training."""
        return all(m["held_out"] for m in self.models)

    def table(self) -> pd.DataFrame:
        """One row per model: name, kind, F1, precision, recall, PR-AUC, ROC-AUC, Brier, threshold, held_out."""
        rows = [{"name": m["name"], "kind": m["kind"], **{k: m["metrics"][k] for k in
                 ("f1", "precision", "recall", "pr_auc", "roc_auc", "brier")},
                 "threshold": m["threshold"], "held_out": m["held_out"]} for m in self.models]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"split": self.split, "seed": self.seed, "test_size": self.test_size,
                         "n_test": self.n_test, "n_test_fraud": self.n_test_fraud,
                         "all_held_out": self.all_held_out, "models": self.models})


def _trained_split(meta_metrics: dict[str, Any]) -> tuple[str, int | None, float | None]:
    return (str(meta_metrics.get("split") or "random"), meta_metrics.get("seed"), meta_metrics.get("test_size"))


def compare_models(names: Sequence[str], frame: pd.DataFrame, *, split: str | None = None,
                   seed: int | None = None, test_size: float | None = None) -> ModelComparison:
    """Score two or more saved models on the same test rows and return their curves and metrics.

    Parameters
    ----------
    names : saved model names (at least two, no duplicates).
    frame : the transactions (the 29 inputs, ``is_fraud``, and ``time`` for a time split); the same
        data the models were trained on, for ``held_out`` to mean anything.
    split, seed, test_size : the test rows. Default: the split the *first* model was trained
        and evaluated with (``metrics["split"]``, ``["seed"]``, ``["test_size"]`` of its metadata;
        random, 0, 0.2 for a model without them). Pass them to choose other rows.

    Returns
    -------
    ModelComparison
        per model: metrics at its own threshold, the PR curve, the reliability curve, and
        ``held_out`` (False when the model's own training split differs from these rows, or it
        was trained on other data: then it may have trained on some of them).

    Raises
    ------
    ValueError : fewer than two names, a duplicate, or a bad split / test size.
    ModelNotFoundError, InvalidModelNameError, ModelLoadError : a name cannot be loaded.
    SchemaError : ``frame`` lacks a column.

    Examples
    --------
    >>> result = compare_models(["lgb", "baseline"], load_transactions())   # doctest: +SKIP
    >>> result.table()                                                       # doctest: +SKIP
    """
    names = list(names)
    if len(names) < 2:
        raise ValueError("choose at least two saved models to compare")
    if len(set(names)) != len(names):
        raise ValueError("each model can be compared once")
    models = [load_model(n) for n in names]
    first_split, first_seed, first_size = _trained_split(models[0].metrics)
    split = split or first_split
    seed = int(first_seed if seed is None and first_seed is not None else (seed or 0))
    test_size = float(test_size if test_size is not None else (first_size or 0.2))
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if TARGET not in frame.columns:
        from fraud_app.data import SchemaError

        raise SchemaError(f"the frame needs the label column {TARGET!r}")
    _, test = train_test_indices(frame, split, test_size, seed)
    test_frame = frame.iloc[test]
    y = test_frame[TARGET].to_numpy().astype(int)
    fingerprint = frame.attrs.get("fingerprint")
    out = ModelComparison(split=split, seed=seed, test_size=test_size, n_test=int(len(y)), n_test_fraud=int(y.sum()))
    for model in models:
        scores = model.predict_proba(test_frame)
        m_split, m_seed, m_size = _trained_split(model.metrics)
        same_rows = (m_split == split and m_size is not None and np.isclose(float(m_size), test_size)
                     and (split == "time" or m_seed == seed))
        same_data = fingerprint is None or model.data_fingerprint in (None, fingerprint)
        out.models.append(jsonable({
            "name": model.name, "kind": model.kind, "version": model.version, "threshold": model.threshold,
            "threshold_method": model.fit_info.get("threshold_method"),
            "metrics": evaluate_scores(y, scores, model.threshold), "pr_curve": pr_curve(y, scores),
            "reliability": reliability_curve(y, scores), "held_out": bool(same_rows and same_data),
        }))
    return out


__all__ = ["ModelComparison", "compare_models"]
