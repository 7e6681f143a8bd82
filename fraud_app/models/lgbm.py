"""LightGBM, the strong model: a gradient-boosted tree ensemble tuned for the 0.17 % fraud rate.

The booster is trained with ``lightgbm.train`` (not the scikit-learn wrapper) so progress and
cancellation hook into every boosting round, and it is saved in LightGBM's own text model
format, which is parsed, never executed.

Defaults were chosen on out-of-fold scores of training rows only (``bench/tune_lightgbm.py``,
results in ``bench/results/tune_lightgbm.json``): 300 rounds at learning rate 0.05 with 15
leaves, ``min_child_samples=5``, 80 % row and column sampling, no class re-weighting and no
early stopping. The variations tried (600 rounds, learning rate 0.02, 31 leaves, 20 rows per
leaf, 50 % columns, early stopping on the folds, a fraud weight of 3) were within noise or worse;
so were those of a second round (``--round 2``: a leaf-output cap ``max_delta_step`` of 1, alone or
with more rounds or leaves, L2 of 10, no bagging, 31 leaves with 20 rows per leaf), and those of a
third (``bench/tune_screen.py``: class weights of 10 and 577, 750 rounds at 0.02, seed bags of
2-5, smoothed or bootstrapped thresholds).
Sigmoid (Platt) calibration on the out-of-fold scores lowers the cross-fitted Brier score by
about 5 % and keeps the ranking, so it is on by default. The final model is, by default, the bag
of the fold models that chose the out-of-fold threshold (``final_model="fold_bag"``; a fourth
round, ``bench/tune_refit.py``, measured +0.008 PR-AUC over a refit on all rows, on all 15 outer
folds of a nested study; the F1 gain, +0.005, was within its noise). LightGBM's own defaults (learning rate
0.1, 31 leaves, 100 rounds) diverge on this data set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import param

from fraud_app.data import MODEL_FEATURES
from fraud_app.models.base import (
    VALIDATION_FRACTION,
    FraudModel,
    ModelParams,
    Reporter,
    boosting_param,
    calibration_param,
    register_kind,
)
from fraud_app.models.calibration import sigmoid
from fraud_app.models.errors import ModelLoadError

MODEL_FILE = "model.lgb.txt"


@register_kind
class LightGBMModel(FraudModel):
    """Gradient-boosted trees (LightGBM); early stopping (when on) watches the held-out fold."""

    kind: ClassVar[str] = "lightgbm"
    file_format: ClassVar[str] = "lightgbm-text"
    contribution_space: ClassVar[str] = "log_odds"
    #: Models saved before ``final_model`` existed were refitted on all training rows.
    legacy_params: ClassVar[dict[str, Any]] = {**FraudModel.legacy_params, "final_model": "refit"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        #: The fitted boosters: one (a refit, a validation-split fit) or the k fold models of a fold bag.
        self.boosters_: list[Any] = []

    @property
    def booster_(self) -> Any:
        """The booster of a one-booster model (a fold bag has several: :attr:`boosters_`)."""
        if len(self.boosters_) != 1:
            raise AttributeError(f"this LightGBM model holds {len(self.boosters_)} boosters (see boosters_)")
        return self.boosters_[0]

    @booster_.setter
    def booster_(self, booster: Any) -> None:
        self.boosters_ = [booster]

    class Params(ModelParams):
        """Hyper-parameters of LightGBM (defaults: ``bench/tune_lightgbm.py``)."""

        n_estimators = param.Integer(default=300, bounds=(1, 100_000), softbounds=(10, 5000),
                                     doc="Boosting rounds (the maximum when early stopping is on).")
        learning_rate = param.Number(default=0.05, bounds=(1e-6, 1.0), softbounds=(0.001, 0.5),
                                     doc="Shrinkage of each tree.")
        num_leaves = param.Integer(default=15, bounds=(2, 131_072), softbounds=(2, 255),
                                   doc="Leaves per tree (model complexity).")
        max_depth = param.Integer(default=-1, bounds=(-1, 1000), precedence=-1,
                                  doc="Maximum depth of each tree (-1 = no limit; num_leaves bounds the size).")
        min_child_samples = param.Integer(default=5, bounds=(1, 10**9), softbounds=(1, 1000),
                                          doc="Minimum rows in a leaf.")
        subsample = boosting_param("subsample")
        colsample_bytree = boosting_param("colsample_bytree")
        reg_lambda = boosting_param("reg_lambda")
        scale_pos_weight = boosting_param("scale_pos_weight")
        max_delta_step = boosting_param("max_delta_step")
        early_stopping_rounds = param.Integer(
            default=0, bounds=(0, 100_000), softbounds=(0, 1000),
            doc="Stop after this many rounds without improvement on the held-out fold (0 = off); the final "
                "fit then boosts for the folds' mean round count, scaled to all rows.")
        early_stopping_metric = param.Selector(default="binary_logloss",
                                               objects=["binary_logloss", "average_precision", "auc"],
                                               doc="Held-out metric watched by early stopping.")
        refit = param.Boolean(default=False,
                              doc="Validation-split thresholds only: after choosing the threshold, refit on all "
                                  "training rows for the rounds found.")
        final_model = param.Selector(
            default="fold_bag", objects=["fold_bag", "refit"],
            doc="Out-of-fold thresholds only: 'fold_bag' keeps the k fold models and averages their log-odds, "
                "so the threshold belongs to the models that scored it (no final fit); 'refit' fits one more "
                "model on all training rows and gives it the fold models' threshold.")
        calibration = calibration_param("sigmoid")
        n_jobs = param.Integer(default=2, bounds=(1, 64), precedence=-1, doc="Threads used by LightGBM.")
        random_state = boosting_param("random_state")

    def _lgb_params(self) -> dict[str, Any]:
        p = self.params
        return {
            "objective": "binary",
            "metric": p["early_stopping_metric"],
            "learning_rate": float(p["learning_rate"]),
            "num_leaves": p["num_leaves"],
            "max_depth": p["max_depth"],
            "min_data_in_leaf": p["min_child_samples"],
            "bagging_fraction": float(p["subsample"]),
            "bagging_freq": 1 if p["subsample"] < 1.0 else 0,
            "feature_fraction": float(p["colsample_bytree"]),
            "lambda_l2": float(p["reg_lambda"]),
            "scale_pos_weight": float(p["scale_pos_weight"]),
            "max_delta_step": float(p.get("max_delta_step", 0.0)),
            "num_threads": p["n_jobs"],
            "seed": p["random_state"],
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }

    def _train(self, X: np.ndarray, y: np.ndarray, rounds: int, reporter: Reporter, stage: str = "fit",
               X_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> Any:
        import lightgbm as lgb

        reporter(stage, 0.0, f"boosting up to {rounds} rounds", 0, rounds)

        def on_iteration(env: Any) -> None:
            done = env.iteration + 1
            reporter(stage, done / rounds, f"boosting round {done}/{rounds}", done, rounds)

        train_set = lgb.Dataset(X, y, feature_name=list(MODEL_FEATURES), free_raw_data=True)
        callbacks = [on_iteration]
        extra: dict[str, Any] = {}
        stop = self.params["early_stopping_rounds"]
        if stop > 0 and X_val is not None:
            callbacks.append(lgb.early_stopping(stop, first_metric_only=True, verbose=False))
            extra = {"valid_sets": [lgb.Dataset(X_val, y_val, reference=train_set)], "valid_names": ["held_out"]}
        booster = lgb.train(self._lgb_params(), train_set, num_boost_round=rounds, callbacks=callbacks, **extra)
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        # Keep exactly the rounds that are used, so the saved text model predicts the same.
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), int(best)

    def fit_estimator(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None,
                      y_val: np.ndarray | None, reporter: Reporter) -> None:
        """Boost on the training part; early stopping (when on) watches ``X_val`` (a held-out fold).

        Without ``X_val`` (the final fit on all training rows) and with early stopping on, the
        round count is the folds' mean best round scaled by the data-size ratio k / (k - 1).
        """
        total = self.params["n_estimators"]
        folds_best = self.fit_info.get("fold_best_iterations")
        if X_val is None and self.params["early_stopping_rounds"] > 0 and folds_best:
            k = len(folds_best)
            total = max(1, min(total, round(float(np.mean(folds_best)) * k / max(k - 1, 1))))
            self.fit_info["final_rounds"] = int(total)
        self.booster_, best = self._train(X_train, y_train, total, reporter, X_val=X_val, y_val=y_val)
        self.fit_info["best_iteration"] = best
        reporter("fit", 1.0, f"boosting stopped at round {best} of {total}", best, total)

    def final_fit(self, X: np.ndarray, y: np.ndarray, reporter: Reporter) -> None:
        """``final_model="fold_bag"``: keep the fold models (no fit); ``"refit"``: fit on all rows."""
        self.fit_info["final_model"] = self.params["final_model"]
        if self.params["final_model"] == "fold_bag" and self.fold_models:
            self.boosters_ = [b for m in self.fold_models for b in m.boosters_]
            self.fit_info["bag_size"] = len(self.boosters_)
            self.fit_info.pop("final_fit_rows", None)  # each fold model saw (k - 1) / k of the rows
            reporter("fit", 1.0, f"kept the {len(self.boosters_)} fold models as the final model (fold bag)")
            return
        self.fit_info["final_model"] = "refit"
        super().final_fit(X, y, reporter)

    def refit_estimator(self, X: np.ndarray, y: np.ndarray, reporter: Reporter) -> None:
        """Train on all rows for the early-stopped round count scaled by the larger data size."""
        rounds = max(1, round(self.fit_info["best_iteration"] / (1 - VALIDATION_FRACTION)))
        self.booster_, _ = self._train(X, y, rounds, reporter, stage="refit")
        self.fit_info["refit_rounds"] = int(rounds)

    def _threads(self, X: np.ndarray) -> int:
        # Always pass num_threads: LightGBM's default OpenMP team costs ~0.6 ms per call and then
        # spins on the cores (20x a one-row predict); one thread is as fast up to 10,000 rows.
        return 1 if len(X) <= 10_000 else int(self.params["n_jobs"])

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """P(fraud) of the booster, or the sigmoid of the fold bag's mean log-odds."""
        threads = self._threads(X)
        if len(self.boosters_) == 1:
            return self.boosters_[0].predict(X, num_threads=threads)
        raw = np.mean([b.predict(X, raw_score=True, num_threads=threads) for b in self.boosters_], axis=0)
        return sigmoid(raw)

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """LightGBM's ``pred_contrib`` (TreeSHAP; averaged over a fold bag): additive in log-odds."""
        threads = self._threads(X)
        raw = np.mean([b.predict(X, pred_contrib=True, num_threads=threads) for b in self.boosters_], axis=0)
        return raw[:, :-1], float(raw[0, -1]) if len(raw) else 0.0

    def _files(self) -> list[str]:
        """``model.lgb.txt``, then ``model.2.lgb.txt``... for the other boosters of a fold bag."""
        n = int(self.fit_info.get("bag_size") or 1)
        return [MODEL_FILE] + [MODEL_FILE.replace(".lgb", f".{i}.lgb") for i in range(2, n + 1)]

    def save_artifacts(self, folder: Path) -> None:
        files = self._files()
        if len(files) != len(self.boosters_):
            raise RuntimeError(f"fit_info says {len(files)} boosters, the model holds {len(self.boosters_)}")
        for file, booster in zip(files, self.boosters_):
            (folder / file).write_text(booster.model_to_string(), encoding="utf-8")

    def load_artifacts(self, folder: Path) -> None:
        self.boosters_ = [self._load_booster(folder / file) for file in self._files()]

    @staticmethod
    def _load_booster(path: Path) -> Any:
        """One LightGBM text model, checked before it is parsed."""
        import lightgbm as lgb

        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{path.name} is not a LightGBM text model: {exc}") from None
        if not text.startswith("tree\n"):
            raise ModelLoadError(f"{path.name} is not a LightGBM text model (refusing to load it)")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"{path.name} could not be parsed: {exc}") from None
        if booster.feature_name() != list(MODEL_FEATURES):
            raise ModelLoadError(f"{path.name} was trained on other inputs than the 29 model features")
        return booster
