"""A random forest (scikit-learn), grown in chunks so progress and cancellation work between them.

Defaults (``bench/tune_random_forest.py``, cross-validation on training rows only): 150 trees,
``max_features="sqrt"``, no class re-weighting, full depth, and each tree on a 25 % bootstrap
sample. 50 % samples scored slightly higher in the study (0.801 vs 0.788 on the selection
score) but cost about twice the fit time, which on a shared 2-core machine made the 5-seed
benchmark (a forest and an aggregator member per seed) far too slow; 25 % is the trade-off.
No calibration by default: on out-of-fold scores (``bench/tune_aggregator.py``) Platt scaling made
the forest's Brier score worse and isotonic calibration changed it by under 1 %.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import param

from fraud_app.models._sklearn import skops_dump, skops_load, tree_contributions
from fraud_app.models.base import FraudModel, ModelParams, Reporter, calibration_param, register_kind

MODEL_FILE = "model.skops"
#: Trees added per chunk (progress is reported and cancellation checked after each chunk).
CHUNK = 25


@register_kind
class RandomForestModel(FraudModel):
    """Bagged, de-correlated decision trees; P(fraud) is the trees' mean leaf frequency."""

    kind: ClassVar[str] = "random_forest"
    file_format: ClassVar[str] = "skops"
    contribution_space: ClassVar[str] = "probability"

    class Params(ModelParams):
        """Hyper-parameters of the random forest."""

        n_estimators = param.Integer(default=150, bounds=(1, 10_000), softbounds=(10, 1000), doc="Number of trees.")
        max_depth = param.Integer(default=None, bounds=(1, 1000), softbounds=(1, 60), allow_None=True,
                                  doc="Maximum depth of each tree (null = unlimited).")
        min_samples_leaf = param.Integer(default=1, bounds=(1, 1_000_000), softbounds=(1, 200),
                                         doc="Minimum rows in a leaf.")
        max_features = param.Selector(default="sqrt", objects=["sqrt", "log2", None],
                                      doc="Inputs considered at each split ('sqrt' of 29 = 5; None = all).")
        max_samples = param.Number(default=0.25, bounds=(0.0, 1.0), inclusive_bounds=(False, True),
                                   softbounds=(0.05, 1.0), allow_None=True,
                                   doc="Share of rows bootstrapped for each tree (smaller = faster).")
        class_weight = param.Selector(default=None, objects=[None, "balanced", "balanced_subsample"],
                                      doc="Re-weight the fraud class (None = no re-weighting).")
        calibration = calibration_param("none")
        n_jobs = param.Integer(default=2, bounds=(1, 64), precedence=-1, doc="Threads used to grow the trees.")
        random_state = param.Integer(default=0, bounds=(0, 2**31 - 1), precedence=-1,
                                     doc="Seed of the bootstrap samples and feature draws.")

    def fit_estimator(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None,
                      y_val: np.ndarray | None, reporter: Reporter) -> None:
        from sklearn.ensemble import RandomForestClassifier

        p = self.params
        total = p["n_estimators"]
        forest = RandomForestClassifier(
            n_estimators=0, max_depth=p["max_depth"], min_samples_leaf=p["min_samples_leaf"],
            max_features=p["max_features"], max_samples=p["max_samples"], class_weight=p["class_weight"],
            n_jobs=int(p["n_jobs"]), random_state=int(p["random_state"]), warm_start=True)
        grown = 0
        reporter("fit", 0.0, f"growing {total} trees", 0, total)
        while grown < total:
            grown = min(total, grown + CHUNK)
            forest.set_params(n_estimators=grown)
            with warnings.catch_warnings():
                # Every chunk is fitted on the same full training rows, so the "balanced" presets
                # give exactly the weights of a one-shot fit; sklearn warns for warm_start in general.
                warnings.filterwarnings("ignore", message='class_weight presets "balanced"', category=UserWarning)
                forest.fit(X_train, y_train)
            reporter("fit", grown / total, f"{grown}/{total} trees", grown, total)
        forest.set_params(warm_start=False)
        self.estimator_ = forest

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(X)[:, list(self.estimator_.classes_).index(1)]

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        return tree_contributions(self.estimator_.estimators_, X, self.estimator_.classes_)

    def save_artifacts(self, folder: Path) -> None:
        skops_dump(self.estimator_, folder / MODEL_FILE)

    def load_artifacts(self, folder: Path) -> None:
        from sklearn.ensemble import RandomForestClassifier

        self.estimator_ = skops_load(folder / MODEL_FILE, RandomForestClassifier)
