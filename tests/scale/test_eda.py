"""EDA on Dask: the same cards as the in-memory EDA, computed on the cluster, cached on disk by fingerprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_app.data.partitioned import open_lazy
from fraud_app.eda import compute_summary
from fraud_app.eda import lazy as lazy_eda
from tests.scale.conftest import ROWS


@pytest.fixture(scope="module")
def both(synth_dir: Path, cluster):
    dataset = open_lazy(str(synth_dir))
    on_dask = lazy_eda.compute_summary_dask(dataset.frame, fingerprint=dataset.fingerprint)
    in_memory = compute_summary(pd.read_parquet(synth_dir).reset_index(drop=True))
    return on_dask, in_memory


def test_counts_balance_buckets_and_hours_are_exact(both) -> None:
    on_dask, exact = both
    for key in ("rows", "frauds", "clear", "fraud_rate", "time_span_hours", "columns"):
        assert on_dask.overview[key] == pytest.approx(exact.overview[key]), key
    pd.testing.assert_frame_equal(on_dask.balance, exact.balance)
    pd.testing.assert_frame_equal(on_dask.amount_buckets, exact.amount_buckets)
    pd.testing.assert_frame_equal(on_dask.hourly, exact.hourly)


def test_moments_and_correlations_are_exact_and_quantiles_close(both) -> None:
    on_dask, exact = both
    a, b = (s.describe.set_index(["feature", "class"]) for s in both)
    assert a.index.equals(b.index)
    for stat in ("count", "mean", "std", "min", "max"):
        np.testing.assert_allclose(a[stat], b[stat], rtol=1e-9, atol=1e-9, err_msg=stat)
    for stat in ("25%", "50%", "75%"):  # read from 16,384 asinh bins: within ~0.25 % (relative) or 0.01
        np.testing.assert_allclose(a[stat], b[stat], rtol=5e-3, atol=1e-2, err_msg=stat)
    for key in ("all", "clear", "fraud"):
        np.testing.assert_allclose(on_dask.correlations[key], exact.correlations[key], atol=1e-9)


def test_histograms_and_ranking_match(both) -> None:
    on_dask, exact = both
    assert set(on_dask.histograms) == set(exact.histograms)
    for column, hist in exact.histograms.items():
        mine = on_dask.histograms[column]
        assert len(mine.edges) == len(hist.edges)
        # the same range up to the quantile approximation, so nearly the same counts
        assert abs(int(mine.clear_counts.sum()) - int(hist.clear_counts.sum())) <= 0.002 * ROWS, column
        assert int(mine.fraud_counts.sum()) == int(hist.fraud_counts.sum()), column
    assert on_dask.log_histograms["amount"].label == exact.log_histograms["amount"].label
    merged = on_dask.ranking.merge(exact.ranking, on="feature", suffixes=("_dask", "_exact"))
    np.testing.assert_allclose(merged["ks_dask"], merged["ks_exact"], atol=0.01)
    assert on_dask.top_features == exact.top_features
    assert len(on_dask.insights) == len(exact.insights)


def test_the_summary_is_cached_on_disk_by_fingerprint(synth_dir: Path, cluster, app_env: Path) -> None:
    dataset = open_lazy(str(synth_dir))
    lazy_eda.clear_memory()
    before = lazy_eda.compute_count
    first = lazy_eda.get_lazy_summary(dataset)
    assert lazy_eda.compute_count == before + 1
    path = lazy_eda.cache_path(dataset.fingerprint)
    assert path.exists() and path.is_relative_to(app_env)
    lazy_eda.clear_memory()  # as after a restart: only the disk cache is left
    again = lazy_eda.get_lazy_summary(dataset)
    assert lazy_eda.compute_count == before + 1
    pd.testing.assert_frame_equal(again.describe, first.describe)
    pd.testing.assert_frame_equal(again.correlations["all"], first.correlations["all"])
    pd.testing.assert_frame_equal(again.ranking, first.ranking)
    np.testing.assert_array_equal(again.histograms["amount"].clear_counts, first.histograms["amount"].clear_counts)
    assert again.insights == first.insights


def test_a_corrupt_cache_file_is_recomputed(synth_dir: Path, cluster) -> None:
    dataset = open_lazy(str(synth_dir))
    path = lazy_eda.cache_path(dataset.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    lazy_eda.clear_memory()
    before = lazy_eda.compute_count
    assert lazy_eda.get_lazy_summary(dataset).overview["rows"] == ROWS
    assert lazy_eda.compute_count == before + 1


def test_the_datashader_scatter_covers_every_row(synth_dir: Path, cluster) -> None:
    dataset = open_lazy(str(synth_dir))
    agg = lazy_eda.scatter_aggregate(dataset.frame, "feature14", "feature12", width=50, height=40)
    assert int(agg["count"].sum()) == ROWS
    assert int(agg["frauds"].sum()) == int(pd.read_parquet(synth_dir, columns=["is_fraud"])["is_fraud"].sum())
