"""The CLI end to end (data synth, train --engine dask, score), and an external scheduler started as commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, free_port


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    merged = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "fraud_app", *args], cwd=ROOT, env=merged, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and one ``dask worker``, started as separate commands; yields the address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"],
                              stdout=open(logs / "scheduler.log", "wb"), stderr=subprocess.STDOUT)]
    procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                   "--memory-limit", "1GB", "--no-dashboard", "--local-directory", str(logs)],
                                  stdout=open(logs / "worker.log", "wb"), stderr=subprocess.STDOUT))
    try:
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_cli_synth_train_and_score_on_a_local_cluster(tmp_path: Path, app_env: Path) -> None:
    env = {"FRAUD_APP_DASK_WORKERS": "2", "FRAUD_APP_DASK_MEMORY_LIMIT": "1GB"}
    synth = run_cli("data", "synth", "--rows", "40000", "--partitions", "4", "--out", str(tmp_path / "set"),
                    "--fraud-rate", "0.03", "--seed", "1", env=env)
    assert synth.returncode == 0, synth.stderr
    assert "wrote 40,000 rows" in synth.stdout and "in 4 partitions" in synth.stdout
    train = run_cli("train", "--data", str(tmp_path / "set"), "--model", "lightgbm", "--engine", "dask",
                    "--name", "cli_dask", "--split", "time", "--param", "n_estimators=30", env=env)
    assert train.returncode == 0, train.stderr
    assert "Dask dashboard: http://" in train.stderr
    assert "lightgbm.dask on 2 workers, 4 partitions" in train.stdout
    scored = run_cli("score", "--model", "cli_dask", "--input", str(tmp_path / "set"), "--output",
                     str(tmp_path / "scored"), "--engine", "local", env=env)
    assert scored.returncode == 0, scored.stderr
    assert "scored 40,000 rows in 4 parts with 'cli_dask' (local)" in scored.stdout
    assert "scoring: 100%" in scored.stderr  # the progress bar
    assert len(pd.read_parquet(tmp_path / "scored")) == 40_000


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    missing = run_cli("score", "--model", "nope", "--input", str(tmp_path), "--output", str(tmp_path / "o"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: ") and "nope" in missing.stderr
    bad = run_cli("data", "synth", "--rows", "10", "--partitions", "1", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "--rows must be an integer of at least 100" in bad.stderr


def test_an_unreachable_scheduler_fails_clearly_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import distributed  # noqa: F401  (imported before the clock starts: a cold import is slow on a busy machine)

    from fraud_app.scale import engine

    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(engine.SchedulerUnreachableError, match=f"no Dask scheduler answered at {address} within 2 s"):
        engine.connect(address, timeout=2)
    assert time.monotonic() - started < 2 + 10  # the timeout, plus slack for a loaded machine


def test_the_cli_names_an_unreachable_scheduler(synth_dir: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    out = run_cli("train", "--data", str(synth_dir), "--model", "lightgbm", "--engine", "dask", "--no-save",
                  env={"FRAUD_APP_DASK_SCHEDULER": address}, timeout=120)
    assert out.returncode == 1
    assert f"error: no Dask scheduler answered at {address}" in out.stderr
    assert "unset FRAUD_APP_DASK_SCHEDULER" in out.stderr


def test_a_bad_scheduler_address_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud_app.config import ConfigError, get_settings

    monkeypatch.setenv("FRAUD_APP_DASK_SCHEDULER", "localhost:8786")
    with pytest.raises(ConfigError, match="FRAUD_APP_DASK_SCHEDULER='localhost:8786' is not a scheduler address"):
        get_settings()


def test_training_and_scoring_on_an_external_scheduler(scheduler: str, synth_dir: Path, tmp_path: Path) -> None:
    env = {"FRAUD_APP_DASK_SCHEDULER": scheduler}
    train = run_cli("train", "--data", str(synth_dir), "--model", "lightgbm", "--engine", "dask", "--name",
                    "external", "--split", "time", "--param", "n_estimators=20", "--json", env=env)
    assert train.returncode == 0, train.stderr
    assert train.stdout.lstrip().startswith("{"), train.stdout[:2000]
    result = json.loads(train.stdout)
    assert result["fit_info"]["engine"] == "dask" and result["fit_info"]["workers"] == 1
    assert result["metrics"]["f1"] > 0.8
    scored = run_cli("score", "--model", "external", "--input", str(synth_dir), "--output", str(tmp_path / "s"),
                     "--engine", "dask", "--json", env=env)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["rows"] == 100_000 and json.loads(scored.stdout)["engine"] == "dask"
    # the external cluster is not closed by the CLI: it still answers
    from distributed import Client

    with Client(scheduler, timeout="10s") as client:
        assert len(client.scheduler_info()["workers"]) == 1
