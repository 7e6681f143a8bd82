"""The EDA core on the seeded synthetic data: each function against an independent reference."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats

from fraud_app import eda
from fraud_app.data import load_transactions, make_synthetic
from fraud_app.eda import stats as eda_stats


@pytest.fixture
def frame() -> pd.DataFrame:
    return load_transactions()


@pytest.fixture(autouse=True)
def fresh_eda_cache():
    eda.clear_cache()
    yield
    eda.clear_cache()


def test_overview_counts_rows_frauds_span_and_memory(frame: pd.DataFrame) -> None:
    ov = eda.overview(frame)
    assert ov["rows"] == 20_000 and ov["frauds"] == 200 and ov["clear"] == 19_800
    assert ov["fraud_rate"] == pytest.approx(0.01)
    assert ov["time_span_hours"] == pytest.approx((frame["time"].max() - frame["time"].min()) / 3600)
    assert ov["memory_mb"] == pytest.approx(frame.memory_usage(deep=True).sum() / 1e6)


def test_class_balance(frame: pd.DataFrame) -> None:
    balance = eda.class_balance(frame)
    assert balance["class"].tolist() == ["clear", "fraud"]
    assert balance["count"].tolist() == [19_800, 200]
    assert balance["share"].sum() == pytest.approx(1.0)


def test_describe_by_class_matches_pandas(frame: pd.DataFrame) -> None:
    table = eda.describe_by_class(frame)
    assert len(table) == 2 * len(eda.EDA_COLUMNS)
    for label, value in (("clear", 0), ("fraud", 1)):
        expected = frame.loc[frame["is_fraud"] == value, eda.EDA_COLUMNS].describe().T
        got = table[table["class"] == label].set_index("feature")[list(eda_stats.DESCRIBE_STATS)]
        pd.testing.assert_frame_equal(got, expected.loc[got.index], check_names=False, check_dtype=False)


def test_histograms_share_bins_and_integrate_to_the_share_in_range(frame: pd.DataFrame) -> None:
    hists = eda.feature_histograms(frame, bins=40)
    assert set(hists) == set(eda.EDA_COLUMNS)
    hist = hists["feature14"]
    assert len(hist.edges) == 41 and len(hist.clear_counts) == len(hist.fraud_counts) == 40
    fraud = frame.loc[frame["is_fraud"] == 1, "feature14"].to_numpy()
    clear = frame.loc[frame["is_fraud"] == 0, "feature14"].to_numpy()
    # Same counts as numpy on the same edges; every fraud is inside the range.
    np.testing.assert_array_equal(hist.fraud_counts, np.histogram(fraud, hist.edges)[0])
    np.testing.assert_array_equal(hist.clear_counts, np.histogram(clear, hist.edges)[0])
    assert hist.fraud_outside == 0 and hist.fraud_counts.sum() == 200
    assert hist.clear_outside <= 2 * np.ceil(eda_stats.HIST_TAIL * len(clear))
    width = np.diff(hist.edges)
    assert (hist.fraud_density * width).sum() == pytest.approx(1.0)
    assert (hist.clear_density * width).sum() == pytest.approx(1 - hist.clear_outside / len(clear))
    long = hist.to_frame()
    assert long.shape == (80, 5) and set(long["class"]) == {"clear", "fraud"}


def test_log_amount_histogram(frame: pd.DataFrame) -> None:
    hist = eda.log_amount_histogram(frame, bins=30)
    assert hist.label == "log10(1 + amount)"
    assert hist.edges[0] >= 0 and hist.edges[-1] <= np.log10(1 + frame["amount"].max()) + 1e-9
    fraud = np.log10(1 + frame.loc[frame["is_fraud"] == 1, "amount"].to_numpy())
    np.testing.assert_array_equal(hist.fraud_counts, np.histogram(fraud, hist.edges)[0])


def test_histogram_rejects_too_few_bins(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="bins must be at least 2"):
        eda.feature_histograms(frame, ["amount"], bins=1)


def test_correlations_match_numpy(frame: pd.DataFrame) -> None:
    corr = eda.correlations(frame)
    assert set(corr) == {"all", "clear", "fraud"}
    for key, mask in (("all", slice(None)), ("clear", frame["is_fraud"] == 0), ("fraud", frame["is_fraud"] == 1)):
        matrix = corr[key]
        assert matrix.shape == (29, 29) and list(matrix.index) == eda.EDA_COLUMNS[1:]
        expected = frame.loc[mask, matrix.columns].corr()
        np.testing.assert_allclose(matrix.to_numpy(), expected.to_numpy(), atol=1e-10)


def test_ks_statistic_matches_scipy(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    for a, b in [(rng.normal(0, 1, 500), rng.normal(0.5, 2, 40)),
                 (rng.integers(0, 5, 300).astype(float), rng.integers(2, 7, 30).astype(float))]:
        assert eda.ks_statistic(np.sort(a), np.sort(b)) == pytest.approx(sstats.ks_2samp(a, b).statistic)


def test_separation_ranking_finds_the_shifted_features(frame: pd.DataFrame) -> None:
    ranking = eda.separation_ranking(frame)
    assert len(ranking) == 29 and ranking["rank"].tolist() == list(range(1, 30))
    assert ranking["ks"].is_monotonic_decreasing
    clear = frame[frame["is_fraud"] == 0]
    fraud = frame[frame["is_fraud"] == 1]
    for row in ranking.itertuples():
        assert row.ks == pytest.approx(sstats.ks_2samp(clear[row.feature], fraud[row.feature]).statistic)
        assert row.mutual_info >= 0
    # make_synthetic shifts these features' fraud means the most (in units of their scale).
    assert set(eda.top_features(ranking, 3)) <= {"feature14", "feature12", "feature4", "feature10",
                                                 "feature17", "feature11", "feature3"}
    unshifted = ranking.set_index("feature").loc[["feature2", "feature20"], "ks"]
    assert (unshifted < 0.2).all()


def test_mutual_information_is_zero_for_identical_and_positive_for_separated() -> None:
    edges = np.linspace(0, 1, 5)
    same = eda.FeatureHistogram("x", "x", edges, np.array([10, 20, 30, 40]), np.array([1, 2, 3, 4]),
                                np.zeros(4), np.zeros(4), 0, 0)
    apart = eda.FeatureHistogram("x", "x", edges, np.array([50, 50, 0, 0]), np.array([0, 0, 5, 5]),
                                 np.zeros(4), np.zeros(4), 0, 0)
    assert eda.binned_mutual_information(same) == pytest.approx(0.0, abs=1e-12)
    p = 10 / 110
    entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    assert eda.binned_mutual_information(apart) == pytest.approx(entropy)


def test_amount_buckets(frame: pd.DataFrame) -> None:
    table = eda.amount_buckets(frame)
    assert table["transactions"].sum() == 20_000 and table["frauds"].sum() == 200
    first = table.iloc[0]
    in_first = frame["amount"] < 1
    assert first["transactions"] == in_first.sum()
    assert first["frauds"] == frame.loc[in_first, "is_fraud"].sum()
    assert table.iloc[-1]["bucket"] == "≥ 2,500" and table.iloc[2]["bucket"] == "10–50"
    nonempty = table[table["transactions"] > 0]
    np.testing.assert_allclose(nonempty["fraud_rate"], nonempty["frauds"] / nonempty["transactions"])
    with pytest.raises(ValueError, match="increasing"):
        eda.amount_buckets(frame, (0, 10, 5))


def test_hourly_pattern(frame: pd.DataFrame) -> None:
    table = eda.hourly_pattern(frame)
    assert table["hour"].tolist() == list(range(24))
    hours = (frame["time"] // 3600).astype(int) % 24
    expected = hours.value_counts().reindex(range(24), fill_value=0)
    assert table["transactions"].tolist() == expected.tolist()
    assert table["frauds"].sum() == 200
    assert table.loc[5, "fraud_rate"] == pytest.approx(table.loc[5, "frauds"] / table.loc[5, "transactions"])


def test_functions_name_missing_columns(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="amount"):
        eda.amount_buckets(frame.drop(columns=["amount"]))
    with pytest.raises(ValueError, match="time"):
        eda.hourly_pattern(frame.drop(columns=["time"]))
    with pytest.raises(ValueError, match="is_fraud"):
        eda.class_balance(frame.drop(columns=["is_fraud"]))
    with pytest.raises(ValueError, match="feature3"):
        eda.describe_by_class(frame.drop(columns=["feature3"]))


def test_the_eda_needs_both_classes(frame: pd.DataFrame) -> None:
    no_fraud = frame[frame["is_fraud"] == 0]
    with pytest.raises(ValueError, match="at least 2 clear and 2 fraudulent transactions, got 19800 clear and 0 fraud"):
        eda.compute_summary(no_fraud)


def test_compute_summary_and_insights_follow_the_data(frame: pd.DataFrame) -> None:
    summary = eda.compute_summary(frame)
    assert summary.top_features == eda.top_features(summary.ranking)
    assert set(summary.log_histograms) == {"amount"}
    text = "\n".join(summary.insights)
    assert "200 of 20,000 transactions are fraud (1.000%)" in text
    assert f"`{summary.top_features[0]}`" in text
    # A different data set gives different insights: nothing is hard-coded.
    other = eda.compute_summary(make_synthetic(5_000, 0.05, seed=7))
    assert "250 of 5,000 transactions are fraud (5.000%)" in "\n".join(other.insights)
    assert other.insights != summary.insights
    assert summary.compute_seconds > 0


def test_get_summary_is_computed_once_per_process(frame: pd.DataFrame) -> None:
    before = eda.compute_count()
    first = eda.get_summary()
    second = eda.get_summary()
    third = eda.get_summary(frame)
    assert first is second is third
    assert eda.compute_count() == before + 1
    assert first.fingerprint == frame.attrs["fingerprint"]


def test_get_summary_is_keyed_by_the_data_fingerprint() -> None:
    before = eda.compute_count()
    a = eda.get_summary(make_synthetic(2_000, 0.05, seed=1))
    b = eda.get_summary(make_synthetic(2_000, 0.05, seed=2))
    again = eda.get_summary(make_synthetic(2_000, 0.05, seed=1))
    assert a is not b and a.fingerprint != b.fingerprint
    assert again is a
    assert eda.compute_count() == before + 2


def test_concurrent_sessions_compute_once(frame: pd.DataFrame) -> None:
    before = eda.compute_count()
    results: list[eda.EDASummary] = []
    threads = [threading.Thread(target=lambda: results.append(eda.get_summary(frame))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and all(r is results[0] for r in results)
    assert eda.compute_count() == before + 1


def test_the_eda_core_imports_no_panel() -> None:
    code = "import sys, fraud_app.eda; assert 'panel' not in sys.modules and 'holoviews' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_strongest_pair_ignores_the_diagonal() -> None:
    matrix = pd.DataFrame([[1.0, 0.2, -0.9], [0.2, 1.0, 0.1], [-0.9, 0.1, 1.0]],
                          index=list("abc"), columns=list("abc"))
    pair, r = eda.strongest_pair(matrix)
    assert set(pair) == {"a", "c"} and r == pytest.approx(-0.9)
    pair, r = eda.strongest_pair(pd.DataFrame([[1.0]], index=["a"], columns=["a"]))
    assert pair is None and np.isnan(r)
