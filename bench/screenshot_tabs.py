"""Screenshots of every tab in both themes, on the real data, for the README.

    python -m bench.screenshot_tabs

Serves the app (``--warm``) with a LightGBM model saved on the real data, opens each tab
in each theme by URL (``?tab=N&theme=dark``), scores the reference transaction in the
Inference tab, and writes ``assets/screenshot-<tab>-<theme>.png``. Only 127.0.0.1 is
contacted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench._browser import local_page
from bench._server import ROOT, bench_env, ensure_model, start_app_server

TABS = {"eda": 0, "training": 1, "inference": 2}
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


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-shots-"))
    env = bench_env(work / "output", work / "models", ROOT / "data")
    ensure_model(env)
    server = start_app_server(env, work / "app.log", extra=["--warm"])
    base = f"http://127.0.0.1:{server.port}"
    try:
        for theme in ("default", "dark"):
            for name, index in TABS.items():
                with local_page(base, 1400, 900) as (page, log):
                    page.goto(f"{base}/app?tab={index}&theme={theme}", timeout=120_000)
                    settle(page, 9 if name == "eda" else 0)
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
