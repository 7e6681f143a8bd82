"""Training (no Panel): :class:`TrainingPipeline`, :class:`TrainingResult`, splits, metrics and model comparison."""

from fraud_app.models.base import ProgressEvent
from fraud_app.models.errors import TrainingCancelled
from fraud_app.training.compare import ModelComparison, compare_models
from fraud_app.training.metrics import (
    brier_score,
    cheapest_threshold,
    evaluate_scores,
    log_loss,
    metrics_at_threshold,
    pr_curve,
    reliability_curve,
)
from fraud_app.training.pipeline import TrainingPipeline, TrainingResult
from fraud_app.training.splits import SPLITS, time_split, train_test_indices

__all__ = [
    "SPLITS", "ModelComparison", "ProgressEvent", "TrainingCancelled", "TrainingPipeline", "TrainingResult",
    "brier_score", "cheapest_threshold", "compare_models", "evaluate_scores", "log_loss", "metrics_at_threshold",
    "pr_curve", "reliability_curve", "time_split", "train_test_indices",
]
