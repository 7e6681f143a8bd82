"""Training (no Panel): :class:`TrainingPipeline`, :class:`TrainingResult` and metrics."""

from fraud_app.models.base import ProgressEvent
from fraud_app.models.errors import TrainingCancelled
from fraud_app.training.metrics import cheapest_threshold, evaluate_scores, metrics_at_threshold, pr_curve
from fraud_app.training.pipeline import TrainingPipeline, TrainingResult

__all__ = [
    "ProgressEvent", "TrainingCancelled", "TrainingPipeline", "TrainingResult",
    "cheapest_threshold", "evaluate_scores", "metrics_at_threshold", "pr_curve",
]
