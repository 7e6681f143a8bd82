"""Benchmark: past one machine, on a synthetic set of any size (issue #14).

    .venv/bin/python -m bench.bench_scale [--rows 20000000] [--partitions 40] [--trees 50] [--work DIR]

Every phase runs as its own command (the app's CLI or a small driver of this module), and a
sampler thread reads the RSS of that command's process (the "app" or "client" process) and of
its descendants (the LocalCluster's workers) every 0.2 s. Phases, in order; the JSON
(``bench/results/scale.json``) is rewritten after each one, so a cut-short run keeps what it measured:

1. ``data synth`` of the set (features stored as float32: the sizing rule in docs/deployment.md);
2. the EDA summary on a LocalCluster of 2 workers with 3 GB each (``fraud_app.eda.lazy``);
3. ``train --model lightgbm --engine dask --split time`` on a LocalCluster of 2 workers with
   ``--train-worker-memory`` (8 GB) each: F1 on the latest 20 % of the time range;
4. ``score --engine dask`` of the whole set, and ``--engine local`` against ``--engine dask`` on a
   1,000,000-row slice (the first partitions);
5. the same training against an external ``dask scheduler`` plus 2 ``dask worker`` processes started
   as separate commands; compared with phase 3 (same seed).

``uptime`` is recorded before and after each phase: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Sampler(threading.Thread):
    """Peak RSS of one process and of the sum of its descendants, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_main = 0
        self.peak_children = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                self.peak_main = max(self.peak_main, proc.memory_info().rss)
                total = 0
                for child in proc.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                self.peak_children = max(self.peak_children, total)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.2)


def run(cmd: list[str], env: dict[str, str], log: Path, timeout: float = 7200) -> dict[str, Any]:
    """Run ``cmd``; return its exit code, stdout, seconds and peak RSS (own and descendants')."""
    started = time.perf_counter()
    with open(log, "ab") as err:
        err.write(f"\n$ {' '.join(cmd)}\n".encode())
        err.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
        sampler = Sampler(proc.pid)
        sampler.start()
        out, _ = proc.communicate(timeout=timeout)
        sampler.stop.set()
        sampler.join()
    return {"returncode": proc.returncode, "stdout": out.decode(errors="replace"),
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(sampler.peak_main / 2**20, 1),
            "workers_peak_rss_mb": round(sampler.peak_children / 2**20, 1)}


