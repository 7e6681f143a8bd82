"""XGBoost: gradient-boosted trees with a capped leaf output, saved in XGBoost's own JSON format.

The booster is trained with ``xgboost.train`` (not the scikit-learn wrapper) so progress and
cancellation hook into every boosting round. It is saved with ``Booster.save_model("….json")``,
XGBoost's JSON model format, which is parsed, never executed; a file that is not such a model
is refused with :class:`ModelLoadError` before XGBoost reads it.

Defaults are those of the nested study ``bench/tune_refit.py`` (training rows only; results in
``bench/results/tune_refit.json``): 300 rounds at learning rate 0.1, depth 6, 80 % row and
column sampling, a leaf-output cap ``max_delta_step=1`` (which steadies boosting when frauds
are rare), the ``hist`` tree method, no class re-weighting. With the app's standard procedure
(threshold from out-of-fold scores, then a final fit on all training rows) it scored a mean F1
0.0126 ± 0.0034 above LightGBM's default over 15 outer folds (12 wins, 3 losses), PR-AUC about
equal. Its probabilities are Platt-calibrated on the out-of-fold scores by default: on this
configuration's out-of-fold scores (``bench/results/tune_xgboost.json``) that lowered the Brier
score by 2 %, isotonic raised it (the calibration is monotone: it changes neither ranking nor F1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import param

from fraud_app.data import MODEL_FEATURES
from fraud_app.models.base import (
    FraudModel,
    ModelParams,
    Reporter,
    boosting_param,
    calibration_param,
    register_kind,
)
from fraud_app.models.calibration import sigmoid
from fraud_app.models.errors import ModelLoadError

MODEL_FILE = "model.xgb.json"
#: Up to this many rows a prediction runs on one thread, above it ``n_jobs`` (LightGBM's cut-off; up
#: to it a second thread gave no consistent gain, at 100,000 rows it halved the time when the other
#: core was free: ``bench/bench_xgb_threads.py``, docs/models.md "XGBoost").
SMALL_BATCH_ROWS = 10_000


@register_kind
class XGBoostModel(FraudModel):
    """Gradient-boosted trees (XGBoost, ``hist``) with the leaf-output cap the study chose."""

    kind: ClassVar[str] = "xgboost"
    file_format: ClassVar[str] = "xgboost-json"
    contribution_space: ClassVar[str] = "log_odds"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        #: The fitted booster (None until fitted or loaded).
        self.booster_: Any = None
        #: Copies of the booster set to a thread count, made once per count (see :meth:`_booster`).
        self._by_threads: dict[int, Any] = {}

    class Params(ModelParams):
        """Hyper-parameters of XGBoost (defaults: ``bench/tune_refit.py``)."""

        n_estimators = param.Integer(default=300, bounds=(1, 100_000), softbounds=(10, 3000),
                                     doc="Boosting rounds.")
        learning_rate = param.Number(default=0.1, bounds=(1e-6, 1.0), softbounds=(0.001, 0.5),
                                     doc="Shrinkage of each tree (XGBoost's eta).")
        max_depth = param.Integer(default=6, bounds=(1, 64), softbounds=(1, 16),
                                  doc="Maximum depth of each tree.")
        min_child_weight = param.Number(default=1.0, bounds=(0.0, 1e9), softbounds=(0.0, 100.0),
                                        doc="Minimum sum of instance weight (hessian) in a leaf.")
        subsample = boosting_param("subsample")
        colsample_bytree = boosting_param("colsample_bytree")
        reg_lambda = boosting_param("reg_lambda")
        scale_pos_weight = boosting_param("scale_pos_weight")
        max_delta_step = boosting_param("max_delta_step", default=1.0,
                                        doc="Cap on each leaf's output (0 = no cap); the study's 1 steadies boosting "
                                            "when frauds are rare.")
        calibration = calibration_param("sigmoid")
        n_jobs = param.Integer(default=2, bounds=(1, 64), precedence=-1,
                               doc="Threads used by XGBoost (fits and predictions of over 10,000 rows).")
        random_state = boosting_param("random_state")

    def _xgb_params(self) -> dict[str, Any]:
        p = self.params
        return {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "tree_method": "hist",
            "eta": float(p["learning_rate"]),
            "max_depth": p["max_depth"],
            "min_child_weight": float(p["min_child_weight"]),
            "subsample": float(p["subsample"]),
            "colsample_bytree": float(p["colsample_bytree"]),
            "lambda": float(p["reg_lambda"]),
            "scale_pos_weight": float(p["scale_pos_weight"]),
            "max_delta_step": float(p["max_delta_step"]),
            "nthread": p["n_jobs"],
            "seed": p["random_state"],
            "verbosity": 0,
        }

    def fit_estimator(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None,
                      y_val: np.ndarray | None, reporter: Reporter) -> None:
        """Boost for ``n_estimators`` rounds on the training part (no early stopping: ``X_val`` is unused)."""
        import xgboost as xgb

        rounds = self.params["n_estimators"]
        reporter("fit", 0.0, f"boosting {rounds} rounds", 0, rounds)

        class Progress(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                reporter("fit", (epoch + 1) / rounds, f"boosting round {epoch + 1}/{rounds}", epoch + 1, rounds)
                return False

        train = xgb.DMatrix(X_train, label=y_train, feature_names=list(MODEL_FEATURES),
                            nthread=self.params["n_jobs"])
        self._set_booster(xgb.train(self._xgb_params(), train, num_boost_round=rounds, callbacks=[Progress()]))
        reporter("fit", 1.0, f"boosted {rounds} rounds", rounds, rounds)

    def _set_booster(self, booster: Any) -> None:
        self.booster_ = booster
        self._by_threads = {}

    def _booster(self, n_rows: int) -> Any:
        """The booster set to one thread for small batches, to ``n_jobs`` above them.

        A copy per thread count (made once), so concurrent predictions never change a shared
        booster's settings.
        """
        threads = 1 if n_rows <= SMALL_BATCH_ROWS else int(self.params["n_jobs"])
        booster = self._by_threads.get(threads)
        if booster is None:
            booster = self.booster_.copy()
            booster.set_param({"nthread": threads})
            self._by_threads[threads] = booster
        return booster

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """P(fraud): the sigmoid, in float64, of the booster's log-odds.

        ``inplace_predict`` reads the float array without a DMatrix copy. XGBoost computes in
        float32; taking its margin (not its probability) keeps P(fraud) near 1 from rounding to 1.
        """
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        margin = self._booster(len(X)).inplace_predict(X, predict_type="margin")
        return sigmoid(np.asarray(margin, dtype=np.float64))

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """XGBoost's ``pred_contribs`` (TreeSHAP): additive in log-odds, the last column is the base value."""
        import xgboost as xgb

        if len(X) == 0:
            return np.empty((0, len(MODEL_FEATURES))), 0.0
        data = xgb.DMatrix(X, feature_names=list(MODEL_FEATURES))
        raw = np.asarray(self._booster(len(X)).predict(data, pred_contribs=True), dtype=np.float64)
        return raw[:, :-1], float(raw[0, -1])

    def save_artifacts(self, folder: Path) -> None:
        self.booster_.save_model(str(folder / MODEL_FILE))

    def load_artifacts(self, folder: Path) -> None:
        self._set_booster(self._load_booster(folder / MODEL_FILE))

    @staticmethod
    def _load_booster(path: Path) -> Any:
        """One XGBoost JSON model, checked to be one before XGBoost parses it."""
        import xgboost as xgb

        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{path.name} is not an XGBoost JSON model: {exc}") from None
        if not isinstance(model, dict) or not isinstance(model.get("learner"), dict) or "version" not in model:
            raise ModelLoadError(f"{path.name} is not an XGBoost JSON model (no 'learner'/'version'; refusing to "
                                 "load it)")
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"{path.name} could not be parsed as an XGBoost model: {exc}") from None
        if booster.feature_names != list(MODEL_FEATURES):
            raise ModelLoadError(f"{path.name} was trained on other inputs than the 29 model features")
        return booster
