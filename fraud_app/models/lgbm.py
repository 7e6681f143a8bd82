"""LightGBM, the strong model: a gradient-boosted tree ensemble tuned for the 0.17 % fraud rate.

The booster is trained with ``lightgbm.train`` (not the scikit-learn wrapper) so progress and
cancellation hook into every boosting round, and it is saved in LightGBM's own text model
format, which is parsed, never executed.

Defaults were chosen by repeated cross-validation on training data only
(``bench/tune_lightgbm.py``, results in ``bench/results/tune_lightgbm.json``): 300 rounds at
learning rate 0.05 with 15 leaves, ``min_child_samples=5``, 80 % row and column sampling, no
class re-weighting and no early stopping (early stopping on the small validation split
stopped too soon and lost F1). LightGBM's own defaults (learning rate 0.1, 31 leaves, 100
rounds) diverge on this data set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fraud_app.data import MODEL_FEATURES
from fraud_app.models.base import VALIDATION_FRACTION, FraudModel, Reporter, register_kind
from fraud_app.models.errors import ModelLoadError

MODEL_FILE = "model.lgb.txt"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@register_kind
class LightGBMModel(FraudModel):
    """Gradient-boosted trees (LightGBM) with early stopping on the validation split."""

    kind: ClassVar[str] = "lightgbm"
    file_format: ClassVar[str] = "lightgbm-text"
    default_params: ClassVar[dict[str, Any]] = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "max_depth": -1,
        "min_child_samples": 5,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "scale_pos_weight": 1.0,
        "early_stopping_rounds": 0,
        "early_stopping_metric": "binary_logloss",
        "refit": False,
        "n_jobs": 2,
        "random_state": 0,
    }
    hyperparameters: ClassVar[dict[str, dict[str, Any]]] = {
        "n_estimators": {"default": 300, "bounds": (10, 5000),
                         "doc": "Boosting rounds (the maximum when early stopping is on)."},
        "learning_rate": {"default": 0.05, "bounds": (0.001, 0.5), "doc": "Shrinkage of each tree."},
        "num_leaves": {"default": 15, "bounds": (2, 255), "doc": "Leaves per tree (model complexity)."},
        "min_child_samples": {"default": 5, "bounds": (1, 1000), "doc": "Minimum rows in a leaf."},
        "subsample": {"default": 0.8, "bounds": (0.1, 1.0), "doc": "Share of rows sampled for each tree."},
        "colsample_bytree": {"default": 0.8, "bounds": (0.1, 1.0), "doc": "Share of inputs sampled for each tree."},
        "reg_lambda": {"default": 1.0, "bounds": (0.0, 100.0), "doc": "L2 regularisation of leaf values."},
        "scale_pos_weight": {"default": 1.0, "bounds": (1.0, 600.0),
                             "doc": "Weight of the fraud class (1 = none; large values over-flag)."},
        "early_stopping_rounds": {"default": 0, "bounds": (0, 1000),
                                  "doc": "Stop after this many rounds without validation improvement (0 = off)."},
        "early_stopping_metric": {"default": "binary_logloss",
                                  "objects": ["binary_logloss", "average_precision", "auc"],
                                  "doc": "Validation metric watched by early stopping."},
        "refit": {"default": False, "objects": [False, True],
                  "doc": "After choosing the threshold, refit on all training rows for the rounds found."},
    }

    def _validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        checks = {
            "n_estimators": (1, 100_000), "learning_rate": (1e-6, 1.0), "num_leaves": (2, 131_072),
            "min_child_samples": (1, 10**9), "subsample": (1e-6, 1.0), "colsample_bytree": (1e-6, 1.0),
            "reg_lambda": (0.0, 1e9), "scale_pos_weight": (1e-6, 1e9), "early_stopping_rounds": (0, 100_000),
            "n_jobs": (1, 64),
        }
        for key, (low, high) in checks.items():
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{key} must be a number in [{low}, {high}], got {value!r}")
        if params["early_stopping_metric"] not in ("binary_logloss", "average_precision", "auc"):
            raise ValueError("early_stopping_metric must be 'binary_logloss', 'average_precision' or 'auc'")
        params["refit"] = bool(params["refit"])
        for key in ("n_estimators", "num_leaves", "min_child_samples", "early_stopping_rounds", "n_jobs",
                    "max_depth", "random_state"):
            params[key] = int(params[key])
        return params

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
            "num_threads": p["n_jobs"],
            "seed": p["random_state"],
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }

    def _fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                   reporter: Reporter) -> None:
        import lightgbm as lgb

        total = self.params["n_estimators"]
        reporter("fit", 0.0, f"boosting up to {total} rounds", 0, total)

        def on_iteration(env: Any) -> None:
            done = env.iteration + 1
            reporter("fit", done / total, f"boosting round {done}/{total}", done, total)

        train_set = lgb.Dataset(X_train, y_train, feature_name=list(MODEL_FEATURES), free_raw_data=True)
        callbacks = [on_iteration]
        rounds = self.params["early_stopping_rounds"]
        extra: dict[str, Any] = {}
        if rounds > 0:
            callbacks.append(lgb.early_stopping(rounds, first_metric_only=True, verbose=False))
            extra = {"valid_sets": [lgb.Dataset(X_val, y_val, reference=train_set)], "valid_names": ["validation"]}
        booster = lgb.train(self._lgb_params(), train_set, num_boost_round=total, callbacks=callbacks, **extra)
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        # Keep exactly the rounds that are used, so the saved text model predicts the same.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.fit_info["best_iteration"] = int(best)
        reporter("fit", 1.0, f"boosting stopped at round {best} of {total}", best, total)

    def _refit(self, X: np.ndarray, y: np.ndarray, reporter: Reporter) -> None:
        """Train on all rows for the early-stopped round count scaled by the larger data size."""
        import lightgbm as lgb

        rounds = max(1, round(self.fit_info["best_iteration"] / (1 - VALIDATION_FRACTION)))

        def on_iteration(env: Any) -> None:
            done = env.iteration + 1
            reporter("refit", 1.0, f"refit round {done}/{rounds}", done, rounds)

        booster = lgb.train(self._lgb_params(), lgb.Dataset(X, y, feature_name=list(MODEL_FEATURES)),
                            num_boost_round=rounds, callbacks=[on_iteration])
        self.booster_ = lgb.Booster(model_str=booster.model_to_string())
        self.fit_info["refit_rounds"] = int(rounds)

    def _predict_scores(self, X: np.ndarray) -> np.ndarray:
        # Always pass num_threads: LightGBM's default OpenMP team costs ~0.6 ms per call and then
        # spins on the cores (20x a one-row predict); one thread is as fast up to 10,000 rows.
        threads = 1 if len(X) <= 10_000 else int(self.params["n_jobs"])
        return self.booster_.predict(X, num_threads=threads)

    def _contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """LightGBM's ``pred_contrib`` (TreeSHAP, log-odds), rescaled to probability units.

        For a row with raw score ``f`` and base raw score ``f0``, every log-odds contribution is
        multiplied by ``(sigmoid(f) - sigmoid(f0)) / (f - f0)``: signs and proportions are kept
        and the row's contributions add up to ``P(fraud) - sigmoid(f0)``.
        """
        threads = 1 if len(X) <= 10_000 else int(self.params["n_jobs"])
        raw = self.booster_.predict(X, pred_contrib=True, num_threads=threads)
        contrib, bias = raw[:, :-1], raw[:, -1]
        f = contrib.sum(axis=1) + bias
        p, p0 = _sigmoid(f), _sigmoid(bias)
        diff = f - bias
        safe = np.abs(diff) > 1e-9
        scale = np.where(safe, (p - p0) / np.where(safe, diff, 1.0), p0 * (1 - p0))
        return contrib * scale[:, None], float(p0[0]) if len(p0) else 0.0

    def _save_artifacts(self, folder: Path) -> None:
        (folder / MODEL_FILE).write_text(self.booster_.model_to_string(), encoding="utf-8")

    def _load_artifacts(self, folder: Path) -> None:
        import lightgbm as lgb

        path = folder / MODEL_FILE
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
        self.booster_ = booster
