"""Inference (no Panel): the one scoring service shared by the Inference tab and the REST API."""

from fraud_app.inference.service import (
    NoModelError,
    active_model_info,
    clear_model_cache,
    explain,
    get_model,
    resolve_model_name,
    save_scores,
    score_and_save,
    score_array,
    to_array,
)
from fraud_app.inference.validation import MAX_BATCH, PredictionInputError, parse_request

__all__ = [
    "MAX_BATCH", "NoModelError", "PredictionInputError", "active_model_info", "clear_model_cache", "explain",
    "get_model", "parse_request", "resolve_model_name", "save_scores", "score_and_save", "score_array",
    "to_array",
]
