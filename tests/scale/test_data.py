"""Partitioned data sets: data synth, the lazy open above the in-memory limit, and the schema checks by file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import COLUMNS, DatasetTooLargeError, LazyDataset, SchemaError, load_transactions, open_dataset
from fraud_app.data.partitioned import open_lazy
from fraud_app.data.synth import partition_sizes, write_synthetic
from tests.scale.conftest import PARTITIONS, ROWS


def test_synth_writes_the_partitions_with_the_canonical_schema(synth_dir: Path) -> None:
    files = sorted(synth_dir.glob("*.parquet"))
    assert [f.name for f in files] == [f"part.{i:05d}.parquet" for i in range(PARTITIONS)]
    parts = [pd.read_parquet(f) for f in files]
    assert [len(p) for p in parts] == partition_sizes(ROWS, PARTITIONS)
    frame = pd.concat(parts, ignore_index=True)
    assert list(frame.columns) == COLUMNS
    assert frame["time"].is_monotonic_increasing  # times increase across partitions too
    assert 0.015 < frame["is_fraud"].mean() < 0.025
    assert not list(synth_dir.parent.glob(".set.tmp-*"))


def test_synth_is_seeded_and_never_leaves_a_half_written_directory(tmp_path: Path) -> None:
    a = write_synthetic(1000, 3, tmp_path / "a", seed=5)
    write_synthetic(1000, 3, tmp_path / "b", seed=5)
    assert a["rows"] == 1000 and a["partitions"] == 3
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a"), pd.read_parquet(tmp_path / "b"))
    with pytest.raises(FileExistsError, match="already exists"):
        write_synthetic(1000, 3, tmp_path / "a")

    calls = []

    def fail_on_second(done: int, total: int) -> None:
        calls.append(done)
        if done == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_synthetic(1000, 3, tmp_path / "c", progress=fail_on_second)
    assert not (tmp_path / "c").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_synth_float32_halves_the_feature_bytes(tmp_path: Path) -> None:
    write_synthetic(1000, 1, tmp_path / "f32", dtype="float32")
    frame = pd.read_parquet(tmp_path / "f32")
    assert frame["feature1"].dtype == np.float32 and frame["is_fraud"].dtype == np.int8


def test_above_the_limit_the_set_opens_lazily_and_is_never_loaded(lazy_env: Path) -> None:
    dataset = open_dataset()
    assert isinstance(dataset, LazyDataset)
    assert (dataset.rows, dataset.partitions) == (ROWS, PARTITIONS)
    assert dataset.read_text() == f"read {ROWS:,} rows in {PARTITIONS} partitions"
    assert list(dataset.frame.columns) == COLUMNS
    with pytest.raises(DatasetTooLargeError, match="FRAUD_APP_MAX_IN_MEMORY_ROWS=50,000"):
        load_transactions()


def test_below_the_limit_a_directory_loads_in_memory(lazy_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_APP_MAX_IN_MEMORY_ROWS", str(ROWS))
    frame = open_dataset()
    assert isinstance(frame, pd.DataFrame) and len(frame) == ROWS
    assert frame.attrs["fingerprint"] == open_lazy(str(lazy_env)).fingerprint


def test_a_file_url_works_like_a_path(synth_dir: Path) -> None:
    assert open_lazy(f"file://{synth_dir}").rows == ROWS


@pytest.fixture
def broken_dir(tmp_path: Path, synth_dir: Path) -> Path:
    target = tmp_path / "broken"
    shutil.copytree(synth_dir, target)
    return target


def test_a_partition_with_a_wrong_dtype_is_named(broken_dir: Path) -> None:
    path = broken_dir / "part.00005.parquet"
    frame = pd.read_parquet(path)
    frame["feature7"] = frame["feature7"].astype(str)
    frame.to_parquet(path, index=False)
    with pytest.raises(SchemaError, match=r"part\.00005\.parquet: column 'feature7' has dtype \w*string, expected a numeric dtype"):
        open_lazy(str(broken_dir))


def test_a_partition_with_a_missing_column_is_named(broken_dir: Path) -> None:
    path = broken_dir / "part.00002.parquet"
    pd.read_parquet(path).drop(columns=["amount"]).to_parquet(path, index=False)
    with pytest.raises(SchemaError, match=r"part\.00002\.parquet: missing column\(s\): amount"):
        open_lazy(str(broken_dir))


def test_bad_values_in_a_sampled_partition_are_named(broken_dir: Path) -> None:
    path = broken_dir / f"part.{PARTITIONS - 1:05d}.parquet"  # the last partition is always sampled
    frame = pd.read_parquet(path)
    frame.loc[3, "feature2"] = np.nan
    frame.to_parquet(path, index=False)
    with pytest.raises(SchemaError, match=rf"part\.{PARTITIONS - 1:05d}\.parquet: NaN or inf values in column\(s\) "
                                          r"feature2 \(1 row\(s\)\)"):
        open_lazy(str(broken_dir))


def test_a_missing_directory_says_where_it_looked(tmp_path: Path) -> None:
    from fraud_app.data import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="nowhere"):
        open_lazy(str(tmp_path / "nowhere"))
