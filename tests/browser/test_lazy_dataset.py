"""The app in Chromium on a data set too big for memory (issue #14): the EDA cards from Dask, no page errors.

The server reads a 40,000-row synthetic set in 4 Parquet partitions with
``FRAUD_APP_MAX_IN_MEMORY_ROWS=20000``, so it opens the set lazily and starts its own
one-worker LocalCluster (1 GB) for the EDA summary and the datashader scatter of every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ConsoleCapture, _require_chromium, click_tab, open_app, server_env, wait_until
from tests.browser.test_eda import _eda_rendered
from tests.conftest import ServedApp, start_app, stop_app

pytestmark = pytest.mark.browser

ROWS, PARTITIONS = 40_000, 4


@pytest.fixture(scope="module")
def lazy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """``panel serve`` on the partitioned set, above the in-memory limit (no --warm: the session prepares it)."""
    _require_chromium()
    from fraud_app.data.synth import write_synthetic

    home = tmp_path_factory.mktemp("lazy-browser-home")
    write_synthetic(ROWS, PARTITIONS, home / "set", fraud_rate=0.02, seed=5)
    env = server_env(home)
    env.update({"FRAUD_APP_DATA_PATH": str(home / "set"), "FRAUD_APP_MAX_IN_MEMORY_ROWS": str(ROWS // 2),
                "FRAUD_APP_DASK_WORKERS": "1", "FRAUD_APP_DASK_MEMORY_LIMIT": "1GB",
                "FRAUD_APP_DASK_SCHEDULER": ""})
    app = start_app(env, log_path=home / "server.log")
    try:
        yield app
    finally:
        stop_app(app)


def test_the_eda_tab_shows_every_card_of_a_lazy_set_and_what_it_read(
        page: Any, console: ConsoleCapture, lazy_server: ServedApp) -> None:
    open_app(page, lazy_server)
    wait_until(lambda: _eda_rendered(page), timeout=150, message="every EDA chart of the lazy set")
    page.get_by_text(f"read {ROWS:,} rows in {PARTITIONS} partitions on Dask").first.wait_for(timeout=30_000)
    assert page.get_by_text(f"All {ROWS:,} transactions, rasterised by datashader on the Dask cluster").count() == 1
    assert page.locator(".tabulator-row").count() >= 10  # the statistics by class
    # The Training tab says how a lazy set trains and links the cluster's dashboard.
    click_tab(page, "Training")
    page.get_by_text("The data set is too big for memory").first.wait_for(timeout=60_000)
    assert page.get_by_role("link", name="dashboard").count() == 1
    assert console.errors == [], "\n\n".join(console.errors)
