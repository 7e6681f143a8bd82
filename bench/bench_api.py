"""Benchmark: the REST API in the real server (``panel serve app.py --plugins fraud_app.api``).

    .venv/bin/python -m bench.bench_api [--data data/creditcard.parquet] [--sequential 1500]

What it does (loopback only, every loop bounded by a count and a deadline):

0. trains and saves a LightGBM model on the real data set with the project's own
   ``TrainingPipeline`` (once; kept in ``output/bench/models`` and reused), then starts the real
   server on a free port with a fresh SQLite file, and a bare Tornado process whose one handler
   answers constant JSON (``bench/_bare_server.py``): the ceiling we compare with;
1. single-row ``POST /api/predictions`` (scored and saved): sequential requests per second on one
   keep-alive connection, and p50/p99 latency with 16 concurrent keep-alive clients; the same for
   the bare server, in interleaved rounds of the same run. Goals: ratio >= 0.5 sequentially,
   p99 <= 20 ms at 16 clients;
2. 32 clients x 200 POSTs: 6,400 new rows, 0 lost (every 201 id is in the table), 0 5xx;
3. ``kill -9`` of a second server in the middle of 16 clients' load, then ``PRAGMA
   integrity_check`` and every id that got a 201 is in the table;
4. one 10,000-row batch request: time to score and save (3 requests, each reported).

Prints the figures and writes ``bench/results/api.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench._server import (
    BENCH_MODEL,
    ROOT,
    SyncClient,
    _request_bytes,
    bench_env,
    ensure_model,
    percentile,
    run_clients,
    start_app_server,
    start_bare_server,
)

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_RATIO, GOAL_P99_MS = 0.5, 20.0


def _rows(data: Path, n: int) -> list[dict[str, float]]:
    import pandas as pd

    from fraud_app.data import MODEL_FEATURES, to_canonical

    frame = to_canonical(pd.read_parquet(data)) if data.suffix == ".parquet" else to_canonical(pd.read_csv(data))
    part = frame[MODEL_FEATURES].head(n)
    return [{k: float(v) for k, v in rec.items()} for rec in part.to_dict(orient="records")]


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(port: int, raw: bytes, count: int, expect: int, pid: int | None = None) -> dict:
    cpu_before = _cpu_seconds(pid)
    client = SyncClient(port)
    latencies = []
    bad = 0
    try:
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            status, _ = client.request(raw)
            latencies.append(time.perf_counter() - t0)
            bad += status != expect
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return {"requests": count, "seconds": elapsed, "req_per_s": count / elapsed,
            "p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3,
            "unexpected_status": bad,
            "server_cpu_us_per_request": (_cpu_seconds(pid) - cpu_before) / count * 1e6 if pid else None}


def concurrent(port: int, raw: bytes, clients: int, per_client: int) -> dict:
    result = run_clients(port, raw, clients, per_client, timeout=300)
    lat = result.latencies
    return {"clients": clients, "requests": len(lat), "seconds": result.elapsed,
            "req_per_s": len(lat) / result.elapsed if result.elapsed else None,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
            "max_ms": max(lat) * 1e3 if lat else None, "statuses": result.statuses, "errors": result.errors[:5]}


def _count(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM predictions").fetchone()[0]


def _missing_ids(db: Path, ids: list[int]) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM predictions")}
    return len(set(ids) - present)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "creditcard.parquet")
    parser.add_argument("--sequential", type=int, default=1500, help="requests per sequential round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (bare, app) for part 1")
    parser.add_argument("--per-client", type=int, default=200, help="requests per client at 16 clients")
    parser.add_argument("--workdir", type=Path, default=ROOT / "output" / "bench")
    parser.add_argument("--out", type=Path, default=RESULTS / "api.json")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2

    run_dir = args.workdir / f"api-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    run_dir.mkdir(parents=True)
    models_dir = (args.workdir / "models").resolve()
    env = bench_env(run_dir.resolve(), models_dir, args.data.resolve().parent)
    env["FRAUD_APP_DATABASE_URL"] = f"sqlite:///{(run_dir / 'api.sqlite3').resolve()}"
    print("training/reusing the benchmark model on the real data ...", flush=True)
    started = time.perf_counter()
    model = ensure_model(env)
    print(f"  {model['kind']} {model['name']} version {model['version']} "
          f"(F1 {model['metrics'].get('f1', float('nan')):.3f}) ready in {time.perf_counter() - started:.1f} s")

    rows = _rows(args.data, 10_000)
    single = _request_bytes("POST", "/api/predictions", json.dumps(rows[0]).encode())
    batch_body = json.dumps({"transactions": rows}).encode()
    batch = _request_bytes("POST", "/api/predictions", batch_body)
    result: dict = {
        "benchmark": "api",
        "command": " ".join(["python -m bench.bench_api", *(argv if argv is not None else sys.argv[1:])]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_start": list(os.getloadavg())},
        "server": "panel serve app.py --plugins fraud_app.api (1 process, SQLite WAL)",
        "model": {k: model[k] for k in ("name", "kind", "version", "threshold")} | {"trained_on": str(args.data)},
    }

    app = start_app_server(env, run_dir / "app.log")
    bare = start_bare_server(run_dir / "bare.log")
    try:
        db = run_dir / "api.sqlite3"
        # warm-up: the model loads on the first request, the connection pools fill
        sequential(app.port, single, 200, 201)
        sequential(bare.port, single, 200, 201)

        # 1. single-row scoring vs the bare Tornado ceiling, interleaved rounds
        print("part 1: single-row POST, sequential and 16 clients ...", flush=True)
        seq_app, seq_bare = [], []
        for _ in range(args.rounds):
            seq_bare.append(sequential(bare.port, single, args.sequential, 201, bare.proc.pid))
            seq_app.append(sequential(app.port, single, args.sequential, 201, app.proc.pid))
        conc_bare = concurrent(bare.port, single, 16, args.per_client)
        conc_app = concurrent(app.port, single, 16, args.per_client)
        app_rps = statistics.median(r["req_per_s"] for r in seq_app)
        bare_rps = statistics.median(r["req_per_s"] for r in seq_bare)
        part1 = {
            "sequential_app": seq_app, "sequential_bare": seq_bare,
            "sequential_app_req_per_s_median": app_rps, "sequential_bare_req_per_s_median": bare_rps,
            "sequential_ratio": app_rps / bare_rps,
            "server_cpu_us_per_request_app_median": statistics.median(
                r["server_cpu_us_per_request"] for r in seq_app),
            "server_cpu_us_per_request_bare_median": statistics.median(
                r["server_cpu_us_per_request"] for r in seq_bare),
            "concurrent16_app": conc_app, "concurrent16_bare": conc_bare,
            "goal_ratio": GOAL_RATIO, "goal_p99_ms": GOAL_P99_MS,
            "ratio_met": app_rps / bare_rps >= GOAL_RATIO,
            "p99_met": conc_app["p99_ms"] <= GOAL_P99_MS and conc_app["statuses"] == {201: conc_app["requests"]},
        }
        result["single_row"] = part1
        print(f"  sequential: app {app_rps:,.0f} req/s, bare {bare_rps:,.0f} req/s, ratio {app_rps / bare_rps:.2f} "
              f"(goal >= {GOAL_RATIO}); server CPU per request: app "
              f"{part1['server_cpu_us_per_request_app_median']:.0f} us, bare "
              f"{part1['server_cpu_us_per_request_bare_median']:.0f} us")
        print(f"  16 clients: app p50 {conc_app['p50_ms']:.2f} ms p99 {conc_app['p99_ms']:.2f} ms "
              f"({conc_app['req_per_s']:,.0f} req/s); bare p50 {conc_bare['p50_ms']:.2f} ms "
              f"p99 {conc_bare['p99_ms']:.2f} ms (goal p99 <= {GOAL_P99_MS} ms)")

        # 2. concurrent writers
        print("part 2: 32 clients x 200 POSTs ...", flush=True)
        before = _count(db)
        load = run_clients(app.port, single, 32, 200, timeout=600, collect_ids=True)
        after = _count(db)
        fivexx = sum(n for s, n in load.statuses.items() if s >= 500)
        part2 = {"clients": 32, "per_client": 200, "responses": load.statuses, "seconds": load.elapsed,
                 "req_per_s": sum(load.statuses.values()) / load.elapsed, "new_rows": after - before,
                 "ids_returned": len(load.ids), "ids_unique": len(set(load.ids)),
                 "lost": _missing_ids(db, load.ids), "5xx": fivexx, "client_errors": load.errors[:5],
                 "p99_ms": percentile(load.latencies, 99) * 1e3}
        part2["met"] = (part2["new_rows"] == 6400 and part2["lost"] == 0 and fivexx == 0
                        and part2["ids_unique"] == 6400)
        result["concurrent_writers"] = part2
        print(f"  {part2['new_rows']} new rows, {part2['lost']} lost, {fivexx} 5xx, "
              f"{part2['req_per_s']:,.0f} req/s, p99 {part2['p99_ms']:.1f} ms")

        # 4. one 10,000-row batch
        print("part 4: 10,000-row batch ...", flush=True)
        timings = []
        for _ in range(3):
            client = SyncClient(app.port)
            try:
                t0 = time.perf_counter()
                status, body = client.request(batch)
                timings.append(time.perf_counter() - t0)
            finally:
                client.close()
            if status != 201 or json.loads(body)["count"] != 10_000:
                raise RuntimeError(f"batch failed: {status} {body[:300]!r}")
        result["batch_10000"] = {"body_bytes": len(batch_body), "seconds": timings,
                                 "median_s": statistics.median(timings)}
        print(f"  {len(batch_body) / 1e6:.1f} MB body: " + ", ".join(f"{t:.2f} s" for t in timings))
    finally:
        app.stop()
        bare.stop()

    # 3. kill -9 in the middle of load
    print("part 3: kill -9 mid-load ...", flush=True)
    crash_env = dict(env)
    crash_db = (run_dir / "crash.sqlite3").resolve()
    crash_env["FRAUD_APP_DATABASE_URL"] = f"sqlite:///{crash_db}"
    crashed = start_app_server(crash_env, run_dir / "crash.log")
    sequential(crashed.port, single, 50, 201)
    killer = threading.Timer(3.0, crashed.kill9)
    killer.start()
    load = run_clients(crashed.port, single, 16, 5000, timeout=120, collect_ids=True)
    killer.join()
    crashed.stop()
    with sqlite3.connect(str(crash_db)) as conn:  # read-write: recovers the WAL like the next server would
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
    part3 = {"killed_after_s": 3.0, "acknowledged_201": len(load.ids), "rows_after_restart": stored,
             "integrity_check": integrity, "missing_acknowledged": _missing_ids(crash_db, load.ids),
             "client_errors_after_kill": len(load.errors)}
    part3["met"] = integrity == "ok" and part3["missing_acknowledged"] == 0 and part3["acknowledged_201"] > 0
    result["crash"] = part3
    print(f"  {part3['acknowledged_201']} acknowledged, {stored} rows, integrity {integrity}, "
          f"{part3['missing_acknowledged']} acknowledged rows missing")

    result["machine"]["load_avg_at_end"] = list(os.getloadavg())
    result["goals_met"] = {"sequential_ratio": part1["ratio_met"], "p99_16_clients": part1["p99_met"],
                           "concurrent_writers": part2["met"], "crash": part3["met"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
