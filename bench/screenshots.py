"""Screenshot of the EDA tab and its payload, on the REAL data set.

    .venv/bin/python -m bench.screenshots [--data-dir data] [--out assets/screenshot-eda.png]

1. starts the real server (``panel serve app.py --plugins fraud_app.api``) on the real data
   set (``<data-dir>/creditcard.parquet``) with a fresh temporary output folder;
2. opens the page in headless Chromium (a fresh profile; requests to anything but the local
   server are refused, so the page must not need the network), waits until every EDA chart is
   drawn, and saves a full-page screenshot;
3. measures what the first page and the EDA tab cost on the wire (HTTP bytes as encoded, plus
   WebSocket frames) through the Chrome DevTools Protocol, and the time until every chart is
   drawn, for a first (cold server) and a second session;
4. writes ``bench/results/screenshots.json`` and prints the figures.

The server and the temporary folder are removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAYLOAD_BUDGET = 5_000_000
#: Every EDA chart's title contains one of these.
EDA_CHARTS = ["Transactions per class", "Distribution of ", "Correlations: ", "Class separation: ",
              "Amount by class", "Fraud rate by amount bucket", "Transactions by hour",
              "Fraud rate by hour", " against "]
TITLES_JS = """() => {
  const out = [];
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    for (const model of doc.all_models) {
      if (model.constructor.__name__ === 'Title' && model.text) out.push(model.text);
    }
  }
  return out;
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(home: Path, data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_APP_")}
    env.update({
        "FRAUD_APP_HOME": str(home), "FRAUD_APP_DATASET": "real", "FRAUD_APP_DATA_DIR": str(data_dir),
        "FRAUD_APP_OUTPUT_DIR": str(home / "output"), "FRAUD_APP_LOG_DIR": str(home / "logs"),
        "FRAUD_APP_LOG_LEVEL": "WARNING",
    })
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--plugins", "fraud_app.api",
           "--port", str(port), "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}"]
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(home / 'server.log').read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2).close()
            return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.5)
    proc.terminate()
    raise TimeoutError("the server did not answer within 120 s")


def _session(context: Any, url: str, screenshot: Path | None) -> dict:
    """Open the app in a new tab, wait for every EDA chart; return payload and timings."""
    page = context.new_page()
    sizes = {"http": 0, "ws": 0}
    errors: list[str] = []
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__("http", sizes["http"] + int(e["encodedDataLength"])))

    def on_frame(event: dict) -> None:
        response = event["response"]
        payload = response.get("payloadData", "")
        size = len(base64.b64decode(payload)) if response.get("opcode") == 2 else len(payload.encode())
        sizes["ws"] += size

    cdp.on("Network.webSocketFrameReceived", on_frame)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    started = time.perf_counter()
    page.goto(url, timeout=120_000)
    deadline = time.monotonic() + 240
    while True:
        titles = page.evaluate(TITLES_JS)
        if all(any(chart in t for t in titles) for chart in EDA_CHARTS):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the EDA charts did not all render; titles: {titles}")
        time.sleep(0.25)
    rendered_s = time.perf_counter() - started
    page.wait_for_timeout(2000)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True, timeout=120_000)
    page.close()
    return {"rendered_s": round(rendered_s, 2), "http_bytes": sizes["http"], "websocket_bytes": sizes["ws"],
            "total_bytes": sizes["http"] + sizes["ws"], "console_errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="folder holding creditcard.parquet")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshot-eda.png")
    parser.add_argument("--json", type=Path, default=RESULTS / "screenshots.json")
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    if not (data_dir / "creditcard.parquet").exists():
        print(f"{data_dir / 'creditcard.parquet'} not found; run `python -m fraud_app data fetch`", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="fraud-app-shots-"))
    port = _free_port()
    proc = _start_server(home, data_dir, port)
    url = f"http://127.0.0.1:{port}/app"
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(home / "chromium"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 900})
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(f"http://127.0.0.1:{port}") or
                          route.request.url.startswith(("data:", "blob:")) else route.abort())
            first = _session(context, url, args.out)
            second = _session(context, url, None)
            context.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log = (home / "server.log").read_text(errors="replace")
        shutil.rmtree(home, ignore_errors=True)

    result = {
        "benchmark": "screenshots",
        "data": str(data_dir / "creditcard.parquet"),
        "screenshot": str(args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out),
        "first_session": first,
        "second_session": second,
        "payload_budget_bytes": PAYLOAD_BUDGET,
        "within_budget": max(first["total_bytes"], second["total_bytes"]) <= PAYLOAD_BUDGET,
        "server_errors": [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line],
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        # The machine is shared: the load average says how busy it was while measuring.
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name, session in (("first session (cold server)", first), ("second session (warm server)", second)):
        print(f"{name}: every EDA chart drawn after {session['rendered_s']:.1f} s; payload "
              f"{session['total_bytes'] / 1e6:.2f} MB (HTTP {session['http_bytes'] / 1e6:.2f} MB, "
              f"WebSocket {session['websocket_bytes'] / 1e6:.2f} MB); console errors: {len(session['console_errors'])}")
    print(f"load average (1, 5, 15 min) before: {result['load_average_before']}, "
          f"after: {result['load_average_after']} on {os.cpu_count()} CPU(s)")
    print(f"screenshot: {args.out}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    ok = result["within_budget"] and not first["console_errors"] and not second["console_errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
