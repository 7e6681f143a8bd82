"""Page speed in a real browser: the app against a plain Panel page, on the real data.

    python -m bench.bench_page [--rounds 5] [--reload-seconds 30] [--sessions 30]

Serves ``bench/reference_page.py`` (three dynamic tabs; a 10-row Tabulator, four
hvplot charts and a Markdown card) and the app (``--warm``, as ``make run`` serves it)
side by side on 127.0.0.1, drives Debian's Chromium through Playwright (a new browser
context, so a cold cache, for every page load) and reports:

- warm sessions: time to the first chart and to every chart drawn, app ÷ reference;
- the app's first session after ``/api/health`` answers, EDA settled, ÷ reference warm;
- first visit to the Training and Inference tabs: controls usable after the click;
- the event-loop time to build a session (the app logs it at DEBUG) and the longest
  EDA card tick;
- ``/api/health`` latency while 4 pages reload ``/app`` in a loop;
- RSS per open session, and RSS after 30 sessions opened and closed, +60 s.

Results go to ``bench/results/page.json``. Every loop is bounded in count and time,
and only loopback addresses are contacted.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._browser import CHROMIUM
from bench._server import (
    ROOT,
    Server,
    SyncClient,
    _request_bytes,
    bench_env,
    ensure_model,
    free_port,
    percentile,
    start_app_server,
    wait_http,
)

RESULTS = ROOT / "bench" / "results" / "page.json"
APP_CHARTS = 9          # the EDA tab's charts
REFERENCE_CHARTS = 4
PAGE_TIMEOUT = 90.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_reference(env: dict[str, str], log_path: Path) -> Server:
    import subprocess
    import sys

    port = free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "bench" / "reference_page.py"), "--warm",
           "--port", str(port), "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}"]
    log = open(log_path, "ab")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = Server(proc, port, log_path)
    wait_http(f"http://127.0.0.1:{port}/reference_page", proc, timeout=300)
    return server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def canvases(page: Any) -> int:
    return page.locator(".bk-Canvas").count()


def placeholders(page: Any) -> int:
    return page.locator(".fds-skeleton").count()


def time_page(browser: Any, url: str, charts: int, app: bool) -> dict[str, float]:
    """Open ``url`` in a fresh context; seconds to the first chart and to every chart drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        started = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT * 1000)
        first = None
        deadline = started + PAGE_TIMEOUT
        while time.perf_counter() < deadline:
            n = canvases(page)
            now = time.perf_counter() - started
            if n >= 1 and first is None:
                first = now
            if n >= charts and (not app or placeholders(page) == 0):
                return {"first_chart": first, "all_charts": now}
            time.sleep(0.02)
        raise TimeoutError(f"{url}: not every chart was drawn in {PAGE_TIMEOUT:.0f} s")
    finally:
        context.close()


