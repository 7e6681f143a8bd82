"""Benchmark: hostile clients against the real server (issue #10, items 6-8).

    .venv/bin/python -m bench.bench_security [--data data/creditcard.parquet]

Everything runs on 127.0.0.1, on the real data set with a LightGBM model trained by the project's own
``TrainingPipeline`` (``bench/_server.py``: once, kept in ``output/bench/models``), a fresh SQLite file
per server, and every loop bounded by a count or a deadline.

1. **Aborted uploads (item 6).** For a server without a token and one with ``FRAUD_APP_API_TOKEN``
   (and the token login page): RSS of the server process after a warm-up, then three rounds of 40
   concurrent connections that each declare 16 MiB, send 16 MiB minus one byte and close; RSS after
   each round and 30 s after the last. Goal: within 100 MB of the start.
2. **A database lock (item 7).** Another process holds SQLite's write lock for 12 s while 6 clients
   POST (more than the 4 API worker threads) and one client polls ``/api/health`` every 100 ms:
   health latency (p50/p99/max) and what it reported, what the writers got, rows before and after.
   Goal: health < 200 ms; writes 503 with ``Retry-After`` after the busy timeout; nothing half-written.
3. **Page loads (item 8).** Single-row POST latency on one keep-alive connection for 60 s, alone and
   while 4 headless Chromium pages reload ``/app`` in a loop (each load waits until the Bokeh document
   is rendered), then while 4 plain HTTP clients GET ``/app`` in a loop (the server builds each page's
   session; no browser competes for the CPU): p50/p90/p99/max and the number of page loads.

Prints the figures and writes ``bench/results/security.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench._server import ROOT, SyncClient, _request_bytes, bench_env, ensure_model, percentile, start_app_server

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024
TOKEN = "bench-security-token-0123456789abcdef"
TOKEN_LOGIN = ["--auth-module", str(ROOT / "fraud_app" / "token_login.py")]


def _rows(data: Path, n: int) -> list[dict[str, float]]:
    import pandas as pd

    from fraud_app.data import MODEL_FEATURES, to_canonical

    frame = to_canonical(pd.read_parquet(data))
    return [{k: float(v) for k, v in rec.items()} for rec in frame[MODEL_FEATURES].head(n).to_dict(orient="records")]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _post(port: int, body: bytes, headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/predictions", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def _get_json(port: int, path: str, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


# -- 1. aborted uploads ---------------------------------------------------------------------------

def aborted_upload(port: int, token: str | None, size: int = 16 * MIB) -> str:
    """Declare ``size`` bytes, send ``size - 1``, close. Returns what happened: "sent" or "refused"."""
    head = (f"POST /api/predictions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "") + "\r\n")
    block = b" " * (256 * 1024)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(head.encode())
            left = size - 1
            while left > 0:
                left -= sock.send(block[:min(left, len(block))])
        return "sent"
    except OSError:
        return "refused"


def bench_uploads(env: dict[str, str], run_dir: Path, rows: list[dict], token: str | None) -> dict:
    env = dict(env)
    extra = list(TOKEN_LOGIN)
    headers = {}
    if token:
        env["FRAUD_APP_API_TOKEN"] = token
        headers = {"Authorization": f"Bearer {token}"}
    name = "with_token" if token else "without_token"
    env["FRAUD_APP_DATABASE_URL"] = f"sqlite:///{(run_dir / f'uploads-{name}.sqlite3').resolve()}"
    server = start_app_server(env, run_dir / f"uploads-{name}.log", extra)
    try:
        pid = server.proc.pid
        for row in rows[:20]:  # warm: model loaded, threads started
            assert _post(server.port, json.dumps(row).encode(), headers)[0] == 201
        start = rss_mb(pid)
        rounds = []
        for _ in range(3):
            with ThreadPoolExecutor(40) as pool:
                outcomes = list(pool.map(lambda _: aborted_upload(server.port, token), range(40)))
            time.sleep(1)
            rounds.append({"rss_mb": round(rss_mb(pid), 1), "sent_whole": outcomes.count("sent"),
                           "refused_early": outcomes.count("refused")})
        time.sleep(30)
        after = rss_mb(pid)
        status, _ = _post(server.port, json.dumps(rows[0]).encode(), headers)
        result = {"rss_start_mb": round(start, 1), "rounds": rounds, "rss_30s_after_mb": round(after, 1),
                  "growth_mb": round(after - start, 1), "goal_mb": 100, "post_after_status": status}
    finally:
        server.stop()
    return result


# -- 2. a database lock ---------------------------------------------------------------------------

def bench_lock(env: dict[str, str], run_dir: Path, rows: list[dict], hold_s: float = 12.0) -> dict:
    env = dict(env)
    database = (run_dir / "lock.sqlite3").resolve()
    env["FRAUD_APP_DATABASE_URL"] = f"sqlite:///{database}"
    server = start_app_server(env, run_dir / "lock.log", TOKEN_LOGIN)
    try:
        for row in rows[:10]:
            assert _post(server.port, json.dumps(row).encode())[0] == 201
        before = _get_json(server.port, "/api/predictions?limit=1")["total"]
        holder = sqlite3.connect(database, timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        locked_at = time.monotonic()
        stop = threading.Event()
        writes: list[tuple[int, float, str | None]] = []

        def writer(i: int) -> None:
            body = json.dumps({"transactions": rows[i * 10:(i + 1) * 10]}).encode()
            while not stop.is_set():
                t0 = time.perf_counter()
                status, headers = _post(server.port, body)
                writes.append((status, time.perf_counter() - t0, headers.get("Retry-After")))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        health: list[tuple[float, str, str]] = []
        while time.monotonic() - locked_at < hold_s:
            t0 = time.perf_counter()
            payload = _get_json(server.port, "/api/health")
            health.append((time.perf_counter() - t0, payload["status"], payload["database"]["status"]))
            time.sleep(0.1)
        holder.execute("ROLLBACK")
        holder.close()
        stop.set()
        for thread in threads:
            thread.join(60)
        after_release = _get_json(server.port, "/api/predictions?limit=1")["total"]
        ok_writes = sum(1 for status, _, _ in writes if status == 201)
        latencies = [h[0] for h in health]
        busy = [w for w in writes if w[0] == 503]
        result = {
            "lock_held_s": hold_s,
            "busy_timeout_s": float(env.get("FRAUD_APP_DB_BUSY_TIMEOUT", 5)),
            "health_requests": len(health),
            "health_p50_ms": round(percentile(latencies, 50) * 1e3, 1),
            "health_p99_ms": round(percentile(latencies, 99) * 1e3, 1),
            "health_max_ms": round(max(latencies) * 1e3, 1),
            "health_goal_ms": 200,
            "health_reported": {status: sum(1 for h in health if h[2] == status) for status in {h[2] for h in health}},
            "writes": {str(status): sum(1 for w in writes if w[0] == status) for status in {w[0] for w in writes}},
            "write_503_latency_max_s": round(max((w[1] for w in busy), default=0.0), 2),
            "write_503_retry_after": sorted({w[2] for w in busy}),
            "rows_before": before,
            "rows_after": after_release,
            "rows_expected_after": before + 10 * ok_writes,
        }
    finally:
        server.stop()
    return result


# -- 3. page loads --------------------------------------------------------------------------------

PAGE_LOOP_CODE = r"""
import asyncio, sys, time
from playwright.async_api import async_playwright

