"""Screenshots of every tab in both themes, on the real data, for the README.

    python -m bench.screenshot_tabs

Serves the app (``--warm``) with a LightGBM model saved on the real data, scores 2,000 real
transactions (all 492 frauds among them) through ``POST /api/predictions`` and labels the 40 with
the highest P(fraud) through ``PUT /api/predictions/<id>/label`` with their true class, so the
Monitoring tab has something to show. Then opens each tab in each theme by URL
(``?tab=N&theme=dark``), scores the reference transaction in the Inference tab, and writes
``assets/screenshot-<tab>-<theme>.png``. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._browser import local_page
from bench._server import ROOT, bench_env, ensure_model, start_app_server

TABS = {"eda": 0, "training": 1, "inference": 2, "monitoring": 3}
SETTLED_JS = """() => {
  let pending = 0, canvases = 0;
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.classList && el.classList.contains('fds-skeleton')) pending++;
      if (el.classList && el.classList.contains('bk-Canvas')) canvases++;
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return [pending, canvases];
}"""


def settle(page, minimum_canvases: int, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending, canvases = page.evaluate(SETTLED_JS)
        if pending == 0 and canvases >= minimum_canvases:
            break
        time.sleep(0.25)
    time.sleep(1.5)


def wait_for(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _api(base: str, path: str, body: Any, method: str) -> Any:
    request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def feed_monitoring(base: str) -> None:
    """Score real transactions through the API and label the top of the review queue with their true class."""
    import pandas as pd

    from fraud_app.data import MODEL_FEATURES
    from fraud_app.data.schema import TARGET

    frame = pd.read_parquet(ROOT / "data" / "creditcard.parquet")
    sample = pd.concat([frame[frame[TARGET] == 1], frame[frame[TARGET] == 0].sample(1508, random_state=0)])
    sample = sample.sample(frac=1.0, random_state=0)
    answers = _api(base, "/api/predictions", {"transactions": sample[MODEL_FEATURES].to_dict("records")}, "POST")
    truth = dict(zip((p["id"] for p in answers["predictions"]), sample[TARGET].tolist(), strict=True))
    top = sorted(answers["predictions"], key=lambda p: p["fraud_probability"], reverse=True)[:40]
    for prediction in top:
        label = "fraud" if truth[prediction["id"]] == 1 else "legitimate"
        _api(base, f"/api/predictions/{prediction['id']}/label", {"label": label}, "PUT")
    print(f"scored {len(truth):,} real transactions, labeled {len(top)}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-shots-"))
    env = bench_env(work / "output", work / "models", ROOT / "data")
    ensure_model(env)
    server = start_app_server(env, work / "app.log", extra=["--warm"])
    base = f"http://127.0.0.1:{server.port}"
    try:
        feed_monitoring(base)
        for theme in ("default", "dark"):
            for name, index in TABS.items():
                with local_page(base, 1400, 900) as (page, log):
                    page.goto(f"{base}/app?tab={index}&theme={theme}", timeout=120_000)
                    settle(page, {"eda": 9, "monitoring": 3}.get(name, 0))
                    if name == "training":  # the form is usable and the saved model is listed
                        train = page.get_by_role("button", name="Train", exact=True)
                        train.wait_for(timeout=120_000)
                        wait_for(train.is_enabled, "the Train button")
                        wait_for(lambda: page.locator(".saved-models .tabulator-row").count() >= 1, "saved models")
                        time.sleep(1.5)
                    if name == "inference":
                        page.get_by_role("button", name="Predict").first.click()
                        settle(page, 1)
                    out = ROOT / "assets" / f"screenshot-{name}-{'light' if theme == 'default' else 'dark'}.png"
                    page.screenshot(path=str(out), full_page=name != "eda")
                    print(f"wrote {out.relative_to(ROOT)} (console errors: {len(log.errors)})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
