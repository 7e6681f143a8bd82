"""Screenshot of the Training tab after two runs on the REAL data set, driven through the real UI.

    .venv/bin/python -m bench.screenshot_training [--out assets/screenshot-training.png]

Steps (nothing is faked, nothing is trained outside the UI):

1. starts the real server (``panel serve app.py --plugins fraud_app.api``) on the real data set
   (``data/creditcard.parquet``) with a fresh temporary output folder and database;
2. in headless Chromium, on the Training tab: trains the baseline decision tree (default name,
   saved), then LightGBM with its default hyper-parameters (saved), each by clicking Train and
   waiting for "Done"; from the click on Train until LightGBM's "Done" shows, ``GET /api/health``
   is timed every 0.25 s (so the figures include publishing the result);
3. saves a full-page screenshot (metrics, confusion matrix, PR curve, threshold card, runs
   table with both runs, saved models);
4. prints and writes ``bench/results/screenshot_training.json``: the figures shown in the page
   (read back from the page and from ``GET /api/models``), the training times, the health
   latencies measured during training, console errors and blocked requests.

The browser refuses every request that is not to the local server (the page must not need
the network). The temporary folder and the server are removed/stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench._browser import local_page

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
#: Generous: on a shared 2-core machine the first page load and a real-data fit take a while.
TIMEOUT_MS = int(os.environ.get("SCREENSHOT_TIMEOUT_S", "900")) * 1000


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(home: Path, data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRAUD_APP_")}
    env.update({
        "FRAUD_APP_HOME": str(home),
        "FRAUD_APP_DATASET": "real",
        "FRAUD_APP_DATA_DIR": str(data_dir),
        "FRAUD_APP_OUTPUT_DIR": str(home / "output"),
        "FRAUD_APP_LOG_DIR": str(home / "logs"),
        "FRAUD_APP_LOG_LEVEL": "INFO",
    })
    return env


def _start_server(env: dict[str, str], home: Path) -> tuple[subprocess.Popen, str]:
    port = _port()
    url = f"http://127.0.0.1:{port}"
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--plugins", "fraud_app.api",
             "--port", str(port), "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {home / 'server.log'}")
        try:
            urllib.request.urlopen(f"{url}/api/health", timeout=5).close()
            return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}/api/health did not answer within 300 s") from None
            time.sleep(0.3)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


class HealthProbe:
    """Times ``GET /api/health`` every ``interval`` seconds on a thread until stopped."""

    def __init__(self, url: str, interval: float = 0.25) -> None:
        self.url, self.interval = f"{url}/api/health", interval
        self.latencies_ms: list[float] = []
        #: (seconds since start, latency in ms) of every request.
        self.samples: list[tuple[float, float]] = []
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            urllib.request.urlopen(self.url, timeout=30).read()
            latency = (time.perf_counter() - started) * 1000
            self.latencies_ms.append(latency)
            self.samples.append((round(started - self._started, 2), round(latency, 1)))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._started = time.perf_counter()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def summary(self) -> dict[str, float | int]:
        values = sorted(self.latencies_ms)
        if not values:
            return {"requests": 0}
        return {"requests": len(values), "median_ms": round(statistics.median(values), 1),
                "p95_ms": round(values[min(len(values) - 1, int(0.95 * len(values)))], 1),
                "max_ms": round(values[-1], 1)}


#: JavaScript: the visible text of a Panel component (its shadow root, without the stylesheets).
_TEXT_JS = """(el) => {
  const root = el.shadowRoot || el;
  return Array.from(root.children).filter((c) => !['STYLE', 'LINK'].includes(c.tagName))
    .map((c) => c.innerText).join(' ').trim();
}"""


def _text(locator: Any) -> str:
    return locator.evaluate(_TEXT_JS)


def _train_in_ui(page: Any, kind: str, kind_label: str, probe: HealthProbe | None = None) -> tuple[str, float]:
    """Choose ``kind_label``, keep the suggested name, click Train, wait for Done; return (name, seconds).

    ``probe`` (if given) times ``/api/health`` from the click until "Done" shows.
    """
    page.locator(".training-kind select").select_option(label=kind_label)
    name_box = page.locator(".training-name input")
    # The server suggests "<kind>_<n>" for the new kind: wait for it before reading the name.
    page.wait_for_function("([el, kind]) => el.value.startsWith(kind + '_')",
                           arg=[name_box.element_handle(), kind], timeout=TIMEOUT_MS)
    name = name_box.input_value()
    status = page.locator(".training-status")
    train = page.get_by_role("button", name="Train", exact=True)
    train.wait_for(timeout=TIMEOUT_MS)
    started = time.perf_counter()
    train.click(timeout=TIMEOUT_MS)
    if probe is not None:
        probe.start()
    try:
        # The status names the model once this run is done (an earlier run's "Done" names another).
        status.filter(has_text=re.compile(rf"Done.*saved as {re.escape(name)}\b")).wait_for(timeout=TIMEOUT_MS)
    finally:
        if probe is not None:
            probe.stop()
    return name, time.perf_counter() - started


def _shoot(url: str, out: Path, width: int, height: int) -> dict[str, Any]:
    with local_page(url, width, height) as (page, log):
        started = time.perf_counter()
        page.goto(f"{url}/app", timeout=TIMEOUT_MS)
        page.locator(".bk-tab", has_text="Training").first.click(timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Train", exact=True).wait_for(timeout=TIMEOUT_MS)
        tab_seconds = time.perf_counter() - started

        try:
            baseline, baseline_s = _train_in_ui(page, "decision_tree", "Decision tree (baseline)")
            print(f"  trained {baseline} from the UI in {baseline_s:.1f} s", flush=True)
            probe = HealthProbe(url)
            lightgbm, lightgbm_s = _train_in_ui(page, "lightgbm", "LightGBM", probe)
            print(f"  trained {lightgbm} from the UI in {lightgbm_s:.1f} s", flush=True)
        except Exception:
            failed = out.with_name(out.stem + "-failed.png")
            page.screenshot(path=str(failed), full_page=True)
            print(f"failed; the page is in {failed}", file=sys.stderr)
            raise
        page.locator(".training-runs .tabulator-row").nth(1).wait_for(timeout=TIMEOUT_MS)
        page.mouse.move(0, 0)  # no hover tooltip in the picture
        page.wait_for_timeout(2500)  # let the plots and tables settle
        shown = {key: _text(page.locator(f".metric-{key}")) for key in ("f1", "precision", "recall",
                                                                         "pr_auc", "roc_auc")}
        status = _text(page.locator(".training-status"))
        page.screenshot(path=str(out), full_page=True)
        return {
            "errors": log.errors, "blocked_requests": sorted(set(log.blocked)),
            "tab_ready_seconds": round(tab_seconds, 1),
            "runs": [{"name": baseline, "kind": "decision_tree", "ui_seconds": round(baseline_s, 1)},
                     {"name": lightgbm, "kind": "lightgbm", "ui_seconds": round(lightgbm_s, 1)}],
            "health_during_lightgbm_training": probe.summary(),
            "health_samples_s_ms": probe.samples,
            "indicators_text": shown, "status_text": status,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "creditcard.parquet",
                        help="the real data set (Parquet)")
    parser.add_argument("--width", type=int, default=1400, help="browser viewport width")
    parser.add_argument("--height", type=int, default=1400, help="browser viewport height (full page is saved)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshot-training.png")
    parser.add_argument("--json", type=Path, default=RESULTS / "screenshot_training.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (server log, database)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="fraud-app-training-shot-"))
    proc: subprocess.Popen | None = None
    try:
        proc, url = _start_server(_server_env(home, args.data.resolve().parent), home)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shot = _shoot(url, args.out, args.width, args.height)
        models = {m["name"]: m for m in _get_json(f"{url}/api/models")["models"]}
        for run in shot["runs"]:
            meta = models[run["name"]]
            run["test_metrics"] = {k: meta["metrics"].get(k) for k in
                                   ("f1", "precision", "recall", "pr_auc", "roc_auc", "threshold",
                                    "confusion_matrix", "n_test", "n_test_fraud")}
        # How long each result took to publish on the session's event loop (the server logs it).
        server_log = (home / "server.log").read_text(errors="replace")
        publish_ms = [float(ms) for ms in re.findall(r"published the \w+ result in (\d+) ms", server_log)]
        result = {
            "command": "python -m bench.screenshot_training",
            "publish_on_event_loop_ms": publish_ms,
            "screenshot": str(args.out.relative_to(ROOT)) if args.out.is_relative_to(ROOT) else str(args.out),
            "data": str(args.data), "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            **shot,
        }
        for run in result["runs"]:
            m = run["test_metrics"]
            print(f"{run['kind']:>14} {run['name']}: {run['ui_seconds']:.1f} s from click to Done; test F1 "
                  f"{m['f1']:.3f}, precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
                  f"PR-AUC {m['pr_auc']:.3f}, ROC-AUC {m['roc_auc']:.3f}, threshold {m['threshold']:.4f}")
        health = result["health_during_lightgbm_training"]
        print(f"GET /api/health from the click on Train to 'Done' (LightGBM): {health}")
        print(f"publishing each result on the session's event loop took {publish_ms} ms")
        print(f"console errors: {len(result['errors'])}, blocked requests: {len(result['blocked_requests'])}")
        print(f"screenshot: {args.out}")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 1 if result["errors"] else 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
