"""Benchmark: the REST API in the real server (``panel serve app.py --plugins fraud_app.api``).

    .venv/bin/python -m bench.bench_api [--data data/creditcard.parquet] [--postgres URL]

What it does (loopback only, every loop bounded by a count and a deadline), for each set-up: one
process on SQLite (WAL), and with ``--postgres URL`` also ``--num-procs 2`` on PostgreSQL (a fresh
schema of that database, dropped afterwards):

0. trains and saves a LightGBM model on the real data set with the project's own
   ``TrainingPipeline`` (once; kept in ``output/bench/models`` and reused), then starts the real
   server on a free port with a fresh database, a bare Tornado process whose one handler answers
   constant JSON (``bench/_bare_server.py``, the limit of this stack) and the Flask + Flask-SQLAlchemy
   reference of the same endpoint under waitress, 4 threads (``bench/flask_reference.py``, needs the
   ``bench`` extra), and the floor (``bench/_floor_server.py``): the least a server must do under the
   issue's rules (one hop to a worker thread, predict, one committed row, one hop back), in the
   leanest form this stack offers;
1. single-row ``POST /api/predictions`` (scored and saved): sequential requests per second on one
   keep-alive connection (interleaved rounds of the four servers), then 16 concurrent keep-alive
   clients: req/s, p50/p99 latency. Goals: app ÷ bare >= 0.5 sequentially and >= 0.6 at 16 clients,
   app ÷ Flask >= 4 at 16 clients, p99 <= 20 ms at 16 clients;
2. 32 clients x 200 POSTs: 6,400 new rows, 0 lost (every 201 id is in the table), 0 5xx;
3. ``kill -9`` of a second server (all its processes) in the middle of 16 clients' load: every id
   that got a 201 is in the table (SQLite also passes ``PRAGMA integrity_check``);
4. one 10,000-row batch request: time to score and save (3 requests, median). Goal <= 0.4 s;
5. a profile of where one request's time goes: each stage of the POST path's worker thread timed in
   this process with the same model and body, and each server's CPU per request (sequential and at
   16 clients), split between its event-loop thread(s) and its other threads.

Prints the table and writes ``bench/results/api.json``.
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    start_flask_reference,
    start_floor_server,
)

RESULTS = Path(__file__).resolve().parent / "results"
#: The issue's goals (#12).
GOALS = {"sequential_ratio": 0.5, "concurrent16_ratio_bare": 0.6, "concurrent16_ratio_flask": 4.0, "p99_ms": 20.0,
         "batch_s": 0.4}


def _rows(data: Path, n: int) -> list[dict[str, float]]:
    import pandas as pd

    from fraud_app.data import MODEL_FEATURES, to_canonical

    frame = to_canonical(pd.read_parquet(data)) if data.suffix == ".parquet" else to_canonical(pd.read_csv(data))
    part = frame[MODEL_FEATURES].head(n)
    return [{k: float(v) for k, v in rec.items()} for rec in part.to_dict(orient="records")]


def _processes(pid: int) -> list[int]:
    """``pid`` and its descendants (``panel serve --num-procs N`` forks its workers)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                pass
    return out


