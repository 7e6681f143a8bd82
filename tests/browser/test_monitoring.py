"""The Monitoring tab's review queue in a real Chromium against the real server.

The server's models folder holds a decision tree trained by the pipeline (so it carries a
training reference); 60 predictions are posted through the REST API before the page opens.
Marking the top of the queue as fraud removes that row from the queue and updates the figures.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from fraud_app.data import MODEL_FEATURES, make_synthetic
from tests.browser.conftest import ConsoleCapture, _require_chromium, click_tab, open_app, server_env, wait_until
from tests.conftest import ServedApp, start_app, stop_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def monitoring_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    _require_chromium()
    from fraud_app.training.pipeline import TrainingPipeline

    home = tmp_path_factory.mktemp("monitoring-home")
    env = server_env(home)
    with pytest.MonkeyPatch.context() as patch:  # save into the server's models folder
        patch.setenv("FRAUD_APP_HOME", env["FRAUD_APP_HOME"])
        patch.setenv("FRAUD_APP_OUTPUT_DIR", env["FRAUD_APP_OUTPUT_DIR"])
        patch.delenv("FRAUD_APP_MODELS_DIR", raising=False)
        TrainingPipeline("decision_tree", {"max_depth": 4}, name="mon", save=True).run(make_synthetic(4000, 0.05, 3))
    app = start_app(env, log_path=home / "server.log")
    try:
        rows = make_synthetic(600, 0.1, 21)[MODEL_FEATURES].head(60).to_dict(orient="records")
        created = _api(app, "/api/predictions", {"transactions": rows}, "POST")
        assert created["count"] == 60
        yield app
    finally:
        stop_app(app)


def _api(server: ServedApp, path: str, body: Any = None, method: str = "GET") -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _queue_ids(page: Any) -> list[int]:
    cells = page.locator(".review-queue tbody tr td[data-field='id']")
    return [int(text) for text in cells.all_inner_texts() if text.strip()]


def test_mark_the_top_of_the_review_queue_as_fraud(browser_context: Any, monitoring_server: ServedApp) -> None:
    console = ConsoleCapture()
    page = browser_context.new_page()
    console.attach(page)
    try:
        open_app(page, monitoring_server, timeout=180)
        click_tab(page, "Monitoring")
        wait_until(lambda: len(_queue_ids(page)) >= 5, timeout=120, message="the review queue")
        labeled = page.locator(".mon-labeled").first
        wait_until(lambda: labeled.inner_text().strip() == "0", timeout=30, message="0 labeled")
        assert page.locator(".mon-precision").first.inner_text().strip() == "–"

        ids = _queue_ids(page)
        top = ids[0]
        expected = _api(monitoring_server, f"/api/predictions/{top}")
        probabilities = sorted((p["fraud_probability"] for p in
                                _api(monitoring_server, "/api/predictions?limit=100")["predictions"]), reverse=True)
        assert expected["fraud_probability"] == probabilities[0]  # highest probability first

        page.locator(".review-queue tbody tr").first.locator("button.mon-mark-fraud").click()
        wait_until(lambda: top not in _queue_ids(page), timeout=30, message="the labeled row to leave the queue")
        wait_until(lambda: labeled.inner_text().strip() == "1", timeout=30, message="1 labeled")
        stored = _api(monitoring_server, f"/api/predictions/{top}")
        assert stored["label"] == "fraud" and stored["labeled_by"].startswith("ui")
        precision = page.locator(".mon-precision").first.inner_text().strip()
        assert precision == ("100.0%" if expected["is_fraud"] else "–")
        report = _api(monitoring_server, "/api/monitoring")
        assert report["labels"]["fraud"] == 1 and report["labels"]["unlabeled"] == 59
        assert console.errors == []
    finally:
        page.close()
