"""The Inference tab in a real Chromium against the real server holding a saved baseline model.

One server per module: its output folder holds a decision tree trained on the synthetic data
set before the server starts. One page is opened on the Inference tab and never reloaded; the
tests run in file order on it and share the database: each one asserts on the rows it adds.
Predict is a what-if unless "Save to log" is ticked.
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


def _box(locator: Any) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not on screen"
    return box


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def _style(locator: Any, *names: str) -> list[str]:
    return locator.evaluate("(e, names) => names.map(n => getComputedStyle(e)[n])", list(names))


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
    # Which model is active for the API, and how (issue 16 item 1): the first saved model was pinned.
    assert page.locator("select").first.input_value() == "baseline (decision_tree) · active (first saved)"
    page.locator(".active-model").get_by_text("pinned when it was saved").wait_for(timeout=10_000)
    before = len(_saved(inference_server))

    # Move the feature11 slider with the keyboard, as a user would.
    handle = page.locator(".slider-feature11 .noUi-handle").first
    handle.focus()
    for _ in range(40):
        handle.press("ArrowRight")
    edit = page.locator(".slider-feature11 input").first
    wait_until(lambda: edit.input_value() not in ("", "0.0094"), timeout=20, message="the slider to move")

    page.locator(".save-to-log input").check()  # saving is an explicit choice
    page.locator(".predict-button button").click()
    verdict = page.locator(".verdict.clear, .verdict.fraud")
    verdict.wait_for(timeout=60_000)
    page.locator(".verdict .sub", has_text="saved (source ui)").wait_for(timeout=30_000)
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


def test_a_what_if_saves_nothing_goes_stale_on_edit_and_shows_the_change_and_the_true_label(
        inference_tab: tuple[Any, ConsoleCapture], inference_server: ServedApp) -> None:
    """Issue 16 item 3."""
    page, console = inference_tab
    seen = len(console.errors)
    page.locator(".save-to-log input").uncheck()
    before = len(_saved(inference_server))
    page.locator(".sample-fraud button").click()
    page.locator(".origin").get_by_text("a real fraud transaction").wait_for(timeout=30_000)
    # A new transaction makes the verdict on screen stale.
    page.locator(".stale-note", has_text="Inputs changed — press Predict").wait_for(timeout=10_000)
    page.locator(".predict-button button").click()
    page.locator(".verdict .sub", has_text="what-if").wait_for(timeout=30_000)
    wait_until(lambda: page.locator(".stale-note").count() == 0, timeout=10, message="the verdict to be current")
    page.locator(".notes").get_by_text("True label: fraud").wait_for(timeout=10_000)
    assert "→" in page.locator(".notes .change").inner_text()  # the change since the previous score
    assert len(_saved(inference_server)) == before  # the what-if wrote nothing

    # Editing an input greys the verdict out at once.
    handle = page.locator(".slider-feature13 .noUi-handle").first
    handle.focus()
    handle.press("ArrowLeft")
    page.locator(".verdict.stale").wait_for(timeout=10_000)
    page.locator(".stale-note", has_text="Inputs changed — press Predict").wait_for(timeout=10_000)
    opacity = float(_style(page.locator(".verdict.stale"), "opacity")[0])
    assert opacity < 0.6
    page.locator(".predict-button button").click()
    wait_until(lambda: page.locator(".verdict.stale").count() == 0, timeout=30, message="a current verdict")
    assert page.locator(".notes").get_by_text("True label").count() == 0  # an edited row is not that row
    assert len(_saved(inference_server)) == before
    assert console.errors[seen:] == []


def test_the_controls_look_like_what_they_do(inference_tab: tuple[Any, ConsoleCapture]) -> None:
    """Issue 16 item 10: buttons look like buttons, full-width sliders, tooltips clear of buttons, disabled looks."""
    page, console = inference_tab
    seen = len(console.errors)
    card = _box(page.locator(".card").filter(has=page.locator(".predict-button")).first)
    for kind in ("clear", "fraud"):
        button = page.locator(f".sample-{kind} button")
        background, border, border_color = _style(button, "backgroundColor", "borderTopWidth", "borderTopColor")
        assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background
        assert float(border.removesuffix("px")) >= 1 and border_color not in ("rgba(0, 0, 0, 0)", "transparent")
    for column in ("feature11", "feature13", "feature15", "amount"):
        track = _box(page.locator(f".slider-{column} .noUi-target").first)
        assert track["width"] >= 0.6 * card["width"], (column, track["width"], card["width"])
    buttons = [b for b in page.locator("button").all() if b.is_visible()]
    boxes = {i: _box(b) for i, b in enumerate(buttons)}
    for name in ("sample-clear", "sample-fraud", "sample-reference"):
        hovered = page.locator(f".{name} button")
        hovered.hover()
        tip = page.locator(".bk-Tooltip").filter(has_text="").first
        tip.wait_for(state="visible", timeout=10_000)
        tip_box = _box(tip)
        own = _box(hovered)
        covered = [buttons[i].inner_text() for i, box in boxes.items() if box != own and _overlap(tip_box, box)]
        assert covered == [], f"the tooltip of {name} covers {covered}"
        page.mouse.move(1, 1)
        tip.wait_for(state="hidden", timeout=10_000)
    disabled = page.locator(".score-batch button")
    assert disabled.is_disabled()
    opacity, cursor = _style(disabled, "opacity", "cursor")
    assert float(opacity) < 0.6 and cursor == "not-allowed"
    assert console.errors[seen:] == []


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
    """Issue 16 item 7: every problem in one pass, the help stays, semicolons, a template, results by risk."""
    page, console = inference_tab
    seen = len(console.errors)
    file_input = page.locator(".batch-file input[type=file]")

    # A template to start from: the header and one valid row.
    with page.expect_download(timeout=30_000) as info:
        page.locator(".batch-template button, .batch-template a").first.click()
    template = pd.read_csv(info.value.path())
    assert list(template.columns) == MODEL_FEATURES and len(template) == 1

    # A broken file: the missing column AND the bad cell in one pass; the format help stays; nothing is saved.
    before = len(_saved(inference_server))
    broken = tmp_path / "broken.csv"
    bad = make_synthetic(200, 0.1, 6).drop(columns=["feature7"]).head(5).astype({"amount": str})
    bad.loc[bad.index[1], "amount"] = "abc"
    bad.to_csv(broken, index=False)
    file_input.set_input_files(str(broken))
    errors = page.locator(".batch-error")
    errors.get_by_text("missing column: feature7").wait_for(timeout=30_000)
    errors.get_by_text("column amount has non-numeric value(s) in row 2 ('abc')").wait_for(timeout=10_000)
    errors.get_by_text("2 problems found").wait_for(timeout=10_000)
    assert page.locator(".batch-help").get_by_text("Format.").is_visible()
    assert len(_saved(inference_server)) == before

    # A semicolon-separated export with decimal commas is read as such.
    semicolon = tmp_path / "export.csv"
    make_synthetic(200, 0.1, 8).head(5).to_csv(semicolon, index=False, sep=";", decimal=",")
    file_input.set_input_files(str(semicolon))
    page.get_by_text("read as semicolon-separated").wait_for(timeout=30_000)
    assert errors.is_hidden()

    # A valid file: scored, saved as "batch", shown highest P(fraud) first, downloadable.
    good = tmp_path / "good.csv"
    sample = make_synthetic(200, 0.1, 7).head(25)
    sample.to_csv(good, index=False)
    file_input.set_input_files(str(good))
    page.get_by_text("25 valid transactions").wait_for(timeout=30_000)
    page.locator("button", has_text="Score and save batch").click()
    page.get_by_text("scored 25 transactions").wait_for(timeout=60_000)
    rows = _saved(inference_server)
    assert len(rows) == before + 25 and {r["source"] for r in rows[:25]} == {"batch"}
    cells = page.locator(".batch-table .tabulator-row .tabulator-cell[tabulator-field='fraud_probability']")
    wait_until(lambda: cells.count() >= 10, timeout=30, message="the first page of the batch results")
    shown = [float(text) for text in cells.all_inner_texts()]
    assert shown == sorted(shown, reverse=True) and shown[0] == pytest.approx(max(r["fraud_probability"]
                                                                                 for r in rows[:25]), abs=1e-5)

    with page.expect_download(timeout=30_000) as info:
        page.locator(".batch-download button, .batch-download a").first.click()
    downloaded = pd.read_csv(info.value.path())
    assert info.value.suggested_filename == "good-scored.csv"
    assert len(downloaded) == 25 and downloaded["fraud_probability"].is_monotonic_decreasing
    assert sorted(downloaded["id"]) == sorted(r["id"] for r in rows[:25])
    by_id = downloaded.sort_values("id")
    assert np.allclose(by_id[MODEL_FEATURES].to_numpy(), sample[MODEL_FEATURES].to_numpy(), rtol=0, atol=1e-12)
    assert console.errors[seen:] == []
