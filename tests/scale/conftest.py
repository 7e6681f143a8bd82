"""Fixtures for the Dask tests: a small partitioned synthetic set and one LocalCluster per session.

The set is 100,000 rows in 8 Parquet partitions (written once per session by ``data synth``'s
function); the cluster has 2 single-thread workers of 1 GB. Both are small so that the whole
directory runs in about a minute; the 20,000,000-row figures come from ``bench/bench_scale.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROWS = 100_000
PARTITIONS = 8


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fraud_app.data.synth import write_synthetic

    out = tmp_path_factory.mktemp("scale") / "set"
    write_synthetic(ROWS, PARTITIONS, out, fraud_rate=0.02, seed=3)
    return out


@pytest.fixture(scope="session")
def cluster() -> Iterator[object]:
    """The process's Dask client on a 2-worker LocalCluster, closed at the end of the session."""
    from fraud_app.scale import engine

    saved = {k: os.environ.get(k) for k in ("FRAUD_APP_DASK_WORKERS", "FRAUD_APP_DASK_MEMORY_LIMIT",
                                            "FRAUD_APP_DASK_SCHEDULER")}
    os.environ.pop("FRAUD_APP_DASK_SCHEDULER", None)
    client = engine.get_client(workers=2, memory_limit="1GB")
    for key, value in saved.items():
        if value is not None:
            os.environ[key] = value
    try:
        yield client
    finally:
        engine.close()


@pytest.fixture
def lazy_env(app_env: Path, monkeypatch: pytest.MonkeyPatch, synth_dir: Path) -> Path:
    """FRAUD_APP_DATA_PATH at the partitioned set, with an in-memory limit below its size."""
    monkeypatch.setenv("FRAUD_APP_DATA_PATH", str(synth_dir))
    monkeypatch.setenv("FRAUD_APP_MAX_IN_MEMORY_ROWS", str(ROWS // 2))
    return synth_dir
