"""The app in a real Chromium: tabs, every EDA chart, feature selection, console, payload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import (
    ConsoleCapture,
    NetworkMeter,
    click_tab,
    open_app,
    plot_titles,
    tab_labels,
    wait_until,
)
from tests.conftest import ServedApp

pytestmark = pytest.mark.browser

#: The EDA tab's charts, by their title's beginning (the scatter and distribution titles name features).
EDA_CHARTS = [
    "Transactions per class",
    "Distribution of ",
    "Correlations: all transactions",
    "Class separation: KS statistic",
    "Amount by class",
    "Fraud rate by amount bucket",
    "Transactions by hour",
    "Fraud rate by hour",
    " against ",
]
PAYLOAD_BUDGET = 5_000_000


def _eda_rendered(page: Any) -> bool:
    titles = plot_titles(page)
    return all(any(chart in title for title in titles) for chart in EDA_CHARTS) and \
        page.locator(".bk-Canvas").count() >= len(EDA_CHARTS)


def test_eda_tab_renders_every_chart_without_console_errors(
        page: Any, console: ConsoleCapture, network: NetworkMeter, app_server: ServedApp) -> None:
    """One page load: the tabs, every EDA chart, the payload, a feature pick, the other tabs."""
    open_app(page, app_server)
    labels = tab_labels(page)
    assert len(labels) == 4
    for title in ("Exploratory Data Analysis", "Training", "Inference", "Monitoring"):
        assert any(title in label for label in labels), (title, labels)

    # Every chart is drawn: its Bokeh plot exists (by title) and has a canvas of a real size.
    wait_until(lambda: _eda_rendered(page), timeout=120, message="every EDA chart")
    canvases = page.locator(".bk-Canvas")
    sizes = [canvases.nth(i).bounding_box() for i in range(canvases.count())]
    assert sum(1 for box in sizes if box and box["width"] > 100 and box["height"] > 100) >= len(EDA_CHARTS)
    # What the data is, the overview numbers, the describe table and the insights.
    assert page.get_by_text("seeded synthetic data set").count() == 1
    assert page.locator("text=20,000 >> visible=true").count() >= 1
    assert page.locator(".fds-skeleton >> visible=true").count() == 0  # no chart left as a placeholder
    assert page.locator(".tabulator-row").count() >= 10
    assert page.get_by_text("200 of 20,000 transactions are fraud").count() == 1

    # Payload of the first page and the EDA tab, before any interaction.
    page.wait_for_timeout(1000)  # let the last frames arrive
    total = network.total_bytes
    print(f"\npayload, first page + EDA tab: {total / 1e6:.2f} MB "
          f"(HTTP {network.http_bytes / 1e6:.2f} MB, WebSocket {network.websocket_bytes / 1e6:.2f} MB, "
          f"{len(network.responses)} responses)")
    assert network.websocket_bytes > 0 and network.http_bytes > 0
    assert total <= PAYLOAD_BUDGET, sorted(network.responses, key=lambda r: -r[1])[:10]

    # Picking another feature redraws the distribution with that feature.
    before = [t for t in plot_titles(page) if t.startswith("Distribution of ")]
    assert before and before[-1] != "Distribution of feature2 by class"
    select = page.locator("select").first
    assert select.input_value() != "feature2"
    select.select_option("feature2")
    wait_until(lambda: "Distribution of feature2 by class" in plot_titles(page),
               timeout=60, message="the distribution of feature2")

    # The other tabs open, and the EDA tab comes back.
    for title in ("Training", "Inference", "Exploratory Data Analysis"):
        click_tab(page, title)
        page.wait_for_timeout(500)
    assert page.locator(".bk-tab.bk-active", has_text="Exploratory Data Analysis").count() == 1
    assert console.errors == [], "\n\n".join(console.errors)


def _toggle_colours(page: Any, name: str) -> tuple[str, str]:
    return page.get_by_role("button", name=name).evaluate(
        "b => { const s = getComputedStyle(b); return [s.color, s.backgroundColor]; }")


def test_theme_toggle_switches_to_dark_and_back(
        page: Any, console: ConsoleCapture, app_server: ServedApp) -> None:
    open_app(page, app_server)
    assert page.locator(".fds-theme-default").count() == 1
    assert _toggle_colours(page, "☾ Dark theme")[0] == "rgb(255, 255, 255)"
    # The open tab survives the switch (it is in the URL).
    click_tab(page, "Inference")
    wait_until(lambda: "tab=2" in page.evaluate("window.location.href"), timeout=60,
               message="the open tab in the URL")
    page.wait_for_load_state("networkidle")  # the reload below would abort requests still in flight
    page.get_by_role("button", name="☾ Dark theme").click(timeout=90_000)
    page.wait_for_url("**theme=dark**", timeout=60_000)
    page.locator(".fds-theme-dark").wait_for(timeout=60_000)
    assert "tab=2" in page.url
    wait_until(lambda: page.locator(".bk-tab.bk-active", has_text="Inference").count() == 1,
               timeout=60, message="the Inference tab after the theme switch")
    # Legible on the dark header: white text on a transparent (the header's) background.
    color, background = _toggle_colours(page, "☀ Light theme")
    assert color == "rgb(255, 255, 255)" and background in ("rgba(0, 0, 0, 0)", "transparent"), (color, background)
    page.wait_for_load_state("networkidle")  # the Inference tab's resources, before the next reload
    page.get_by_role("button", name="☀ Light theme").click(timeout=90_000)
    page.wait_for_url("**theme=default**", timeout=60_000)
    page.locator(".fds-theme-default").wait_for(timeout=60_000)
    # A reload we asked for aborts the requests still in flight; nothing else may go wrong.
    errors = [e for e in console.errors if "net::ERR_ABORTED" not in e]
    assert errors == [], "\n\n".join(errors)
