"""Data: the schema, loading and validation, fetching the real set, synthetic data."""

from fraud_app.data.loader import (
    DataNotFoundError,
    DatasetInfo,
    clear_cache,
    dataset_info,
    fingerprint,
    is_loaded,
    load_transactions,
    read_transactions_file,
)
from fraud_app.data.schema import (
    COLUMNS,
    KAGGLE_COLUMNS,
    MODEL_FEATURES,
    PCA_FEATURES,
    TARGET,
    SchemaError,
    to_canonical,
    validate_transactions,
)
from fraud_app.data.synthetic import make_synthetic

__all__ = [
    "COLUMNS", "KAGGLE_COLUMNS", "MODEL_FEATURES", "PCA_FEATURES", "TARGET",
    "DataNotFoundError", "DatasetInfo", "SchemaError",
    "clear_cache", "dataset_info", "fingerprint", "is_loaded", "load_transactions", "make_synthetic",
    "read_transactions_file", "to_canonical", "validate_transactions",
]
