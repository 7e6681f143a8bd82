"""Inference (no Panel): the one scoring service shared by the Inference tab and the REST API."""

from fraud_app.inference.service import (
    NoModelError,
    active_model_info,
    clear_model_cache,
    explain,
    get_model,
    resolve_model_name,
    save_scores,
    score,
    score_and_save,
    score_array,
    to_array,
)
from fraud_app.inference.validation import MAX_BATCH, PredictionInputError, parse_request
from fraud_app.inference.batch import BatchFileError, parse_batch_csv, results_to_csv, score_batch_csv  # noqa: I001
from fraud_app.inference.reference import SLIDER_FEATURES, random_transaction, reference_transaction, slider_ranges

__all__ = [
    "MAX_BATCH", "NoModelError", "PredictionInputError", "active_model_info", "clear_model_cache", "explain",
    "get_model", "parse_request", "resolve_model_name", "save_scores", "score", "score_and_save", "score_array",
    "to_array",
    # batch scoring of CSV files and the Inference tab's reference transaction (issue #7)
    "BatchFileError", "SLIDER_FEATURES", "parse_batch_csv", "random_transaction", "reference_transaction",
    "results_to_csv", "score_batch_csv", "slider_ranges",
]