def _eda_driver(path: str) -> None:
    """``python -m bench.bench_scale _eda PATH``: the EDA summary on the LocalCluster, as JSON."""
    from fraud_app.data.partitioned import open_lazy
    from fraud_app.eda.lazy import compute_summary_dask
    from fraud_app.scale.engine import close, get_client

    dataset = open_lazy(path)
    client = get_client()
    started = time.perf_counter()
    summary = compute_summary_dask(dataset.frame, fingerprint=dataset.fingerprint)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": summary.overview["rows"], "frauds": summary.overview["frauds"],
                      "partitions": dataset.partitions, "workers": len(client.scheduler_info()["workers"]),
                      "compute_seconds": round(seconds, 1), "top_features": summary.top_features}))
    close()


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "_eda":
        _eda_driver(sys.argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--partitions", type=int, default=40)
    parser.add_argument("--trees", type=int, default=50, help="boosting rounds of the distributed LightGBM")
    parser.add_argument("--slice-rows", type=int, default=1_000_000, help="rows of the local-vs-dask scoring slice")
    parser.add_argument("--worker-memory", default="3GB", help="memory limit per worker for the EDA phase")
    parser.add_argument("--train-worker-memory", default="8GB",
                        help="memory limit per worker for training and scoring (LightGBM copies each worker's "
                             "partitions into one array: about 3x the worker's share, docs/deployment.md)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_scale"), help="scratch folder (deleted)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--skip-external", action="store_true")
    args = parser.parse_args(argv)

    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "bench.log"
    data = work / "set"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_APP_")}
    env.update({"FRAUD_APP_HOME": str(ROOT), "FRAUD_APP_OUTPUT_DIR": str(work / "output"),
                "FRAUD_APP_LOG_DIR": str(work / "logs"), "FRAUD_APP_DASK_WORKERS": "2",
                "FRAUD_APP_DASK_MEMORY_LIMIT": args.worker_memory, "FRAUD_APP_LOG_LEVEL": "WARNING"})
    result: dict[str, Any] = {
        "benchmark": "bench/bench_scale.py",
        "command": "python -m bench.bench_scale " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": args.rows, "partitions": args.partitions, "trees": args.trees, "feature_dtype": "float32",
        "workers": 2, "threads_per_worker": 1, "worker_memory": args.worker_memory,
        "train_worker_memory": args.train_worker_memory,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "shared": "the machine was shared with other engineers' work during the run"},
        "phases": {},
    }

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    def phase(name: str, cmd: list[str], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
        before = uptime()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd)}", flush=True)
        measured = run(cmd, {**env, **(extra_env or {})}, log)
        measured.update(uptime_before=before, uptime_after=uptime())
        stdout = measured.pop("stdout")
        if measured["returncode"] != 0:
            measured["error"] = (log.read_text(errors="replace")[-3000:])
        result["phases"][name] = measured
        write()
        print(f"    {measured['seconds']} s, peak RSS {measured['peak_rss_mb']} MB, workers "
              f"{measured['workers_peak_rss_mb']} MB, rc {measured['returncode']}", flush=True)
        return {"measured": measured, "stdout": stdout}

    cli = [PY, "-m", "fraud_app"]
    synth = phase("synth", [*cli, "data", "synth", "--rows", str(args.rows), "--partitions", str(args.partitions),
                            "--out", str(data), "--dtype", "float32", "--seed", "0"])
    synth["measured"]["goal_peak_rss_mb"] = 1024
    synth["measured"]["bytes_on_disk"] = sum(f.stat().st_size for f in data.glob("*.parquet"))
    result["in_memory_float64_gb"] = round(args.rows * 31 * 8 / 1e9, 2)

    eda = phase("eda", [PY, "-m", "bench.bench_scale", "_eda", str(data)])
    eda["measured"]["goal_peak_rss_mb"] = 1536
    if eda["measured"]["returncode"] == 0:
        eda["measured"].update(json.loads(eda["stdout"].strip().splitlines()[-1]))
    write()

    train_cmd = [*cli, "train", "--data", str(data), "--model", "lightgbm", "--engine", "dask", "--split", "time",
                 "--seed", "0", "--param", f"n_estimators={args.trees}", "--json"]
    train_env = {"FRAUD_APP_DASK_MEMORY_LIMIT": args.train_worker_memory}
    trained = phase("train", [*train_cmd, "--name", "scale_lgbm"], train_env)
    trained["measured"]["goal_peak_rss_mb"] = 1536
    local_metrics = None
    if trained["measured"]["returncode"] == 0:
        report = json.loads(trained["stdout"])
        local_metrics = {k: report["metrics"][k] for k in ("f1", "precision", "recall", "pr_auc", "threshold",
                                                           "n_test", "n_test_fraud")}
        trained["measured"].update(metrics=local_metrics, fit_seconds=report["fit_seconds"],
                                   n_train=report["n_train"], test_rows=report["fit_info"].get("test_rows"))
    write()

    if trained["measured"]["returncode"] == 0:
        full = phase("score_dask_full", [*cli, "score", "--model", "scale_lgbm", "--input", str(data), "--output",
                                         str(work / "scored_full"), "--engine", "dask", "--json"], train_env)
        if full["measured"]["returncode"] == 0:
            full["measured"].update(json.loads(full["stdout"]))
        shutil.rmtree(work / "scored_full", ignore_errors=True)
        sliced = work / "slice"
        sliced.mkdir()
        rows = 0
        for part in sorted(data.glob("*.parquet")):
            if rows >= args.slice_rows:
                break
            import pyarrow.parquet as pq

            rows += pq.ParquetFile(part).metadata.num_rows
            shutil.copy(part, sliced / part.name)
        result["slice_rows"] = rows
        for engine in ("local", "dask"):
            out = phase(f"score_{engine}_slice", [*cli, "score", "--model", "scale_lgbm", "--input", str(sliced),
                                                  "--output", str(work / f"scored_{engine}"), "--engine", engine,
                                                  "--json"], train_env)
            if out["measured"]["returncode"] == 0:
                out["measured"].update(json.loads(out["stdout"]))
        write()

    if not args.skip_external and local_metrics is not None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        address = f"tcp://127.0.0.1:{port}"
        procs = [subprocess.Popen([PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                   str(port), "--dashboard-address", ":0"], stdout=subprocess.DEVNULL,
                                  stderr=open(work / "scheduler.log", "wb"))]
        for i in range(2):
            procs.append(subprocess.Popen([PY, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                           "--memory-limit", args.train_worker_memory, "--local-directory",
                                           str(work / f"w{i}")], stdout=subprocess.DEVNULL,
                                          stderr=open(work / f"worker{i}.log", "wb")))
        try:
            time.sleep(5)
            ext = phase("train_external", [*train_cmd, "--no-save"], {"FRAUD_APP_DASK_SCHEDULER": address})
            if ext["measured"]["returncode"] == 0:
                report = json.loads(ext["stdout"])
                metrics = {k: report["metrics"][k] for k in local_metrics}
                ext["measured"].update(metrics=metrics, fit_seconds=report["fit_seconds"],
                                       workers=report["fit_info"]["workers"])
                ext["measured"]["f1_difference_vs_localcluster"] = round(abs(metrics["f1"] - local_metrics["f1"]), 4)
                ext["measured"]["same_within_tolerance_0_01"] = abs(metrics["f1"] - local_metrics["f1"]) <= 0.01
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        write()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    write()
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
