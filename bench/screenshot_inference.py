"""Screenshot of the Inference tab after a prediction, on the REAL data set with a real saved model.

    .venv/bin/python -m bench.screenshot_inference [--kind lightgbm] [--out assets/screenshot-inference.png]

Steps (nothing is faked):

1. trains a model of ``--kind`` on the real data set (``data/creditcard.parquet``) with the
   project's own ``TrainingPipeline`` (stratified 80/20 split, seed 0) and saves it as
   ``--name`` into a fresh temporary output folder;
2. starts the real server (``panel serve app.py --plugins fraud_app.api``) on that folder;
3. in headless Chromium: opens the Inference tab, loads a random real fraud from the data
   set ("Random real fraud"), presses Predict, waits for the verdict and the contributions
   chart, and saves a screenshot of the page. If the model clears the fraud, it loads another
   one, up to ``--tries`` times (every attempt is a real prediction, saved and counted in the
   JSON), so the picture shows the Fraudulent styling when the model can produce it;
4. writes ``bench/results/screenshot_inference.json``: the model's test metrics, the slider
   ranges and reference values on the real data, the prediction shown (as stored in the
   database), the attempts and the timings.

Requests to anything but the local server are refused by the browser (the page must not need
the network). The temporary folder and the server are removed/stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._browser import local_page
from bench._server import wait_http

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_APP_")}
    env.update({
        "FRAUD_APP_HOME": str(home),
        "FRAUD_APP_DATASET": "real",
        "FRAUD_APP_DATA_DIR": str(data_dir),
        "FRAUD_APP_OUTPUT_DIR": str(home / "output"),
        "FRAUD_APP_LOG_DIR": str(home / "logs"),
        "FRAUD_APP_LOG_LEVEL": "WARNING",
    })
    return env


_TRAIN = """
import json, sys, time
from fraud_app.data import load_transactions
from fraud_app.inference.reference import slider_ranges
from fraud_app.training import TrainingPipeline
started = time.perf_counter()
result = TrainingPipeline(sys.argv[1], name=sys.argv[2], save=True, seed=0).run(load_transactions())
out = {k: result.metrics[k] for k in ("f1", "precision", "recall", "pr_auc", "roc_auc", "threshold")}
out.update(kind=result.kind, name=result.name, seconds=round(time.perf_counter() - started, 2),
           n_test=result.metrics.get("n_test"), n_test_fraud=result.metrics.get("n_test_fraud"))
ranges = {c: {"start": r.start, "end": r.end, "step": r.step, "reference": r.reference}
          for c, r in slider_ranges().items()}
json.dump({"model": out, "slider_ranges": ranges}, sys.stdout)
"""


def _train(env: dict[str, str], kind: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and save the model on the real data (in a subprocess); its test metrics and the slider ranges."""
    done = subprocess.run([sys.executable, "-c", _TRAIN, kind, name], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=1800)
    out = json.loads(done.stdout)
    return out["model"], out["slider_ranges"]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _shoot(url: str, out: Path, tries: int, width: int, height: int) -> dict[str, Any]:
    with local_page(url, width, height) as (page, log):
        started = time.perf_counter()
        page.goto(f"{url}/app", timeout=300_000)
        page.locator(".bk-tab", has_text="Inference").first.click(timeout=300_000)
        predict = page.locator(".predict-button button")
        predict.wait_for(timeout=300_000)
        page.get_by_text("the reference transaction (median of the clear transactions)").wait_for(timeout=300_000)
        tab_seconds = time.perf_counter() - started
        attempts = []
        for _ in range(tries):
            origin = page.get_by_text("Inputs:").first
            before = origin.inner_text()
            page.locator("button", has_text="Random real fraud").click()
            _wait_change(lambda: origin.inner_text(), before, "a new real fraud in the inputs")
            previous = page.locator(".verdict .sub").all_inner_texts()
            predict.click()
            _wait_change(lambda: page.locator(".verdict .sub").all_inner_texts() or previous, previous,
                         "a new verdict after pressing Predict")
            text = page.locator(".verdict").first.inner_text()
            attempts.append(text.split()[0])
            if text.startswith("Fraudulent"):
                break
        page.mouse.move(5, 5)  # no hover tooltip in the picture
        page.wait_for_timeout(2500)  # let the chart and the table settle
        shown = page.locator(".verdict").first.inner_text()
        page.screenshot(path=str(out), full_page=True)
        return {"errors": log.errors, "blocked_requests": sorted(set(log.blocked)), "attempts": attempts,
                "verdict_text": shown, "tab_ready_seconds": round(tab_seconds, 1)}


def _wait_change(read: Any, before: Any, what: str, timeout: float = 120.0) -> None:
    """Poll ``read()`` until it differs from ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read() != before:
            return
        time.sleep(0.25)
    raise TimeoutError(f"timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "creditcard.parquet",
                        help="the real data set (Parquet)")
    parser.add_argument("--kind", default="lightgbm", help="the model kind to train and save")
    parser.add_argument("--name", default="lightgbm_real", help="the saved model's name")
    parser.add_argument("--tries", type=int, default=5, help="most random real frauds to score")
    parser.add_argument("--width", type=int, default=1400, help="browser viewport width")
    parser.add_argument("--height", type=int, default=1900, help="browser viewport height (the page scrolls inside)")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshot-inference.png")
    parser.add_argument("--json", type=Path, default=RESULTS / "screenshot_inference.json")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="fraud-app-screenshot-"))
    env = _env(home, args.data.resolve().parent)
    proc: subprocess.Popen | None = None
    try:
        print(f"training {args.kind} on {args.data} ...", flush=True)
        model, ranges = _train(env, args.kind, args.name)
        print(f"  {model['kind']} saved as {model['name']} in {model['seconds']} s: test F1 {model['f1']:.3f}, "
              f"precision {model['precision']:.3f}, recall {model['recall']:.3f}, PR-AUC {model['pr_auc']:.3f}, "
              f"threshold {model['threshold']:.4f}", flush=True)
        for column, bounds in ranges.items():
            print(f"  slider {column}: {bounds['start']:g} .. {bounds['end']:g} (step {bounds['step']:g}), "
                  f"reference {bounds['reference']:.6g}", flush=True)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(home / "server.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--plugins", "fraud_app.api",
             "--port", str(port), "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_http(f"{url}/api/health", proc)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shot = _shoot(url, args.out, args.tries, args.width, args.height)
        saved = _get_json(f"{url}/api/predictions?limit=1")["predictions"][0]
        result = {
            "model": model,
            "slider_ranges": ranges,
            "prediction_shown": {k: saved[k] for k in ("id", "model", "fraud_probability", "threshold", "is_fraud",
                                                       "source")},
            "attempts": shot["attempts"],
            "tab_ready_seconds": shot["tab_ready_seconds"],
            "console_errors": shot["errors"],
            "blocked_requests": shot["blocked_requests"],
            "screenshot": str(args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        }
        print(f"prediction #{saved['id']}: P(fraud) {saved['fraud_probability']:.4f} vs threshold "
              f"{saved['threshold']:.4f} -> {'Fraudulent' if saved['is_fraud'] else 'Clear'} "
              f"(attempts: {', '.join(shot['attempts'])})")
        print(f"console errors: {len(shot['errors'])}; blocked external requests: {len(shot['blocked_requests'])}")
        print(f"screenshot: {args.out}")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if not shot["errors"] else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
