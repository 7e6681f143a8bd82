"""Fraud models (no Panel): the :class:`FraudModel` abstraction, its kinds and the model store.

>>> from fraud_app.models import create, load_model
>>> model = create("lightgbm").fit(X, y)          # doctest: +SKIP
>>> model.save("my_model")                        # doctest: +SKIP
>>> load_model("my_model").predict_proba(X)       # doctest: +SKIP

Add a kind with one class and one registration::

    @register_kind
    class MyModel(FraudModel):
        kind = "my_kind"
        ...
"""

import os as _os

# LightGBM's OpenMP threads spin while waiting by default; on a small shared machine that makes
# a 2-thread fit several times slower whenever another process is busy. Passive waiting costs
# nothing when the machine is idle. Set before LightGBM (and its libgomp) is first loaded; an
# explicit OMP_WAIT_POLICY from the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Registration order is the order of MODEL_KINDS: baseline first.
from fraud_app.models import tree as _tree  # noqa: I001, F401  (registers "decision_tree")
from fraud_app.models import lgbm as _lgbm  # noqa: F401  (registers "lightgbm")
from fraud_app.models import forest as _forest  # noqa: F401  (registers "random_forest")
from fraud_app.models import xgb as _xgb  # noqa: F401  (registers "xgboost")
from fraud_app.models import aggregator as _aggregator  # noqa: F401  (registers "aggregator")
from fraud_app.models.aggregator import AggregatorModel
from fraud_app.models.base import (
    CONTRIBUTION_UNITS,
    DEFAULT_FOLDS,
    HYPERPARAMETERS,
    THRESHOLD_METHODS,
    VALIDATION_FRACTION,
    ModelParams,
    FraudModel,
    ProgressEvent,
    Reporter,
    best_f1_threshold,
    check_features,
    create,
    is_cancelled,
    model_class,
    model_kinds,
    register_kind,
)
from fraud_app.models.errors import (
    InvalidModelNameError,
    ModelExistsError,
    ModelLoadError,
    ModelNotFoundError,
    NotFittedError,
    TrainingCancelled,
    UnknownModelKindError,
)
from fraud_app.models.calibration import CALIBRATION_METHODS, Calibration
from fraud_app.models.store import (
    active_model_status,
    delete_model,
    get_active_model_name,
    list_models,
    load_model,
    model_exists,
    model_path,
    read_metadata,
    save_model,
    set_active_model,
    update_threshold,
    validate_model_name,
)
from fraud_app.models.forest import RandomForestModel
from fraud_app.models.lgbm import LightGBMModel
from fraud_app.models.tree import DecisionTreeModel
from fraud_app.models.xgb import XGBoostModel

#: The built-in kind names (``model_kinds()`` also lists kinds registered later).
MODEL_KINDS: tuple[str, ...] = model_kinds()

__all__ = [
    "CALIBRATION_METHODS", "CONTRIBUTION_UNITS", "DEFAULT_FOLDS", "HYPERPARAMETERS", "MODEL_KINDS",
    "THRESHOLD_METHODS", "VALIDATION_FRACTION", "Calibration", "ModelParams", "active_model_status",
    "AggregatorModel", "DecisionTreeModel", "FraudModel", "LightGBMModel", "RandomForestModel", "XGBoostModel", "ProgressEvent",
    "Reporter",
    "InvalidModelNameError", "ModelExistsError", "ModelLoadError", "ModelNotFoundError", "NotFittedError",
    "TrainingCancelled", "UnknownModelKindError",
    "best_f1_threshold", "check_features", "create", "delete_model", "get_active_model_name", "is_cancelled",
    "list_models", "load_model", "model_class", "model_exists", "model_kinds", "model_path", "read_metadata",
    "register_kind", "save_model", "set_active_model", "update_threshold", "validate_model_name",
]
