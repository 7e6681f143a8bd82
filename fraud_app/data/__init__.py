"""Data: the schema, loading and validation, fetching the real set, synthetic data."""

from fraud_app.data.loader import (
    DataNotFoundError,
    DatasetInfo,
    DatasetTooLargeError,
    clear_cache,
    dataset_info,
    fingerprint,
    is_loaded,
    load_transactions,
    read_transactions_file,
)
from fraud_app.data.partitioned import LazyDataset, open_dataset
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
    "DataNotFoundError", "DatasetInfo", "DatasetTooLargeError", "LazyDataset", "SchemaError",
    "clear_cache", "dataset_info", "fingerprint", "is_loaded", "load_transactions", "make_synthetic",
    "open_dataset", "read_transactions_file", "to_canonical", "validate_transactions",
]
