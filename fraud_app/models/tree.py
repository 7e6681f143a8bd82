"""The baseline: the assignment's ``DecisionTreeClassifier(max_depth=4, criterion="entropy")``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import param

from fraud_app.models._sklearn import skops_dump, skops_load, tree_contributions
from fraud_app.models.base import FraudModel, ModelParams, Reporter, calibration_param, register_kind

MODEL_FILE = "model.skops"


@register_kind
class DecisionTreeModel(FraudModel):
    """A single decision tree: the baseline every other kind must beat."""

    kind: ClassVar[str] = "decision_tree"
    file_format: ClassVar[str] = "skops"
    contribution_space: ClassVar[str] = "probability"

    class Params(ModelParams):
        """Hyper-parameters of the decision tree (the assignment's baseline by default)."""

        max_depth = param.Integer(default=4, bounds=(1, 1000), softbounds=(1, 30), allow_None=True,
                                  doc="Maximum depth of the tree (the baseline uses 4; null = unlimited).")
        criterion = param.Selector(default="entropy", objects=["entropy", "gini", "log_loss"],
                                   doc="Split quality measure.")
        min_samples_leaf = param.Integer(default=1, bounds=(1, 1_000_000), softbounds=(1, 500),
                                         doc="Minimum rows in a leaf.")
        class_weight = param.Selector(default=None, objects=[None, "balanced"],
                                      doc="None, or 'balanced' to up-weight the rare fraud class.")
        calibration = calibration_param("none")
        random_state = param.Integer(default=0, bounds=(0, 2**31 - 1), precedence=-1,
                                     doc="Seed of the tree (ties between equally good splits).")

    def _estimator(self):
        from sklearn.tree import DecisionTreeClassifier

        p = self.params
        return DecisionTreeClassifier(
            max_depth=p["max_depth"], criterion=p["criterion"], min_samples_leaf=p["min_samples_leaf"],
            class_weight=p["class_weight"], random_state=p["random_state"])

    def fit_estimator(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None,
                      y_val: np.ndarray | None, reporter: Reporter) -> None:
        reporter("fit", 0.0, "fitting the decision tree")
        self.estimator_ = self._estimator().fit(X_train, y_train)
        reporter("fit", 1.0, f"decision tree fitted ({self.estimator_.tree_.node_count} nodes)")

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(X)[:, list(self.estimator_.classes_).index(1)]

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        return tree_contributions([self.estimator_], X, self.estimator_.classes_)

    def save_artifacts(self, folder: Path) -> None:
        skops_dump(self.estimator_, folder / MODEL_FILE)

    def load_artifacts(self, folder: Path) -> None:
        from sklearn.tree import DecisionTreeClassifier

        self.estimator_ = skops_load(folder / MODEL_FILE, DecisionTreeClassifier)