URL, PAGES, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

async def loop(browser, deadline, counts):
    page = await browser.new_page()
    while time.monotonic() < deadline:
        await page.goto(URL, wait_until="load", timeout=120_000)
        await page.wait_for_function(
            "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].roots().length > 0",
            timeout=120_000)
        counts.append(1)
    await page.close()

async def main():
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                          args=["--no-sandbox", "--disable-gpu"])
        counts = []
        deadline = time.monotonic() + SECONDS
        await asyncio.gather(*(loop(browser, deadline, counts) for _ in range(PAGES)))
        await browser.close()
        print(len(counts))

asyncio.run(main())
"""


def _post_latencies(port: int, raw: bytes, seconds: float) -> tuple[list[float], int]:
    client = SyncClient(port)
    latencies, bad = [], 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            status, _ = client.request(raw)
            latencies.append(time.perf_counter() - t0)
            bad += status != 201
            time.sleep(0.05)  # a steady client, not a flood: what an integration sends
    finally:
        client.close()
    return latencies, bad


def _summary(latencies: list[float]) -> dict:
    return {"requests": len(latencies), "p50_ms": round(percentile(latencies, 50) * 1e3, 1),
            "p90_ms": round(percentile(latencies, 90) * 1e3, 1), "p99_ms": round(percentile(latencies, 99) * 1e3, 1),
            "max_ms": round(max(latencies) * 1e3, 1)}


def _http_page_loops(url: str, loops: int, stop: threading.Event, counts: list[int]) -> list[threading.Thread]:
    def loop() -> None:
        while not stop.is_set():
            with urllib.request.urlopen(url, timeout=300) as resp:
                resp.read()
            counts.append(1)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(loops)]
    for thread in threads:
        thread.start()
    return threads


def bench_page_loads(env: dict[str, str], run_dir: Path, rows: list[dict], seconds: float, pages: int) -> dict:
    env = dict(env)
    env["FRAUD_APP_DATABASE_URL"] = f"sqlite:///{(run_dir / 'pages.sqlite3').resolve()}"
    server = start_app_server(env, run_dir / "pages.log", TOKEN_LOGIN)
    raw = _request_bytes("POST", "/api/predictions", json.dumps(rows[0]).encode())
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/app", timeout=120).read()  # warm caches
        _post_latencies(server.port, raw, 3)
        alone, bad_alone = _post_latencies(server.port, raw, seconds)
        loops = subprocess.Popen([sys.executable, "-c", PAGE_LOOP_CODE, f"http://127.0.0.1:{server.port}/app",
                                  str(pages), str(seconds + 5)], stdout=subprocess.PIPE, text=True)
        time.sleep(5)  # the browsers are up and loading
        loaded, bad_loaded = _post_latencies(server.port, raw, seconds)
        out, _ = loops.communicate(timeout=seconds + 300)
        page_loads = int(out.strip().splitlines()[-1]) if out.strip() else None
        # The same with plain HTTP GETs of /app: the server builds each page's session, no browser
        # competes for the CPU (separates the server's own cost from Chromium's).
        stop, counts = threading.Event(), []
        threads = _http_page_loops(f"http://127.0.0.1:{server.port}/app", pages, stop, counts)
        time.sleep(2)
        http_loaded, bad_http = _post_latencies(server.port, raw, seconds)
        stop.set()
        for thread in threads:
            thread.join(300)
    finally:
        server.stop()
    return {"seconds": seconds, "page_loops": pages, "page_loads_completed": page_loads,
            "post_alone": {**_summary(alone), "non_201": bad_alone},
            "post_under_page_loads": {**_summary(loaded), "non_201": bad_loaded},
            "http_get_app_completed": len(counts),
            "post_under_http_get_app_loops": {**_summary(http_loaded), "non_201": bad_http}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "creditcard.parquet")
    parser.add_argument("--workdir", type=Path, default=ROOT / "output" / "bench")
    parser.add_argument("--seconds", type=float, default=60, help="length of each POST latency window (part 3)")
    parser.add_argument("--pages", type=int, default=4, help="concurrent page-load loops (part 3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "security.json")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2
    run_dir = (args.workdir / f"security-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}").resolve()
    run_dir.mkdir(parents=True)
    env = bench_env(run_dir, (args.workdir / "models").resolve(), args.data.resolve().parent)
    print("training/reusing the benchmark model on the real data ...", flush=True)
    model = ensure_model(env)
    rows = _rows(args.data, 100)

    results: dict = {
        "command": "python -m bench.bench_security",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1_5_15_at_start": [round(x, 2) for x in os.getloadavg()]},
        "model": {k: model.get(k) for k in ("name", "kind", "version")},
    }
    print("1. aborted uploads (3 rounds x 40 connections x 16 MiB - 1 byte) ...", flush=True)
    results["aborted_uploads"] = {"without_token": bench_uploads(env, run_dir, rows, None),
                                  "with_token": bench_uploads(env, run_dir, rows, TOKEN)}
    for name, part in results["aborted_uploads"].items():
        print(f"   {name}: RSS {part['rss_start_mb']} MB -> "
              f"{', '.join(str(r['rss_mb']) for r in part['rounds'])} -> {part['rss_30s_after_mb']} MB 30 s later "
              f"(growth {part['growth_mb']} MB; goal < 100); accepted/refused per round "
              f"{[(r['sent_whole'], r['refused_early']) for r in part['rounds']]}", flush=True)
    print("2. SQLite write lock held 12 s by another process, 6 writers, health every 100 ms ...", flush=True)
    lock = results["database_lock"] = bench_lock(env, run_dir, rows)
    print(f"   health p50 {lock['health_p50_ms']} ms, p99 {lock['health_p99_ms']} ms, max {lock['health_max_ms']} ms "
          f"over {lock['health_requests']} requests; reported {lock['health_reported']}; writes {lock['writes']} "
          f"(503 after at most {lock['write_503_latency_max_s']} s, Retry-After {lock['write_503_retry_after']}); "
          f"rows {lock['rows_before']} -> {lock['rows_after']} (expected {lock['rows_expected_after']})", flush=True)
    print(f"3. POST latency for {args.seconds:.0f} s alone, then under {args.pages} Chromium page-load loops ...",
          flush=True)
    pages = results["page_loads"] = bench_page_loads(env, run_dir, rows, args.seconds, args.pages)
    for name in ("post_alone", "post_under_page_loads", "post_under_http_get_app_loops"):
        part = pages[name]
        print(f"   {name}: {part['requests']} POSTs, p50 {part['p50_ms']} ms, p90 {part['p90_ms']} ms, "
              f"p99 {part['p99_ms']} ms, max {part['max_ms']} ms, non-201 {part['non_201']}", flush=True)
    print(f"   Chromium page loads completed: {pages['page_loads_completed']}; "
          f"HTTP GETs of /app completed: {pages['http_get_app_completed']}", flush=True)

    results["machine"]["load_average_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
