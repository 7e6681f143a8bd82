"""Exploratory data analysis: pure pandas/numpy summaries (no Panel), cached once per process.

Use :func:`get_summary` for everything the EDA tab shows; the individual functions
compute one table each from a transactions frame.
"""

from fraud_app.eda import cache
from fraud_app.eda.cache import clear_cache, get_summary, is_cached
from fraud_app.eda.stats import (
    AMOUNT_BUCKET_EDGES,
    CLASSES,
    EDA_COLUMNS,
    EDASummary,
    FeatureHistogram,
    amount_buckets,
    binned_mutual_information,
    class_balance,
    compute_summary,
    correlations,
    describe_by_class,
    feature_histograms,
    hourly_pattern,
    insights,
    ks_statistic,
    log_amount_histogram,
    overview,
    separation_ranking,
    strongest_pair,
    top_features,
)


def compute_count() -> int:
    """How many EDA summaries this process has computed (a second session adds none)."""
    return cache.compute_count


__all__ = [
    "AMOUNT_BUCKET_EDGES", "CLASSES", "EDA_COLUMNS", "EDASummary", "FeatureHistogram",
    "amount_buckets", "binned_mutual_information", "class_balance", "clear_cache", "compute_count",
    "compute_summary", "correlations", "describe_by_class", "feature_histograms", "get_summary", "is_cached",
    "hourly_pattern", "insights", "ks_statistic", "log_amount_histogram", "overview",
    "separation_ranking", "strongest_pair", "top_features",
]
