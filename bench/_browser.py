"""Headless Chromium for the screenshot scripts: one page that may only talk to the local server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = "/usr/bin/chromium"


@dataclass
class PageLog:
    """What a page reported: console/page errors and the requests refused because they left the server."""

    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@contextlib.contextmanager
def local_page(url: str, width: int, height: int) -> Iterator[tuple[Any, PageLog]]:
    """Yield ``(page, log)``: a Chromium page whose requests outside ``url`` are refused and logged."""
    from playwright.sync_api import sync_playwright

    log = PageLog()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})

            def route(request_route: Any) -> None:
                if request_route.request.url.startswith(url):
                    request_route.continue_()
                else:
                    log.blocked.append(request_route.request.url)
                    request_route.abort()

            page.route("**/*", route)
            page.on("console", lambda m: log.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: log.errors.append(str(e)))
            yield page, log
        finally:
            browser.close()
