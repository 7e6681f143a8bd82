"""The Inference tab in a real Chromium against the real server holding a saved baseline model.

One server per module: its output folder holds a decision tree trained on the synthetic data
set before the server starts. One page is opened on the Inference tab and never reloaded; the
tests run in file order on it and share the database: each one asserts on the rows it adds.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import MODEL_FEATURES, TARGET, make_synthetic
from tests.browser.conftest import (
    ConsoleCapture,
    _require_chromium,
    click_tab,
    open_app,
    plot_titles,
    server_env,
    wait_until,
)
from tests.conftest import ServedApp, start_app, stop_app

pytestmark = pytest.mark.browser

MODEL = "baseline"


@pytest.fixture(scope="module")
def inference_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """A real server whose output folder already holds the baseline trained on the synthetic data."""
    _require_chromium()
    from fraud_app.models import create

    home = tmp_path_factory.mktemp("inference-home")
    env = server_env(home)
    frame = make_synthetic(int(env["FRAUD_APP_SYNTHETIC_ROWS"]), float(env["FRAUD_APP_SYNTHETIC_FRAUD_RATE"]),
                           int(env["FRAUD_APP_SEED"]))
    model = create("decision_tree").fit(frame[MODEL_FEATURES], frame[TARGET])
    with pytest.MonkeyPatch.context() as patch:  # save into the server's models folder
        patch.setenv("FRAUD_APP_HOME", env["FRAUD_APP_HOME"])
        patch.setenv("FRAUD_APP_OUTPUT_DIR", env["FRAUD_APP_OUTPUT_DIR"])
        patch.delenv("FRAUD_APP_MODELS_DIR", raising=False)
        model.save(MODEL)
    assert (home / "output" / "models" / MODEL / "metadata.json").is_file()
    app = start_app(env, log_path=home / "server.log")
    try:
        yield app
    finally:
        stop_app(app)


def _api(server: ServedApp, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}{path}", data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _saved(server: ServedApp) -> list[dict[str, Any]]:
    """The saved predictions, newest first, as the REST API lists them."""
    return _api(server, "/api/predictions?limit=100")["predictions"]


def _table_ids(page: Any) -> list[int]:
    """The ids shown in the saved-predictions table, top to bottom."""
    cells = page.locator(".predictions-table .tabulator-row .tabulator-cell[tabulator-field='id']")
    return [int(text) for text in cells.all_inner_texts() if text.strip()]


@pytest.fixture(scope="module")
def inference_tab(browser_context: Any, inference_server: ServedApp) -> Iterator[tuple[Any, ConsoleCapture]]:
    """ONE page for the module, on the Inference tab, never reloaded; its console is recorded."""
    console = ConsoleCapture()
    page = browser_context.new_page()
    console.attach(page)
    try:
        open_app(page, inference_server, timeout=180)
        click_tab(page, "Inference")
        predict = page.locator(".predict-button button")
        predict.wait_for(timeout=180_000)
        wait_until(lambda: predict.is_enabled(), timeout=60, message="the Predict button to be enabled")
        page.get_by_text("the reference transaction (median of the clear transactions)").wait_for(timeout=60_000)
        yield page, console
    finally:
        page.close()


def test_move_a_slider_predict_and_see_the_verdict_and_the_saved_row(
        inference_tab: tuple[Any, ConsoleCapture], inference_server: ServedApp) -> None:
    page, console = inference_tab
    assert page.locator("select").first.input_value() == "baseline (decision_tree) · active"
    before = len(_saved(inference_server))

    # Move the feature11 slider with the keyboard, as a user would.
    handle = page.locator(".slider-feature11 .noUi-handle").first
    handle.focus()
    for _ in range(40):
        handle.press("ArrowRight")
    edit = page.locator(".slider-feature11 input").first
    wait_until(lambda: edit.input_value() not in ("", "0.0094"), timeout=20, message="the slider to move")

    page.locator(".predict-button button").click()
    verdict = page.locator(".verdict.clear, .verdict.fraud")
    verdict.wait_for(timeout=60_000)
    assert verdict.inner_text().split()[0] in ("Clear", "Fraudulent")

    rows = _saved(inference_server)
    assert len(rows) == before + 1
    row = rows[0]
    assert row["source"] == "ui" and row["model"] == MODEL
    assert f"prediction #{row['id']}" in verdict.inner_text()
    # The slider wrote feature11 and nothing else: the other inputs are the reference transaction.
    from fraud_app.inference.reference import reference_transaction

    stored = _api(inference_server, f"/api/predictions/{row['id']}")
    reference = reference_transaction()
    changed = {c for c in MODEL_FEATURES if abs(stored["features"][c] - reference[c]) > 1e-9}
    assert changed == {"feature11"}
    assert stored["features"]["feature11"] > reference["feature11"]

    # The table gained the row, on top; the contributions chart is drawn.
    wait_until(lambda: _table_ids(page)[:1] == [row["id"]], timeout=30, message="the new row in the table")
    wait_until(lambda: any("Top feature contributions" in t for t in plot_titles(page)), timeout=30,
               message="the contributions chart")
    assert console.errors == []  # since the page was opened


def test_a_prediction_posted_to_the_api_appears_without_a_reload(
        inference_tab: tuple[Any, ConsoleCapture], inference_server: ServedApp) -> None:
    page, console = inference_tab
    seen = len(console.errors)
    frame = make_synthetic(200, 0.1, 5)
    transaction = {c: float(frame[c].iat[0]) for c in MODEL_FEATURES}
    posted = _api(inference_server, "/api/predictions", transaction)
    wait_until(lambda: _table_ids(page)[:1] == [posted["id"]], timeout=15,
               message="the REST-posted prediction in the table")
    top = page.locator(".predictions-table .tabulator-row").first
    assert "api" in top.inner_text()
    assert console.errors[seen:] == []


def test_a_batch_csv_round_trip(inference_tab: tuple[Any, ConsoleCapture], inference_server: ServedApp,
                                tmp_path: Path) -> None:
    page, console = inference_tab
    seen = len(console.errors)
    file_input = page.locator(".batch-file input[type=file]")

    # A broken file: the message names the problem and nothing is saved.
    before = len(_saved(inference_server))
    broken = tmp_path / "broken.csv"
    make_synthetic(200, 0.1, 6).drop(columns=["feature7"]).head(5).to_csv(broken, index=False)
    file_input.set_input_files(str(broken))
    page.locator(".batch-error").get_by_text("missing column: feature7").wait_for(timeout=30_000)
    assert len(_saved(inference_server)) == before

    # A valid file: scored, saved as "batch", shown, downloadable.
    good = tmp_path / "good.csv"
    sample = make_synthetic(200, 0.1, 7).head(25)
    sample.to_csv(good, index=False)
    file_input.set_input_files(str(good))
    page.get_by_text("25 valid transactions").wait_for(timeout=30_000)
    page.locator("button", has_text="Score and save batch").click()
    page.get_by_text("scored 25 transactions").wait_for(timeout=60_000)
    rows = _saved(inference_server)
    assert len(rows) == before + 25 and {r["source"] for r in rows[:25]} == {"batch"}
    wait_until(lambda: page.locator(".batch-table .tabulator-row").count() >= 10, timeout=30,
               message="the first page of the batch results")

    with page.expect_download(timeout=30_000) as info:
        page.locator(".batch-download button, .batch-download a").first.click()
    downloaded = pd.read_csv(info.value.path())
    assert info.value.suggested_filename == "good-scored.csv"
    assert len(downloaded) == 25
    assert sorted(downloaded["id"]) == sorted(r["id"] for r in rows[:25])
    assert np.allclose(downloaded[MODEL_FEATURES].to_numpy(), sample[MODEL_FEATURES].to_numpy(), rtol=0, atol=1e-12)
    assert console.errors[seen:] == []
