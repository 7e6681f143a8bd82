"""Benchmark: ``GET /api/monitoring`` over 1,000,000 stored predictions, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.bench_monitoring [--rows 1000000] [--postgres URL] [--data data/creditcard.parquet]

What it does, for each database (a fresh SQLite file; a fresh schema of the PostgreSQL database
given by ``--postgres`` or ``FRAUD_APP_TEST_POSTGRES_URL``, dropped at the end):

0. trains and saves a decision tree on the real data set with the project's own pipeline (so
   it carries a training reference);
1. stores ``--rows`` predictions of the real transactions (scored by that model, cycled) through
   ``insert_predictions`` in 10,000-row transactions, spread over the last 7 days, so the
   monitoring aggregates are written in the same transactions as the rows (write rate reported);
   then labels 1 % of them;
2. times :func:`fraud_app.monitoring.report.monitoring_report` in-process (default window: the
   last 7 days, hourly; 1 cold + 5 warm calls) and ``GET /api/monitoring`` against the real
   server (``panel serve app.py --plugins fraud_app.api``; 5 calls), and the review queue;
3. measures what the aggregation costs at write time: 100,000 rows written with and without the
   aggregates, into a scratch database;
4. measures the alternative it replaces: the same PSI bin counts computed by SQL straight from
   the stored JSON inputs (29 values extracted per row), over all the rows;
5. measures the Monitoring tab's refresh: the largest gap of a 5 ms ticker on the event loop while
   the tab's controller refreshes (its queries and explanations run in a worker thread).

Writes ``bench/results/monitoring.json``. The machine is shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import gc
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._server import ROOT, bench_env, start_app_server

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "bench_monitor"
GOAL_S = 1.0
GOAL_LOOP_MS = 50.0
BATCH = 10_000


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _set_env(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith("FRAUD_APP_")]:
        del os.environ[key]
    os.environ.update(env)


def _train(data_dir: Path) -> dict:
    from fraud_app.data import load_transactions
    from fraud_app.models.store import read_metadata
    from fraud_app.training.pipeline import TrainingPipeline

    if not (Path(os.environ["FRAUD_APP_MODELS_DIR"]) / MODEL / "metadata.json").exists():
        TrainingPipeline("decision_tree", {"max_depth": 6}, name=MODEL, save=True, overwrite=True,
                         seed=0).run(load_transactions())
    meta = read_metadata(MODEL)
    return {"name": MODEL, "kind": meta["kind"], "version": meta["version"], "has_reference": "reference" in meta}


def _scored_rows():
    import numpy as np

    from fraud_app.data import MODEL_FEATURES, load_transactions
    from fraud_app.inference import score_array

    frame = load_transactions()
    values = frame[MODEL_FEATURES].to_numpy(dtype=np.float64)
    fitted, scores, flagged = score_array(values, MODEL)
    return fitted, values, scores, flagged


def _bulk_fill(n_rows: int, scored, start: datetime, span: timedelta) -> dict:
    """Store ``n_rows`` predictions fast: one multi-row INSERT (no RETURNING) per 10,000 rows, and the
    monitoring aggregates by the same :func:`~fraud_app.monitoring.aggregates.record` the write path
    calls, in the same transaction. (``insert_predictions`` itself is timed on 100,000 rows below.)"""
    from sqlalchemy import insert

    from fraud_app.monitoring.aggregates import record, warm_references
    from fraud_app.storage import get_engine
    from fraud_app.storage.tables import predictions

    started = time.perf_counter()
    engine = get_engine()
    statement = insert(predictions)
    for offset, rows in _batches(n_rows, scored, start, span):
        warm_references(rows)
        with engine.begin() as conn:
            conn.execute(statement, rows)
            record(conn, rows)
        if offset and offset % 200_000 == 0:
            print(f"  {offset:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    return {"rows": n_rows, "seconds": round(seconds, 2), "rows_per_s": round(n_rows / seconds),
            "how": "bulk INSERT + the write path's record() in the same transaction, 10,000 rows each"}


def _batches(n_rows: int, scored, start: datetime, span: timedelta):  # type: ignore[no-untyped-def]
    """``(offset, rows)`` of ``BATCH`` prediction rows each: the scored real transactions in turn, spread
    evenly over ``span`` from ``start``, from the sources in a fixed rotation."""
    from fraud_app.data import MODEL_FEATURES

    fitted, values, scores, flagged = scored
    step = span / n_rows
    sources = ("api", "api", "batch", "ui")
    for offset in range(0, n_rows, BATCH):
        rows = []
        for i in range(offset, min(n_rows, offset + BATCH)):
            j = i % len(values)
            rows.append({"model": fitted.name, "model_version": fitted.version, "created_at": start + step * i,
                         "features": dict(zip(MODEL_FEATURES, values[j].tolist(), strict=True)),
                         "fraud_probability": float(scores[j]), "is_fraud": bool(flagged[j]),
                         "threshold": float(fitted.threshold), "source": sources[(i // 997) % 4]})
        yield offset, rows


def _fill(n_rows: int, scored, start: datetime, span: timedelta, record: bool = True) -> dict:
    from fraud_app.storage import insert_predictions, repository

    original = repository.record_monitoring
    if not record:
        repository.record_monitoring = lambda conn, values: None
    try:
        started = time.perf_counter()
        for _, rows in _batches(n_rows, scored, start, span):
            insert_predictions(rows, deadline=time.monotonic() + 600)
        seconds = time.perf_counter() - started
    finally:
        repository.record_monitoring = original
    return {"rows": n_rows, "seconds": round(seconds, 2), "rows_per_s": round(n_rows / seconds)}


def _label(fraction: float = 0.01) -> int:
    """Label every 100th prediction: fraud when it was flagged and every 3rd of the rest (a bulk UPDATE)."""
    from sqlalchemy import text

    from fraud_app.storage import get_engine

    now = datetime.now(UTC)
    with get_engine().begin() as conn:
        n = conn.execute(text(
            "UPDATE predictions SET label = CASE WHEN is_fraud OR id % 3 = 0 THEN 'fraud' ELSE 'legitimate' END, "
            "labeled_at = :now, labeled_by = 'bench' WHERE id % :k = 0"),
            {"now": now.replace(tzinfo=None) if conn.dialect.name == "sqlite" else now,
             "k": int(round(1 / fraction))}).rowcount
    return int(n)


def _time_report() -> dict:
    from fraud_app.monitoring.report import monitoring_report, review_queue

    times = []
    for _ in range(6):
        started = time.perf_counter()
        report = monitoring_report()
        times.append(time.perf_counter() - started)
    day = []
    for _ in range(3):
        started = time.perf_counter()
        monitoring_report(bucket="day")
        day.append(time.perf_counter() - started)
    queue = []
    for _ in range(3):
        started = time.perf_counter()
        review_queue(limit=10)
        queue.append(time.perf_counter() - started)
    return {"cold_s": round(times[0], 4), "warm_median_s": round(statistics.median(times[1:]), 4),
            "warm_max_s": round(max(times[1:]), 4), "day_bucket_median_s": round(statistics.median(day), 4),
            "review_queue_median_s": round(statistics.median(queue), 4),
            "window_rows": report["totals"]["count"], "labeled": report["realized"]["labeled"],
            "alerts": [a["kind"] + (f":{a['feature']}" if "feature" in a else "") for a in report["alerts"]],
            "volume_points": len(report["volume"])}


def _time_http(env: dict[str, str], log_dir: Path) -> dict:
    server = start_app_server(env, log_dir / "server.log")
    try:
        deadline = time.monotonic() + 300  # the server's warm-up (data set, EDA, model) first
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/health", timeout=30) as resp:
                health = json.loads(resp.read())
            if health.get("status") == "ok" and health.get("model") is not None:
                break
            time.sleep(0.5)
        time.sleep(5)  # the warm-up continues a little after health settles
        url = f"http://127.0.0.1:{server.port}/api/monitoring"
        times, size = [], 0
        for _ in range(6):
            started = time.perf_counter()
            with urllib.request.urlopen(url, timeout=120) as resp:
                body = resp.read()
                assert resp.status == 200
            times.append(time.perf_counter() - started)
            size = len(body)
        payload = json.loads(body)
        assert payload["totals"]["count"] > 0
    finally:
        server.stop()
    return {"first_s": round(times[0], 4), "median_s": round(statistics.median(times[1:]), 4),
            "max_s": round(max(times[1:]), 4), "response_bytes": size}


def _json_alternative(dialect: str, sample: int = 20_000) -> dict:
    """The PSI bin counts of the 29 inputs, by SQL straight from the JSON column (what aggregates replace)."""
    from sqlalchemy import text

    from fraud_app.data import MODEL_FEATURES
    from fraud_app.monitoring.aggregates import model_reference
    from fraud_app.storage import get_engine

    from fraud_app.models.store import read_metadata

    reference = model_reference(MODEL, read_metadata(MODEL)["version"])
    parts = []
    for name in MODEL_FEATURES:
        value = (f"json_extract(features, '$.{name}')" if dialect == "sqlite"
                 else f"CAST(features->>'{name}' AS DOUBLE PRECISION)")
        for k, edge in enumerate(reference["features"][name]["edges"]):
            parts.append(f"SUM(CASE WHEN {value} < {edge!r} THEN 1 ELSE 0 END) AS {name}_{k}")
    query = text(f"SELECT COUNT(*), {', '.join(parts)} FROM predictions WHERE id <= :n")
    started = time.perf_counter()
    with get_engine().connect() as conn:
        n = conn.execute(query, {"n": sample}).one()[0]
        total = conn.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one()
    seconds = time.perf_counter() - started
    return {"sample_rows": int(n), "sample_s": round(seconds, 2),
            "extrapolated_to_all_rows_s": round(seconds * total / n, 1), "all_rows": int(total),
            "note": "linear extrapolation of the sample's time (the full scan was not run)"}


def _loop_block() -> dict:
    """Largest event-loop gap while the Monitoring tab's controller (and its bound views) refresh.

    Two measures: the gaps of a 5 ms ticker (what any other session or API request waits, which
    includes time the machine gives to other processes: see the idle baseline), and the longest single
    loop callback, in wall time and in the loop thread's own CPU time (the app's own cost, whatever
    else runs on the machine).
    """
    import panel as pn

    from fraud_app.ui.monitoring.controller import MonitoringController
    from fraud_app.ui.monitoring.views import ReviewQueueView, SummaryView
    from fraud_app.ui.warmup import freeze_heap

    pn.extension("tabulator")

    async def main() -> dict:
        ctrl = MonitoringController(queue_size=10)
        views = [SummaryView(ctrl=ctrl), ReviewQueueView(ctrl=ctrl)]
        for view in views:
            pn.panel(view).get_root()  # the bound panes re-render on the loop when the report arrives
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last - 0.005)
                last = now

        await ctrl.refresh_now()  # the server's warm-up has imported the model stack: do the same first
        # The server's warm-up ends with gc.freeze() (fraud_app/ui/warmup.py), so a collection walks only
        # what sessions made since; do the same with this process's benchmark data, and time every
        # collection that still happens (a collection stops every thread, the loop's too).
        freeze_heap()
        collections: list[float] = []
        gc_started = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                gc_started[0] = time.perf_counter()
            else:
                collections.append(time.perf_counter() - gc_started[0])

        gc.callbacks.append(on_gc)
        callbacks: list[tuple[float, float]] = []  # (wall, loop-thread CPU) of each loop callback
        handle_run = asyncio.events.Handle._run

        def timed_run(handle: asyncio.events.Handle) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                handle_run(handle)
            finally:
                callbacks.append((time.perf_counter() - wall, time.thread_time() - cpu))

        asyncio.events.Handle._run = timed_run
        task = asyncio.create_task(ticker())
        await asyncio.sleep(3)  # the idle baseline: how late a 5 ms timer fires on this machine anyway
        idle = list(gaps)
        gaps.clear()
        callbacks.clear()
        refreshes, labels = [], []
        for _ in range(5):  # periodic refreshes (nothing new: the usual case)
            started = time.perf_counter()
            await ctrl.refresh_now()
            refreshes.append(time.perf_counter() - started)
            assert ctrl.error is None, ctrl.error
        unchanged = list(gaps)
        gaps.clear()
        refresh_callbacks = list(callbacks)
        callbacks.clear()
        for _ in range(5):  # an analyst labels the top of the queue: the report and the queue both change
            started = time.perf_counter()
            await ctrl.label(int(ctrl.queue["id"].iloc[0]), "fraud")
            labels.append(time.perf_counter() - started)
            assert ctrl.error is None, ctrl.error
        changed = list(gaps)
        label_callbacks = list(callbacks)
        stop.set()
        await task
        asyncio.events.Handle._run = handle_run
        gc.callbacks.remove(on_gc)

        def ms(values: list[float], q: float | None = None) -> float:
            return round(1000 * (max(values) if q is None else sorted(values)[int(q * (len(values) - 1))]), 1)

        return {"idle_max_gap_ms": ms(idle), "idle_p99_gap_ms": ms(idle, 0.99),
                "refresh_max_gap_ms": ms(unchanged), "refresh_p99_gap_ms": ms(unchanged, 0.99),
                "label_max_gap_ms": ms(changed), "label_p99_gap_ms": ms(changed, 0.99),
                "loop_max_gap_ms": max(ms(unchanged), ms(changed)),
                "refresh_max_callback_ms": ms([w for w, _ in refresh_callbacks]),
                "refresh_max_callback_cpu_ms": ms([c for _, c in refresh_callbacks]),
                "label_max_callback_ms": ms([w for w, _ in label_callbacks]),
                "label_max_callback_cpu_ms": ms([c for _, c in label_callbacks]),
                "gc_collections": len(collections), "gc_max_ms": ms(collections) if collections else 0.0,
                "refresh_median_s": round(statistics.median(refreshes), 3),
                "label_and_refresh_median_s": round(statistics.median(labels), 3), "refreshes": 10}

    return asyncio.run(main())


def _run_database(kind: str, url: str, env: dict[str, str], rows: int, scored, log_dir: Path,
                  scratch_url: str) -> dict:
    from fraud_app.storage import count_predictions, dispose_engines, init_db

    print(f"[{kind}] filling {rows:,} predictions (load {_load()})", flush=True)
    env = {**env, "FRAUD_APP_DATABASE_URL": url}
    _set_env(env)
    dispose_engines()
    init_db()
    now = datetime.now(UTC)
    span = timedelta(days=7) - timedelta(minutes=5)
    out: dict = {"load_avg_before": _load()}
    out["fill"] = _bulk_fill(rows, scored, now - span - timedelta(minutes=1), span)
    out["stored_rows"] = count_predictions()
    out["labeled_rows"] = _label()
    print(f"[{kind}] filled: {out['fill']}; timing the report", flush=True)
    out["report"] = _time_report()
    print(f"[{kind}] report: {out['report']}", flush=True)
    dispose_engines()
    out["http"] = _time_http(env, log_dir)
    print(f"[{kind}] GET /api/monitoring: {out['http']}", flush=True)
    out["tab_refresh"] = _loop_block()
    print(f"[{kind}] tab refresh: {out['tab_refresh']}", flush=True)
    out["alternative"] = _json_alternative("sqlite" if kind == "sqlite" else "postgresql")
    print(f"[{kind}] JSON alternative: {out['alternative']}", flush=True)
    # write-time cost of the aggregates, into a scratch database
    dispose_engines()
    _set_env({**env, "FRAUD_APP_DATABASE_URL": scratch_url})
    init_db()
    n = min(100_000, rows)
    with_aggregates = _fill(n, scored, now - timedelta(days=1), timedelta(hours=20))
    without = _fill(n, scored, now - timedelta(days=1), timedelta(hours=20), record=False)
    out["write_cost"] = {"rows": n, "with_aggregates_rows_per_s": with_aggregates["rows_per_s"],
                         "without_aggregates_rows_per_s": without["rows_per_s"],
                         "slowdown": round(without["rows_per_s"] / with_aggregates["rows_per_s"], 2)}
    print(f"[{kind}] write cost: {out['write_cost']}", flush=True)
    dispose_engines()
    out["load_avg_after"] = _load()
    out["met"] = max(out["report"]["warm_max_s"], out["http"]["median_s"]) <= GOAL_S
    return out


def _postgres_schema(base: str, schema: str, create: bool) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if create:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            else:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", default=str(ROOT / "data" / "creditcard.parquet"))
    parser.add_argument("--postgres", default=os.environ.get("FRAUD_APP_TEST_POSTGRES_URL", ""))
    parser.add_argument("--only", choices=("sqlite", "postgres"), default=None)
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not data.exists():
        print(f"error: no data set at {data} (run `make data`)", file=sys.stderr)
        return 1
    work = ROOT / "output" / "bench" / "monitoring"
    shutil.rmtree(work / "db", ignore_errors=True)
    (work / "db").mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env = bench_env(work, work / "models", data.parent)
    _set_env(env)
    command = "python -m bench.bench_monitoring" + (f" --rows {args.rows}" if args.rows != 1_000_000 else "")
    result: dict = {
        "command": command, "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_start": _load(),
                    "note": "2 cores shared with 4 other engineers' test runs: figures are noisy"},
        "rows": args.rows, "goal_s": GOAL_S, "goal_loop_ms": GOAL_LOOP_MS,
        "choice": "aggregate at write time (monitoring_volume, monitoring_bins), in the insert's transaction",
    }
    print("training the benchmark model on the real data set", flush=True)
    result["model"] = _train(data.parent)
    scored = _scored_rows()
    path = RESULTS / "monitoring.json"
    previous = json.loads(path.read_text()) if args.only is not None and path.exists() else {}
    if args.only in (None, "sqlite"):
        result["sqlite"] = _run_database("sqlite", f"sqlite:///{work / 'db' / 'monitoring.sqlite3'}", env,
                                         args.rows, scored, work / "logs",
                                         f"sqlite:///{work / 'db' / 'scratch.sqlite3'}")
        path.write_text(json.dumps({**previous, **result}, indent=2) + "\n")
    if args.only in (None, "postgres"):
        if not args.postgres:
            print("no PostgreSQL URL (--postgres or FRAUD_APP_TEST_POSTGRES_URL): PostgreSQL skipped")
        else:
            tag = uuid.uuid4().hex[:8]
            main_schema, scratch_schema = f"bench_mon_{tag}", f"bench_mon_scratch_{tag}"
            try:
                url = _postgres_schema(args.postgres, main_schema, True)
                scratch = _postgres_schema(args.postgres, scratch_schema, True)
                result["postgres"] = _run_database("postgres", url, env, args.rows, scored, work / "logs", scratch)
            finally:
                from fraud_app.storage import dispose_engines

                dispose_engines()
                _postgres_schema(args.postgres, main_schema, False)
                _postgres_schema(args.postgres, scratch_schema, False)
    for key in ("sqlite", "postgres"):  # --only: keep the other database's figures of an earlier run
        if key not in result and key in previous:
            result[key] = previous[key]
    result["machine"]["load_avg_at_end"] = _load()
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
