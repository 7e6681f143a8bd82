"""The baseline: the assignment's ``DecisionTreeClassifier(max_depth=4, criterion="entropy")``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fraud_app.models._sklearn import skops_dump, skops_load, tree_contributions
from fraud_app.models.base import FraudModel, Reporter, register_kind

MODEL_FILE = "model.skops"


@register_kind
class DecisionTreeModel(FraudModel):
    """A single decision tree: the baseline every other kind must beat."""

    kind: ClassVar[str] = "decision_tree"
    file_format: ClassVar[str] = "skops"
    default_params: ClassVar[dict[str, Any]] = {
        "max_depth": 4,
        "criterion": "entropy",
        "min_samples_leaf": 1,
        "class_weight": None,
        "random_state": 0,
    }
    hyperparameters: ClassVar[dict[str, dict[str, Any]]] = {
        "max_depth": {"default": 4, "bounds": (1, 30), "doc": "Maximum depth of the tree (the baseline uses 4)."},
        "criterion": {"default": "entropy", "objects": ["entropy", "gini", "log_loss"],
                      "doc": "Split quality measure."},
        "min_samples_leaf": {"default": 1, "bounds": (1, 500), "doc": "Minimum rows in a leaf."},
        "class_weight": {"default": None, "objects": [None, "balanced"],
                         "doc": "None, or 'balanced' to up-weight the rare fraud class."},
    }

    def _validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["max_depth"] is not None and int(params["max_depth"]) < 1:
            raise ValueError("max_depth must be at least 1 (or None)")
        if params["criterion"] not in ("gini", "entropy", "log_loss"):
            raise ValueError("criterion must be 'gini', 'entropy' or 'log_loss'")
        if params["class_weight"] not in (None, "balanced"):
            raise ValueError("class_weight must be None or 'balanced'")
        if int(params["min_samples_leaf"]) < 1:
            raise ValueError("min_samples_leaf must be at least 1")
        return params

    def _estimator(self):
        from sklearn.tree import DecisionTreeClassifier

        p = self.params
        return DecisionTreeClassifier(
            max_depth=None if p["max_depth"] is None else int(p["max_depth"]),
            criterion=p["criterion"], min_samples_leaf=int(p["min_samples_leaf"]),
            class_weight=p["class_weight"], random_state=int(p["random_state"]))

    def _fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                   reporter: Reporter) -> None:
        reporter("fit", 0.0, "fitting the decision tree")
        self.estimator_ = self._estimator().fit(X_train, y_train)
        reporter("fit", 1.0, f"decision tree fitted ({self.estimator_.tree_.node_count} nodes)")

    def _predict_scores(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(X)[:, list(self.estimator_.classes_).index(1)]

    def _contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        return tree_contributions([self.estimator_], X, self.estimator_.classes_)

    def _save_artifacts(self, folder: Path) -> None:
        skops_dump(self.estimator_, folder / MODEL_FILE)

    def _load_artifacts(self, folder: Path) -> None:
        from sklearn.tree import DecisionTreeClassifier

        self.estimator_ = skops_load(folder / MODEL_FILE, DecisionTreeClassifier)