def _cpu_split(pid: int | None) -> dict[str, float]:
    """User + system CPU seconds of a server (all its processes, from /proc): its processes' main threads
    (the event loops) and their other threads (the API's worker threads, the database driver's)."""
    split = {"event_loop": 0.0, "other_threads": 0.0}
    if pid is None:
        return split
    tick = os.sysconf("SC_CLK_TCK")
    for process in _processes(pid):
        for task in Path(f"/proc/{process}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / tick
            split["event_loop" if task.name == str(process) else "other_threads"] += seconds
    return split


def _cpu_per_request(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    per = {name: (after[name] - before[name]) / count * 1e6 for name in before}
    per["total"] = sum(per.values())
    return per


def sequential(port: int, raw: bytes, count: int, expect: int, pid: int | None = None) -> dict:
    cpu_before = _cpu_split(pid)
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
    cpu = _cpu_per_request(cpu_before, _cpu_split(pid), count) if pid else None
    return {"requests": count, "seconds": elapsed, "req_per_s": count / elapsed,
            "p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3,
            "unexpected_status": bad, "server_cpu_us_per_request": cpu["total"] if cpu else None,
            "server_cpu_us_per_request_by_thread": cpu}


def concurrent(port: int, raw: bytes, clients: int, per_client: int, pid: int | None = None) -> dict:
    cpu_before = _cpu_split(pid)
    result = run_clients(port, raw, clients, per_client, timeout=300)
    lat = result.latencies
    return {"clients": clients, "requests": len(lat), "seconds": result.elapsed,
            "req_per_s": len(lat) / result.elapsed if result.elapsed else None,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
            "max_ms": max(lat) * 1e3 if lat else None, "statuses": result.statuses, "errors": result.errors[:5],
            "server_cpu_us_per_request_by_thread": _cpu_per_request(cpu_before, _cpu_split(pid), len(lat))
            if pid and lat else None}


def _count(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM predictions")).scalar_one())
    finally:
        engine.dispose()


def _missing_ids(url: str, ids: list[int]) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            present = {row[0] for row in conn.execute(text("SELECT id FROM predictions"))}
    finally:
        engine.dispose()
    return len(set(ids) - present)


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def profile_request(env: dict[str, str], body: bytes, batch_body: bytes, count: int = 300) -> dict:
    """Where one single-row POST's time goes in its worker thread: each stage of the path, timed in this
    process (µs, median), with the server's own model and a database of its own. The batch body shows the
    same for 10,000 rows."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from fraud_app.api.handlers import _created_payload, parse_json_body
        from fraud_app.inference import parse_request
        from fraud_app.inference.service import _predict, get_model
        from fraud_app.monitoring.aggregates import count_scored
        from fraud_app.storage import ScoredRows, StoredRows, dispose_engines
        from fraud_app.storage.repository import _iso, _writer, utcnow
        from fraud_app.storage.writer import bind_scored

        model = get_model(BENCH_MODEL)

        def stages(raw: bytes) -> dict[str, float]:
            out: dict[str, float] = {}
            t = time.perf_counter()
            payload = parse_json_body(raw)
            out["decode JSON (orjson)"] = time.perf_counter() - t
            t = time.perf_counter()
            values, _, is_batch = parse_request(payload)
            out["validate into float64 rows"] = time.perf_counter() - t
            t = time.perf_counter()
            scores = _predict(model, values)
            out["predict (Booster.predict, 1 thread)"] = time.perf_counter() - t
            t = time.perf_counter()
            part = ScoredRows(model.name, model.version, model.threshold, "api", values, scores)
            now = utcnow()
            counts = count_scored(model.name, model.version, now, "api", part.scores, part.flagged, values)
            out["count monitoring aggregates (NumPy)"] = time.perf_counter() - t
            t = time.perf_counter()
            writer = _writer()
            params = bind_scored(writer.engine.dialect, part, now)
            out["bind rows for the driver"] = time.perf_counter() - t
            t = time.perf_counter()
            ids = writer.write(params, counts)
            out["insert + aggregates upsert + commit"] = time.perf_counter() - t
            t = time.perf_counter()
            _created_payload(is_batch)(model, StoredRows(part, ids, _iso(now)))
            out["encode the answer (orjson)"] = time.perf_counter() - t
            return out

        for _ in range(30):
            stages(body)
        runs = [stages(body) for _ in range(count)]
        single = {name: statistics.median(r[name] for r in runs) * 1e6 for name in runs[0]}
        extra = _whole_and_bare_write(body, model, count)
        batch = [stages(batch_body) for _ in range(3)]
        batch_ms = {name: statistics.median(r[name] for r in batch) * 1e3 for name in batch[0]}
        dispose_engines()
        return {"single_row_us": single, "single_row_total_us": sum(single.values()), **extra,
                "batch_10000_ms": batch_ms, "batch_10000_total_ms": sum(batch_ms.values())}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _whole_and_bare_write(body: bytes, model: Any, count: int) -> dict[str, float]:  # noqa: ANN401
    """Two more single-row figures (µs, median): the whole worker path in one thread, as the server runs it
    (``_create_predictions``: decode, validate, the batcher, score, save, encode), and the write without the
    monitoring upserts (what the aggregates cost a transaction)."""
    from fraud_app.api.handlers import _create_predictions, parse_json_body
    from fraud_app.inference import parse_request
    from fraud_app.inference.service import _predict
    from fraud_app.monitoring.aggregates import Counts, count_scored
    from fraud_app.storage import ScoredRows
    from fraud_app.storage.repository import _writer, utcnow
    from fraud_app.storage.writer import bind_scored

    values = parse_request(parse_json_body(body))[0]
    part = ScoredRows(model.name, model.version, model.threshold, "api", values, _predict(model, values))
    now = utcnow()
    counts = count_scored(model.name, model.version, now, "api", part.scores, part.flagged, values)
    writer = _writer()
    params = bind_scored(writer.engine.dialect, part, now)

    def timed(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(count):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e6

    return {"single_row_whole_path_us": timed(lambda: _create_predictions([body])),
            "write_with_aggregates_us": timed(lambda: writer.write(params, counts)),
            "write_without_aggregates_us": timed(lambda: writer.write(params, Counts()))}


def _stats(rounds: list[dict]) -> float:
    return statistics.median(r["req_per_s"] for r in rounds)


def run_setup(label: str, env: dict[str, str], run_dir: Path, model: dict, single: bytes, batch: bytes,
              batch_body_len: int, args: argparse.Namespace, extra: list[str]) -> dict:
    """Parts 1-4 for one set-up (database URL in ``env``; ``extra`` arguments to ``panel serve``)."""
    url = env["FRAUD_APP_DATABASE_URL"]
    result: dict = {"label": label, "server_args": extra}
    app = start_app_server(env, run_dir / f"app-{label}.log", extra, new_session=True)
    bare = start_bare_server(run_dir / f"bare-{label}.log")
    flask_url = (f"sqlite:///{(run_dir / f'flask-{label}.sqlite3').resolve()}" if url.startswith("sqlite")
                 else url.replace("search_path%3D", "search_path%3Dflask_"))
    flask = start_flask_reference(env, run_dir / f"flask-{label}.log", flask_url, BENCH_MODEL)
    floor = start_floor_server(run_dir / f"floor-{label}.log", Path(env["FRAUD_APP_MODELS_DIR"]) / BENCH_MODEL,
                               str((run_dir / f"floor-{label}.sqlite3").resolve()) if url.startswith("sqlite") else url)
    servers = {"app": app, "bare": bare, "flask": flask, "floor": floor}
    try:
        for server in servers.values():  # warm-up: models load, pools fill
            sequential(server.port, single, 200, 201)

        # 1. single-row scoring: four servers, interleaved sequential rounds, then 16 clients
        print(f"[{label}] part 1: single-row POST, sequential and 16 clients ...", flush=True)
        seq: dict[str, list[dict]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, server in servers.items():
                seq[name].append(sequential(server.port, single, args.sequential, 201, server.proc.pid))
        conc = {name: concurrent(server.port, single, 16, args.per_client, server.proc.pid)
                for name, server in servers.items()}
        rps = {name: _stats(rounds) for name, rounds in seq.items()}
        part1 = {
            "sequential": seq, "sequential_req_per_s_median": rps, "concurrent16": conc,
            "sequential_ratio": rps["app"] / rps["bare"],
            "concurrent16_ratio_bare": conc["app"]["req_per_s"] / conc["bare"]["req_per_s"],
            "concurrent16_ratio_flask": conc["app"]["req_per_s"] / conc["flask"]["req_per_s"],
            # the floor: the least a server must do under the rules (bench/_floor_server.py)
            "floor": {"sequential_ratio": rps["floor"] / rps["bare"],
                      "concurrent16_ratio_bare": conc["floor"]["req_per_s"] / conc["bare"]["req_per_s"],
                      "app_of_floor_sequential": rps["app"] / rps["floor"],
                      "app_of_floor_concurrent16": conc["app"]["req_per_s"] / conc["floor"]["req_per_s"]},
            "server_cpu_us_per_request_median": {
                name: statistics.median(r["server_cpu_us_per_request"] for r in rounds)
                for name, rounds in seq.items()},
            # where the server's CPU goes per request: its event-loop thread(s) and its other threads
            "server_cpu_us_per_request_by_thread": {
                "sequential": {name: {part: statistics.median(r["server_cpu_us_per_request_by_thread"][part]
                                                               for r in rounds)
                                      for part in ("event_loop", "other_threads", "total")}
                               for name, rounds in seq.items()},
                "concurrent16": {name: c["server_cpu_us_per_request_by_thread"] for name, c in conc.items()},
            },
        }
        part1["met"] = {
            "sequential_ratio": part1["sequential_ratio"] >= GOALS["sequential_ratio"],
            "concurrent16_ratio_bare": part1["concurrent16_ratio_bare"] >= GOALS["concurrent16_ratio_bare"],
            "concurrent16_ratio_flask": part1["concurrent16_ratio_flask"] >= GOALS["concurrent16_ratio_flask"],
            "p99_16_clients": conc["app"]["p99_ms"] <= GOALS["p99_ms"]
            and conc["app"]["statuses"] == {201: conc["app"]["requests"]},
        }
        result["single_row"] = part1
        print(f"  sequential req/s: app {rps['app']:,.0f}, bare {rps['bare']:,.0f}, flask {rps['flask']:,.0f}; "
              f"16 clients: app {conc['app']['req_per_s']:,.0f} (p99 {conc['app']['p99_ms']:.1f} ms), "
              f"bare {conc['bare']['req_per_s']:,.0f}, flask {conc['flask']['req_per_s']:,.0f}, "
              f"floor {rps['floor']:,.0f} / {conc['floor']['req_per_s']:,.0f}", flush=True)
        for name in ("flask", "bare", "floor"):
            servers[name].stop()

        # 2. concurrent writers
        print(f"[{label}] part 2: 32 clients x 200 POSTs ...", flush=True)
        before = _count(url)
        load = run_clients(app.port, single, 32, 200, timeout=600, collect_ids=True)
        after = _count(url)
        fivexx = sum(n for s, n in load.statuses.items() if s >= 500)
        part2 = {"clients": 32, "per_client": 200, "responses": load.statuses, "seconds": load.elapsed,
                 "req_per_s": sum(load.statuses.values()) / load.elapsed, "new_rows": after - before,
                 "ids_returned": len(load.ids), "ids_unique": len(set(load.ids)),
                 "lost": _missing_ids(url, load.ids), "5xx": fivexx, "client_errors": load.errors[:5],
                 "server_errors": load.server_errors,
                 "p99_ms": percentile(load.latencies, 99) * 1e3}
        part2["met"] = (part2["new_rows"] == 6400 and part2["lost"] == 0 and fivexx == 0
                        and part2["ids_unique"] == 6400)
        result["concurrent_writers"] = part2
        print(f"  {part2['new_rows']} new rows, {part2['lost']} lost, {fivexx} 5xx, "
              f"{part2['req_per_s']:,.0f} req/s, p99 {part2['p99_ms']:.1f} ms", flush=True)
        for answer in load.server_errors:
            print(f"  5xx: {answer}", flush=True)

        # 4. one 10,000-row batch
        print(f"[{label}] part 4: 10,000-row batch ...", flush=True)
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
        result["batch_10000"] = {"body_bytes": batch_body_len, "seconds": timings,
                                 "median_s": statistics.median(timings)}
        result["batch_10000"]["met"] = result["batch_10000"]["median_s"] <= GOALS["batch_s"]
        print("  " + ", ".join(f"{t:.2f} s" for t in timings), flush=True)
    finally:
        for server in servers.values():
            server.stop()

    # 3. kill -9 in the middle of load
    print(f"[{label}] part 3: kill -9 mid-load ...", flush=True)
    crash_env = dict(env)
    crash_db = None
    if url.startswith("sqlite"):
        crash_db = (run_dir / f"crash-{label}.sqlite3").resolve()
        crash_env["FRAUD_APP_DATABASE_URL"] = f"sqlite:///{crash_db}"
    crash_url = crash_env["FRAUD_APP_DATABASE_URL"]
    crashed = start_app_server(crash_env, run_dir / f"crash-{label}.log", extra, new_session=True)
    sequential(crashed.port, single, 50, 201)
    before = _count(crash_url)
    killer = threading.Timer(3.0, crashed.kill9)
    killer.start()
    load = run_clients(crashed.port, single, 16, 5000, timeout=120, collect_ids=True)
    killer.join()
    crashed.stop()
    integrity = None
    if crash_db is not None:
        with sqlite3.connect(str(crash_db)) as conn:  # read-write: recovers the WAL like the next server would
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    stored = _count(crash_url) - before
    part3 = {"killed_after_s": 3.0, "acknowledged_201": len(load.ids), "rows_after_restart": stored,
             "integrity_check": integrity, "missing_acknowledged": _missing_ids(crash_url, load.ids),
             "client_errors_after_kill": len(load.errors)}
    part3["met"] = integrity in (None, "ok") and part3["missing_acknowledged"] == 0 and part3["acknowledged_201"] > 0
    result["crash"] = part3
    print(f"  {part3['acknowledged_201']} acknowledged, {stored} new rows, integrity {integrity}, "
          f"{part3['missing_acknowledged']} acknowledged rows missing", flush=True)
    return result


def _fmt_table(setup: dict) -> str:
    p1, c = setup["single_row"], setup["single_row"]["concurrent16"]
    rps = p1["sequential_req_per_s_median"]
    lines = [f"### {setup['label']}", "",
             "| server | sequential req/s | 16 clients req/s | p99 at 16 clients |", "|---|---|---|---|"]
    for name, what in (("bare", "bare Tornado, constant JSON (the limit of this stack)"),
                       ("app", "this app, `POST /api/predictions`"),
                       ("flask", "Flask + Flask-SQLAlchemy, same model, waitress, 4 threads"),
                       ("floor", "the floor: one thread hop, predict, one committed row, nothing else")):
        lines.append(f"| {what} | {rps[name]:,.0f} | {c[name]['req_per_s']:,.0f} | {c[name]['p99_ms']:.1f} ms |")
    floor = p1["floor"]
    lines += ["", f"The floor reaches {floor['sequential_ratio']:.2f} of bare Tornado sequentially and "
                  f"{floor['concurrent16_ratio_bare']:.2f} at 16 clients; the app reaches "
                  f"{floor['app_of_floor_sequential']:.2f} and {floor['app_of_floor_concurrent16']:.2f} of the floor."]
    mark = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    lines += ["", "| figure | measured | goal | |", "|---|---|---|---|",
              f"| sequential: app ÷ bare Tornado | {p1['sequential_ratio']:.3f} | ≥ 0.5 | "
              f"{mark(p1['met']['sequential_ratio'])} |",
              f"| 16 clients: app ÷ bare Tornado | {p1['concurrent16_ratio_bare']:.3f} | ≥ 0.6 | "
              f"{mark(p1['met']['concurrent16_ratio_bare'])} |",
              f"| 16 clients: app ÷ Flask reference | {p1['concurrent16_ratio_flask']:.2f} | ≥ 4 | "
              f"{mark(p1['met']['concurrent16_ratio_flask'])} |",
              f"| p99 at 16 clients | {c['app']['p99_ms']:.1f} ms | ≤ 20 ms | {mark(p1['met']['p99_16_clients'])} |",
              f"| one 10,000-row batch request | {setup['batch_10000']['median_s']:.2f} s | ≤ 0.4 s | "
              f"{mark(setup['batch_10000']['met'])} |",
              f"| 32 clients × 200 POSTs | {setup['concurrent_writers']['lost']} lost, "
              f"{setup['concurrent_writers']['5xx']} 5xx | the same | {mark(setup['concurrent_writers']['met'])} |",
              f"| `kill -9` under load | {setup['crash']['missing_acknowledged']} of "
              f"{setup['crash']['acknowledged_201']:,} acknowledged rows lost | 0 | {mark(setup['crash']['met'])} |"]
    return "\n".join(lines)


def _fmt_profile(profile: dict) -> str:
    lines = ["### where a single-row request's time goes", "",
             "In its worker thread (each stage timed in-process, median µs):", "",
             "| stage | µs |", "|---|---|"]
    lines += [f"| {name} | {us:,.0f} |" for name, us in profile["single_row_us"].items()]
    lines.append(f"| **the stages together** | **{profile['single_row_total_us']:,.0f}** |")
    lines.append(f"| the whole worker path in one thread (`_create_predictions`: the stages, the batcher, "
                 f"its checks) | {profile['single_row_whole_path_us']:,.0f} |")
    lines += ["", f"The write alone: {profile['write_with_aggregates_us']:,.0f} µs with the monitoring upserts, "
                  f"{profile['write_without_aggregates_us']:,.0f} µs without them."]
    lines += ["", "In the server (CPU µs per request, from /proc: event-loop thread(s) + other threads = total):", "",
              "| set-up | load | app | bare Tornado | Flask | floor |", "|---|---|---|---|---|---|"]
    for label, by_load in profile["server_cpu_us_per_request"].items():
        for load, servers in by_load.items():
            cells = [f"{c['event_loop']:,.0f} + {c['other_threads']:,.0f} = {c['total']:,.0f}" if c else "-"
                     for c in (servers.get(name) for name in ("app", "bare", "flask", "floor"))]
            lines.append(f"| {label} | {load} | " + " | ".join(cells) + " |")
    lines += ["", "10,000-row batch, stages (ms): " + ", ".join(
        f"{name} {ms:,.0f}" for name, ms in profile["batch_10000_ms"].items())
        + f"; together {profile['batch_10000_total_ms']:,.0f} ms"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "creditcard.parquet")
    parser.add_argument("--sequential", type=int, default=1500, help="requests per sequential round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (app, bare, flask, floor) for part 1")
    parser.add_argument("--per-client", type=int, default=200, help="requests per client at 16 clients")
    parser.add_argument("--postgres", default=os.environ.get("FRAUD_APP_TEST_POSTGRES_URL"),
                        help="also run --num-procs 2 on this PostgreSQL database (default: "
                             "FRAUD_APP_TEST_POSTGRES_URL; a fresh schema, dropped afterwards)")
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
        "model": {k: model[k] for k in ("name", "kind", "version", "threshold")}
        | {"trained_on": str(args.data),
           "final_model": (model.get("params") or {}).get("final_model", "refit (saved before final_model existed)")},
        "goals": GOALS,
    }

    print("part 5: profile of one request ...", flush=True)
    profile_env = dict(env, FRAUD_APP_DATABASE_URL=f"sqlite:///{(run_dir / 'profile.sqlite3').resolve()}")
    result["profile"] = profile_request(profile_env, json.dumps(rows[0]).encode(), batch_body)

    sqlite_setup = run_setup("1 process, SQLite (WAL, synchronous=NORMAL)", env, run_dir, model, single, batch,
                             len(batch_body), args, [])
    result["setups"] = [sqlite_setup]
    # the top-level keys the README's figures table reads: the default set-up
    result.update({key: sqlite_setup[key] for key in ("single_row", "concurrent_writers", "crash", "batch_10000")})
    result["single_row"]["sequential_app_req_per_s_median"] = sqlite_setup["single_row"]["sequential_req_per_s_median"]["app"]
    result["single_row"]["sequential_bare_req_per_s_median"] = sqlite_setup["single_row"]["sequential_req_per_s_median"]["bare"]

    if args.postgres:
        from sqlalchemy import create_engine, text

        schema = f"bench_api_{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                conn.execute(text(f'CREATE SCHEMA "flask_{schema}"'))
            separator = "&" if "?" in args.postgres else "?"
            pg_env = dict(env, FRAUD_APP_DATABASE_URL=f"{args.postgres}{separator}options=-csearch_path%3D{schema}")
            result["setups"].append(run_setup("--num-procs 2, PostgreSQL", pg_env, run_dir, model, single, batch,
                                              len(batch_body), args, ["--num-procs", "2"]))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                conn.execute(text(f'DROP SCHEMA IF EXISTS "flask_{schema}" CASCADE'))
            admin.dispose()

    result["profile"]["server_cpu_us_per_request"] = {
        setup["label"]: setup["single_row"]["server_cpu_us_per_request_by_thread"] for setup in result["setups"]}
    result["machine"]["load_avg_at_end"] = list(os.getloadavg())
    result["goals_met"] = {setup["label"]: {**setup["single_row"]["met"],
                                            "batch_10000": setup["batch_10000"]["met"],
                                            "concurrent_writers": setup["concurrent_writers"]["met"],
                                            "crash": setup["crash"]["met"]} for setup in result["setups"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    for setup in result["setups"]:
        print(_fmt_table(setup) + "\n")
    print(_fmt_profile(result["profile"]))
    print(f"\nload average at start {result['machine']['load_avg_at_start']}, at end "
          f"{result['machine']['load_avg_at_end']} (2 cores shared with other work: figures are noisy)")
    print(f"wrote {args.out}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