def time_tab(browser: Any, url: str, tab: str, ready_js: str) -> float:
    """Open the app, wait for the EDA, click ``tab``; seconds until ``ready_js`` is true."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(url, timeout=PAGE_TIMEOUT * 1000)
        deadline = time.perf_counter() + PAGE_TIMEOUT
        while canvases(page) < APP_CHARTS and time.perf_counter() < deadline:
            time.sleep(0.05)
        started = time.perf_counter()
        page.locator(".bk-tab", has_text=tab).click()
        page.wait_for_function(ready_js, timeout=PAGE_TIMEOUT * 1000, polling=20)
        return time.perf_counter() - started
    finally:
        context.close()


#: A button whose label matches, visible and enabled: the tab's main action can be used.
_BUTTON_READY = """() => {{
  const seen = new Set();
  const walk = (root) => {{
    for (const el of root.querySelectorAll('*')) {{
      if (el.shadowRoot && !seen.has(el.shadowRoot)) {{ seen.add(el.shadowRoot); const b = walk(el.shadowRoot); if (b) return b; }}
      if (el.tagName === 'BUTTON' && /{label}/.test(el.textContent) && !el.disabled && el.offsetParent !== null) return el;
    }}
    return null;
  }};
  return walk(document) !== null;
}}"""


def health_under_reloads(browser: Any, url: str, port: int, seconds: float) -> dict[str, Any]:
    """``/api/health`` latencies while 4 pages reload ``url`` in a loop (each as soon as it settled)."""
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        client = SyncClient(port)
        raw = _request_bytes("GET", "/api/health", b"")
        try:
            while not stop.is_set() and len(latencies) < 100_000:
                started = time.perf_counter()
                status, _ = client.request(raw)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"/api/health answered {status}")
                time.sleep(0.02)
        finally:
            client.close()

    contexts = [browser.new_context(viewport={"width": 1400, "height": 900}) for _ in range(4)]
    pages = [c.new_page() for c in contexts]
    thread = threading.Thread(target=poll, daemon=True)
    loads = 0
    try:
        started_at = [time.perf_counter()] * 4
        for page in pages:
            page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT * 1000)
        thread.start()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for i, page in enumerate(pages):
                settled = canvases(page) >= APP_CHARTS and placeholders(page) == 0
                if settled or time.perf_counter() - started_at[i] > 30:
                    loads += 1
                    started_at[i] = time.perf_counter()
                    page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT * 1000)
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
        for c in contexts:
            c.close()
    ms = [1000 * v for v in latencies]
    return {"page_loads": loads, "requests": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms)}


def rss_per_session(browser: Any, url: str, pid: int, sessions: int, open_at_once: int = 10) -> dict[str, float]:
    """RSS growth per open session, and RSS after ``sessions`` sessions opened and closed, +60 s."""
    # The first session: its RSS is the reference the last figure is compared with.
    time_page(browser, url, APP_CHARTS, app=True)
    time.sleep(3)
    first = rss_mb(pid)
    contexts = []
    for _ in range(open_at_once):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(url, timeout=PAGE_TIMEOUT * 1000)
        contexts.append((context, page))
    deadline = time.perf_counter() + PAGE_TIMEOUT
    while time.perf_counter() < deadline and not all(canvases(p) >= APP_CHARTS for _, p in contexts):
        time.sleep(0.1)
    time.sleep(2)
    with_open = rss_mb(pid)
    for context, _ in contexts:
        context.close()
    for _ in range(sessions - open_at_once):
        time_page(browser, url, APP_CHARTS, app=True)
    time.sleep(60)
    after = rss_mb(pid)
    return {"rss_first_session_mb": first, "rss_with_open_sessions_mb": with_open,
            "open_sessions": open_at_once, "growth_per_open_session_mb": (with_open - first) / open_at_once,
            "sessions_opened_and_closed": sessions, "rss_after_plus_60s_mb": after,
            "after_vs_first": after / first}


def session_log_figures(log_path: Path) -> dict[str, float]:
    text = log_path.read_text(errors="replace")
    built = [float(m) for m in re.findall(r"session built in ([\d.]+) ms", text)]
    ticks = [float(m) for m in re.findall(r"EDA: \w+ added in ([\d.]+) ms", text)]
    sections = {name: float(ms) for name, ms in re.findall(r"section '([^']+)' built in ([\d.]+) ms", text)}
    # The first build is the --warm one, at start, before the server answers.
    served = built[1:] if len(built) > 1 else built
    return {"sessions_logged": len(served), "session_build_median_ms": statistics.median(served),
            "session_build_max_ms": max(served), "eda_card_tick_max_ms": max(ticks) if ticks else float("nan"),
            "section_build_last_ms": sections}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="warm page loads of each page")
    parser.add_argument("--reload-seconds", type=float, default=30.0)
    parser.add_argument("--sessions", type=int, default=30)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-page-"))
    env = bench_env(work / "output", work / "models", ROOT / "data")
    env["FRAUD_APP_LOG_LEVEL"] = "DEBUG"
    model = ensure_model(env)
    print(f"model: {model['name']} ({model['kind']})")
    reference = start_reference(env, work / "reference.log")
    app_log = work / "app.log"
    started = time.perf_counter()
    app = start_app_server(env, app_log, extra=["--warm"])
    startup = time.perf_counter() - started
    results: dict[str, Any] = {"server_start_to_health_s": startup, "command": "python -m bench.bench_page",
                               "complete": False}

    def save() -> None:
        """Write what is measured so far (a phase that hangs still leaves the others on disk)."""
        import os

        results["load_average"] = os.getloadavg()
        RESULTS.write_text(json.dumps(results, indent=1, default=float) + "\n")

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            app_url = f"http://127.0.0.1:{app.port}/app"
            ref_url = f"http://127.0.0.1:{reference.port}/reference_page"
            first = time_page(browser, app_url, APP_CHARTS, app=True)
            print(f"app, first session after /api/health: {first}")
            ref = [time_page(browser, ref_url, REFERENCE_CHARTS, app=False) for _ in range(args.rounds)]
            warm = [time_page(browser, app_url, APP_CHARTS, app=True) for _ in range(args.rounds)]
            med = {key: {"app": statistics.median(r[key] for r in warm),
                         "reference": statistics.median(r[key] for r in ref)} for key in ("first_chart", "all_charts")}
            results.update({
                "reference_runs": ref, "app_runs": warm, "app_first_session": first, "medians_s": med,
                "ratio_first_chart": med["first_chart"]["app"] / med["first_chart"]["reference"],
                "ratio_all_charts": med["all_charts"]["app"] / med["all_charts"]["reference"],
                "ratio_first_session_settled": first["all_charts"] / med["all_charts"]["reference"],
            })
            print(json.dumps({k: results[k] for k in ("medians_s", "ratio_first_chart", "ratio_all_charts",
                                                     "ratio_first_session_settled")}, indent=1))
            save()
            results["training_tab_usable_s"] = time_tab(browser, app_url, "Training",
                                                        _BUTTON_READY.format(label="Train"))
            results["inference_tab_usable_s"] = time_tab(browser, app_url, "Inference",
                                                         _BUTTON_READY.format(label="Predict"))
            print(f"tabs usable after the click: Training {results['training_tab_usable_s']:.2f} s, "
                  f"Inference {results['inference_tab_usable_s']:.2f} s")
            save()
            results["health_under_reloads"] = health_under_reloads(browser, app_url, app.port, args.reload_seconds)
            print(f"/api/health while 4 pages reload: {results['health_under_reloads']}")
            results["session_log"] = session_log_figures(app_log)
            save()
            results["rss"] = rss_per_session(browser, app_url, app.proc.pid, args.sessions)
            print(f"RSS: {results['rss']}")
            browser.close()
        results["session_log"] = session_log_figures(app_log)
        print(f"server log: {results['session_log']}")
        results["complete"] = True
    finally:
        app.stop()
        reference.stop()
        save()
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
