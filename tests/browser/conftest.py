"""Browser harness: Playwright (Python, sync API) driving Debian's Chromium against the real server.

Fixtures for every browser test module:

- ``app_server`` (module scope): ``panel serve app.py --plugins fraud_app.api`` on a free port,
  synthetic data, its own temp home/output/log folders.
- ``browser_context`` (package scope: Playwright's sync API keeps an asyncio loop running in the main thread while it lives, which would break later non-browser tests): headless ``/usr/bin/chromium`` with a fresh profile.
- ``console`` + ``page`` (function scope): a new tab whose console errors, uncaught page
  errors and failed requests are recorded in ``console``; assert ``console.errors == []``.
- ``network``: bytes received on the wire by ``page`` (HTTP responses and WebSocket frames),
  measured through the Chrome DevTools Protocol.

Browser tests are skipped when ``/usr/bin/chromium`` is missing, unless
``FRAUD_APP_REQUIRE_BROWSER=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_ENV, ServedApp, start_app, stop_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Console messages that are not errors of the app (none so far; keep this list short and explained).
IGNORED_CONSOLE_ERRORS: tuple[str, ...] = ()


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not found (apt-get install chromium)"
    if os.environ.get("FRAUD_APP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"FRAUD_APP_REQUIRE_BROWSER=1 but {message}")
    pytest.skip(message)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/browser is marked ``browser``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def server_env(home: Path) -> dict[str, str]:
    """Environment for a module-scoped server: the test defaults and fresh temp folders.

    Any other ``FRAUD_APP_*`` variable of the calling shell is blanked (an empty value
    means "use the default"), so a developer's settings never leak into the server.
    """
    env = {name: "" for name in os.environ
           if name.startswith("FRAUD_APP_") and not name.startswith(("FRAUD_APP_TEST_", "FRAUD_APP_REQUIRE_"))}
    env.update(TEST_ENV)
    env.update({
        "FRAUD_APP_HOME": str(home),
        "FRAUD_APP_DATA_DIR": str(home / "data"),
        "FRAUD_APP_OUTPUT_DIR": str(home / "output"),
        "FRAUD_APP_LOG_DIR": str(home / "logs"),
    })
    return env


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """One real server per test module (synthetic data, temp folders)."""
    _require_chromium()
    home = tmp_path_factory.mktemp("browser-home")
    # --warm, as ``make run`` serves it: the data set, the EDA summary and charts are ready at start.
    app = start_app(server_env(home), extra_args=["--warm"], log_path=home / "server.log")
    try:
        yield app
    finally:
        stop_app(app)


@pytest.fixture(scope="package")
def browser_context() -> Iterator[Any]:
    """Headless Chromium with a fresh, throw-away profile (``--user-data-dir``)."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="fraud-app-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@dataclass
class ConsoleCapture:
    """Console errors, uncaught page errors and failed requests of one page."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}\n{exc.stack or ''}"[:2000]))
        page.on("requestfailed", lambda request: self.errors.append(
            f"request failed: {request.url} ({request.failure})"))

    def _on_console(self, message: Any) -> None:
        text = f"console.{message.type}: {message.text}"
        if message.type == "error" and not any(pattern in message.text for pattern in IGNORED_CONSOLE_ERRORS):
            self.errors.append(text)
        elif message.type == "warning":
            self.warnings.append(text)


@pytest.fixture
def console() -> ConsoleCapture:
    return ConsoleCapture()


@pytest.fixture
def page(browser_context: Any, console: ConsoleCapture) -> Iterator[Any]:
    """A new tab, its console recorded in the ``console`` fixture."""
    tab = browser_context.new_page()
    console.attach(tab)
    try:
        yield tab
    finally:
        tab.close()


@dataclass
class NetworkMeter:
    """Bytes a page received on the wire: HTTP (encoded, with headers) and WebSocket frames."""

    http_bytes: int = 0
    websocket_bytes: int = 0
    responses: list[tuple[str, int]] = field(default_factory=list)
    _urls: dict[str, str] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return self.http_bytes + self.websocket_bytes

    def attach(self, cdp: Any) -> None:
        cdp.send("Network.enable")
        cdp.on("Network.responseReceived", lambda e: self._urls.__setitem__(e["requestId"], e["response"]["url"]))
        cdp.on("Network.loadingFinished", self._on_finished)
        cdp.on("Network.webSocketFrameReceived", self._on_frame)

    def _on_finished(self, event: dict) -> None:
        size = int(event["encodedDataLength"])
        self.http_bytes += size
        self.responses.append((self._urls.get(event["requestId"], "?"), size))

    def _on_frame(self, event: dict) -> None:
        response = event["response"]
        payload = response.get("payloadData", "")
        # Binary frames (opcode 2) arrive base64-encoded in the protocol: count the decoded bytes.
        size = len(base64.b64decode(payload)) if response.get("opcode") == 2 else len(payload.encode())
        self.websocket_bytes += size


@pytest.fixture
def network(page: Any, browser_context: Any) -> NetworkMeter:
    """Start measuring ``page``'s traffic (attach before navigating)."""
    meter = NetworkMeter()
    meter.attach(browser_context.new_cdp_session(page))
    return meter


def wait_until(condition: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25,
               message: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


#: JavaScript: the text of every Bokeh ``Title`` model in the page's documents.
PLOT_TITLES_JS = """() => {
  const out = [];
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    for (const model of doc.all_models) {
      if (model.constructor.__name__ === 'Title' && model.text) out.push(model.text);
    }
  }
  return out;
}"""


def plot_titles(page: Any) -> list[str]:
    """Titles of the Bokeh plots currently in the page."""
    return page.evaluate(PLOT_TITLES_JS)


def open_app(page: Any, server: ServedApp, timeout: float = 90.0) -> None:
    """Load the app page and wait until its tabs are on screen."""
    page.goto(f"{server.url}/app", timeout=timeout * 1000)
    page.locator(".bk-tab").first.wait_for(timeout=timeout * 1000)


def tab_labels(page: Any) -> list[str]:
    return [text.strip() for text in page.locator(".bk-tab").all_inner_texts()]


def click_tab(page: Any, title: str) -> None:
    """Open the tab whose label contains ``title``."""
    page.locator(".bk-tab", has_text=title).first.click()
