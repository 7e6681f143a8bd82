"""The Inference tab without a browser: drive its controller's Events, assert on its Parameters and the database."""

from __future__ import annotations

import asyncio
import inspect
import logging

import numpy as np
import pandas as pd
import panel as pn
import pytest

from fraud_app.data import MODEL_FEATURES, TARGET, load_transactions
from fraud_app.inference import score_and_save
from fraud_app.inference.batch import parse_batch_csv
from fraud_app.inference.reference import FROZEN_FEATURES, SLIDER_FEATURES, reference_data
from fraud_app.models import FraudModel, create, delete_model, set_active_model
from fraud_app.storage import count_predictions, list_predictions
from fraud_app.ui.charts import OffloopChart, chart_object
from fraud_app.ui.inference import NO_MODEL_MESSAGE, InferenceController, InferenceSection, TransactionInputs
from fraud_app.ui.inference.batch import BATCH_HELP, batch_status, problems_markdown
from fraud_app.ui.inference.model import active_text
from fraud_app.ui.inference.transaction import frozen_html
from fraud_app.ui.inference.verdict import (
    contribution_axis,
    contributions_chart,
    format_probability,
    probability_html,
    verdict_html,
)
from fraud_app.ui.state import AppState

MODEL = "baseline"


@pytest.fixture(scope="session")
def fitted_baseline() -> FraudModel:
    """The assignment's decision tree fitted once per session on the synthetic data set of the tests."""
    from fraud_app.data import make_synthetic

    frame = make_synthetic(20_000, 0.01, 0)
    return create("decision_tree").fit(frame[MODEL_FEATURES], frame[TARGET])


@pytest.fixture
def baseline(fitted_baseline: FraudModel, app_env) -> str:
    """The baseline saved in this test's own models folder."""
    fitted_baseline.save(MODEL, overwrite=True)
    return MODEL


@pytest.fixture
def section(baseline: str) -> InferenceSection:
    """An Inference tab over a store holding the baseline (start-up already ran: no server)."""
    return InferenceSection(state=AppState(), seed=7)


@pytest.fixture
def ctrl(baseline: str) -> InferenceController:
    """The tab's controller alone (no views), started as the section starts it on load."""
    controller = InferenceController(state=AppState(), seed=7)
    asyncio.run(controller.load())
    return controller


def _clear_medians() -> dict[str, float]:
    frame = load_transactions()
    return frame.loc[frame[TARGET] == 0, MODEL_FEATURES].median().to_dict()


# -- the shape ---------------------------------------------------------------------------------------

def test_the_package_registers_the_section_and_keeps_the_public_names(section_registry) -> None:
    from fraud_app.ui.base import discover_sections, registered_sections

    discover_sections()  # imports fraud_app.ui.inference (a package), whose __init__ imports the section
    assert InferenceSection in registered_sections()
    assert registered_sections()[2].__module__ == "fraud_app.ui.inference.section"
    assert (InferenceSection.title, InferenceSection.order) == ("Inference", 30)
    assert TransactionInputs().values() == dict.fromkeys(MODEL_FEATURES, 0.0)
    assert "Training" in NO_MODEL_MESSAGE


def test_the_controller_holds_no_widgets_and_its_watchers_only_react(ctrl: InferenceController) -> None:
    """Watchers are named _on_...; nothing in the controller is a Panel widget or layout."""
    watchers = [name for name, fn in inspect.getmembers(InferenceController, callable)
                if getattr(fn, "_dinfo", {}).get("watch")]
    assert watchers and all(name.startswith("_on_") for name in watchers), watchers
    assert not hasattr(InferenceController, "_update_controls")
    values = [getattr(ctrl, name) for name in ctrl.param] + list(vars(ctrl).values())
    assert not [v for v in values if isinstance(v, pn.viewable.Viewable)]
    for name, parameter in ctrl.param.objects().items():
        assert parameter.doc, f"{name} has no doc"


def test_building_the_section_does_no_io(baseline: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tab is built on its first visit: the store, the data set and the database are read after load."""
    import fraud_app.ui.inference.controller as module

    def forbidden(*args, **kwargs):
        raise AssertionError("I/O while building the section")

    for name in ("list_models", "store_active_model_status", "reference_data", "count_predictions", "list_predictions"):
        monkeypatch.setattr(module, name, forbidden)
    deferred: list = []
    monkeypatch.setattr(pn.state, "onload", deferred.append)
    section = InferenceSection(state=AppState())
    section.__panel__().get_root()
    assert deferred == [section.controller.load]
    assert section.controller.models is None and section.controller.reference is None


# -- the transaction -----------------------------------------------------------------------------------

def test_inputs_start_at_the_reference_transaction_the_clear_class_medians(ctrl: InferenceController) -> None:
    medians = _clear_medians()
    values = ctrl.inputs.values()
    assert list(values) == MODEL_FEATURES
    for column in MODEL_FEATURES:
        assert values[column] == pytest.approx(medians[column], abs=1e-12), column
    assert "reference transaction" in ctrl.origin and not ctrl.edited


def test_the_sliders_are_labelled_with_their_columns_and_take_their_ranges_from_percentiles(
        section: InferenceSection) -> None:
    ctrl, sliders = section.controller, section.transaction.sliders
    assert list(sliders) == list(SLIDER_FEATURES) == ["feature11", "feature13", "feature15", "amount"]
    assert [s.name for s in sliders.values()] == list(SLIDER_FEATURES)
    frame = load_transactions()
    for column, (start, end, step) in ctrl.ranges.items():
        low, high = np.percentile(frame[column], [0.5, 99.5])
        assert start <= low < start + step + 1e-9, column
        assert end - step - 1e-9 < high <= end, column
        assert end - start < frame[column].max() - frame[column].min()  # the extreme tails are off the slider
        assert (sliders[column].start, sliders[column].end, sliders[column].step) == (start, end, step)


@pytest.mark.parametrize("label", ["feature11", "feature13", "feature15", "amount"])
def test_moving_a_slider_changes_only_its_own_column_in_the_scored_transaction(
        section: InferenceSection, label: str) -> None:
    """The template's off-by-one: the slider labelled featureN must write featureN, nothing else."""
    ctrl = section.controller
    reference = ctrl.inputs.values()
    slider = section.transaction.sliders[label]
    assert slider.name == label
    new_value = round(slider.start + 0.8 * (slider.end - slider.start), 3)
    assert new_value != pytest.approx(reference[label])
    slider.value = new_value  # what dragging the slider does
    ctrl.save_to_log = True
    ctrl.param.trigger("predict")
    stored = list_predictions(limit=1)[0]["features"]
    changed = {c for c in MODEL_FEATURES if stored[c] != pytest.approx(reference[c], abs=1e-12)}
    assert changed == {label}
    assert stored[label] == pytest.approx(new_value)
    assert ctrl.edited


def test_a_value_typed_beyond_a_sliders_end_widens_its_range(ctrl: InferenceController) -> None:
    start, end, step = ctrl.ranges["amount"]
    ctrl.inputs.amount = end * 10 + 0.123
    new_start, new_end, new_step = ctrl.ranges["amount"]
    assert new_start == start and new_step == step and new_end >= ctrl.inputs.amount


def test_random_real_transactions_come_from_the_data_set(ctrl: InferenceController) -> None:
    frame = load_transactions()
    for event, label in (("load_fraud", 1), ("load_clear", 0)):
        ctrl.param.trigger(event)
        row = ctrl.sample.row
        assert frame[TARGET].iat[row] == label == ctrl.sample.is_fraud
        assert f"row {row:,}" in ctrl.origin and not ctrl.edited
        assert ctrl.inputs.values() == pytest.approx(frame.loc[row, MODEL_FEATURES].astype(float).to_dict())
        for column, (start, end, _) in ctrl.ranges.items():  # a range widens to hold an out-of-range real value
            assert start <= ctrl.inputs.values()[column] <= end
    # Seeded per session: the same seed draws the same transactions.
    first, second = InferenceController(seed=7), InferenceController(seed=7)
    for one in (first, second):
        asyncio.run(one.load())
        one.param.trigger("load_fraud")
    assert first.inputs.values() == second.inputs.values()
    ctrl.param.trigger("load_reference")
    assert ctrl.inputs.values() == pytest.approx(_clear_medians())
    assert ctrl.sample is None


def test_frozen_inputs_are_read_only_until_unfrozen(section: InferenceSection) -> None:
    ctrl, view = section.controller, section.transaction
    values = [ctrl.inputs.values()[c] for c in FROZEN_FEATURES]
    assert len(FROZEN_FEATURES) == 25 and view.editors == {}
    assert all(f">{c}<" in frozen_html([], *values) for c in FROZEN_FEATURES)
    ctrl.unfrozen = ["feature4"]
    assert list(view.editors) == ["feature4"] and view.editors["feature4"].name == "feature4"
    assert ">feature4<" not in frozen_html(ctrl.unfrozen, *values)
    view.editors["feature4"].value = 3.5  # typing into the unfrozen box
    assert ctrl.inputs.feature4 == 3.5 and ctrl.edited
    ctrl.save_to_log = True
    ctrl.param.trigger("predict")
    assert list_predictions(limit=1)[0]["features"]["feature4"] == 3.5


def test_the_reference_is_computed_once_per_process(baseline: str) -> None:
    from fraud_app.inference import reference

    reference_data()
    before = reference.compute_count
    for _ in range(3):
        InferenceSection(state=AppState())
    assert reference.compute_count == before


# -- predict: what-if or saved, stale, change, true label (issue 16 item 3) ------------------------

def test_predict_is_a_what_if_by_default_and_saves_nothing(ctrl: InferenceController) -> None:
    assert ctrl.save_to_log is False
    ctrl.param.trigger("predict")
    assert count_predictions() == 0
    row = ctrl.last_prediction
    assert row["saved"] is False and "id" not in row and row["model"] == MODEL
    assert "what-if" in verdict_html(row, ctrl.stale, ctrl.previous_probability)
    assert "not saved" in verdict_html(row, False, None)
    assert ctrl.total_predictions == 0


def test_save_to_log_writes_exactly_one_row_with_the_inputs_and_source_ui(ctrl: InferenceController) -> None:
    ctrl.param.trigger("load_fraud")
    ctrl.inputs.amount = 123.45
    expected = ctrl.inputs.values()
    ctrl.save_to_log = True
    ctrl.param.trigger("predict")
    assert count_predictions() == 1
    row = list_predictions(limit=1)[0]
    assert row["source"] == "ui" and row["model"] == MODEL
    assert row["features"] == pytest.approx(expected)
    assert ctrl.last_prediction["id"] == row["id"] and ctrl.last_prediction["saved"] is True
    html = verdict_html(ctrl.last_prediction, ctrl.stale, None)
    assert ("Fraudulent" if row["is_fraud"] else "Clear") in html and f"prediction #{row['id']}" in html
    assert "saved (source ui)" in html
    assert format_probability(row["threshold"]) in probability_html(ctrl.last_prediction)
    assert list(ctrl.contributions.columns) == ["feature", "value", "contribution"]
    # The table was refreshed after the run: the new row is on top.
    assert int(ctrl.predictions["id"].iloc[0]) == row["id"] and ctrl.predictions["source"].iloc[0] == "ui"
    assert ctrl.total_predictions == 1


def test_the_verdict_goes_stale_when_an_input_or_the_model_changes(
        ctrl: InferenceController, fitted_baseline: FraudModel) -> None:
    assert not ctrl.stale  # nothing scored yet
    ctrl.param.trigger("predict")
    assert not ctrl.stale
    ctrl.inputs.feature11 += 1.0
    assert ctrl.stale
    assert "Inputs changed — press <b>Predict</b>" in verdict_html(ctrl.last_prediction, ctrl.stale, None)
    ctrl.param.trigger("predict")
    assert not ctrl.stale
    ctrl.param.trigger("load_clear")  # a new transaction is a change too
    assert ctrl.stale
    ctrl.param.trigger("predict")
    fitted_baseline.save("challenger")
    ctrl.state.param.trigger("models_changed")
    ctrl.model_name = "challenger"
    assert ctrl.stale


def test_the_change_since_the_last_score_is_shown(ctrl: InferenceController) -> None:
    ctrl.param.trigger("predict")
    first = ctrl.last_prediction["fraud_probability"]
    assert ctrl.previous_probability is None
    ctrl.param.trigger("load_fraud")
    ctrl.param.trigger("predict")
    assert ctrl.previous_probability == first
    html = verdict_html(ctrl.last_prediction, ctrl.stale, ctrl.previous_probability)
    assert f"{format_probability(first)} → {format_probability(ctrl.last_prediction['fraud_probability'])}" in html


def test_a_loaded_real_row_shows_its_true_label_until_it_is_edited(ctrl: InferenceController) -> None:
    ctrl.param.trigger("load_fraud")
    ctrl.param.trigger("predict")
    row = ctrl.last_prediction
    assert row["true_label"] == "fraud" and row["row"] == ctrl.sample.row
    assert f"True label: <b>fraud</b> (data set row {ctrl.sample.row:,})" in verdict_html(row, False, None)
    ctrl.inputs.amount += 1.0
    ctrl.param.trigger("predict")
    assert ctrl.last_prediction["true_label"] is None
    assert "True label" not in verdict_html(ctrl.last_prediction, False, None)


def test_the_verdict_follows_the_models_threshold(ctrl: InferenceController, fitted_baseline: FraudModel) -> None:
    ctrl.param.trigger("load_fraud")
    ctrl.param.trigger("predict")
    row = ctrl.last_prediction
    probability = fitted_baseline.predict_proba(pd.DataFrame([ctrl.inputs.values()]))[0]
    assert row["fraud_probability"] == pytest.approx(probability)
    assert row["is_fraud"] == (probability >= fitted_baseline.threshold)


def test_a_failing_prediction_is_notified_and_the_busy_state_resets(
        ctrl: InferenceController, caplog: pytest.LogCaptureFixture) -> None:
    delete_model(MODEL)  # gone behind the tab's back
    with caplog.at_level(logging.ERROR, logger="fraud_app.ui.base"):
        ctrl.save_to_log = True
        ctrl.param.trigger("predict")
    assert "Prediction failed" in caplog.text
    assert count_predictions() == 0 and ctrl.last_prediction is None
    assert ctrl.predicting is False  # the button's loading state is bound to it
    assert ctrl.model_name is None and ctrl.models == [] and not ctrl.can_predict()  # the list was refreshed


# -- the explanation of a clear transaction (issue 16 item 2) ----------------------------------------

def test_tiny_probabilities_are_shown_as_a_bound_not_as_zero() -> None:
    assert format_probability(3.2e-6) == "< 0.0001"
    assert format_probability(0.87) == "0.8700" and format_probability(0.00012) == "0.0001"
    assert format_probability(1 - 1e-6) == "> 0.9999"
    assert (format_probability(0.0), format_probability(1.0)) == ("0", "1")
    row = {"fraud_probability": 3.2e-6, "threshold": 0.0123, "is_fraud": False}
    html = probability_html(row)
    assert "0.0000" not in html and "&lt; 0.0001" in html.replace("< 0.0001", "&lt; 0.0001")


def _explained(contributions: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"feature": [f"feature{i + 1}" for i in range(len(contributions))],
                         "value": np.linspace(-1, 1, len(contributions)), "contribution": contributions})


@pytest.mark.parametrize("scale", [1e-9, 3e-6, 4e-4, 0.02, 0.4])
def test_contribution_axis_is_readable_at_every_scale(scale: float) -> None:
    frame = _explained([scale, -0.5 * scale, 0.2 * scale])
    data, label = contribution_axis(frame)
    largest = data["shown"].abs().max()
    assert 0.01 <= largest < 10, (scale, largest)  # four decimals never round the bars to 0.0000
    assert (np.sign(data["shown"]) == np.sign(data["contribution"])).all()
    assert data["shown"].iloc[-1] == largest  # the largest is drawn on top
    if scale < 0.01:
        exponent = int(np.floor(np.log10(scale)))
        assert data["shown"].to_numpy() == pytest.approx(data["contribution"].to_numpy() * 10.0 ** -exponent)
        assert "in units of 10" in label
    else:
        assert label == "contribution to P(fraud)"
    assert data["exact"].iloc[-1] == f"{scale:+.3g}"  # the hover keeps the exact value
    chart = contributions_chart(frame)
    assert chart.opts.get().kwargs["ylabel"] == label
    assert "xformatter" not in chart.opts.get().kwargs  # no fixed "%.4f" ticks


def test_contributions_in_log_odds_are_drawn_as_they_are() -> None:
    frame = _explained([2.5, -0.3])
    frame.attrs["units"] = "log-odds"
    data, label = contribution_axis(frame)
    assert label == "contribution to the log-odds of fraud" and data["shown"].tolist() == [-0.3, 2.5]


def test_a_clear_transactions_explanation_is_drawn_in_a_readable_unit(
        section: InferenceSection, monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller passes explain()'s frame to the chart untouched; the chart scales tiny contributions."""
    import fraud_app.ui.inference.controller as module

    monkeypatch.setattr(module, "explain", lambda transaction, model, top: _explained([4e-6, -1e-6]))
    ctrl = section.controller
    ctrl.param.trigger("predict")
    assert ctrl.contributions["contribution"].tolist() == [4e-6, -1e-6]
    chart = section.verdict._explanation(ctrl.contributions)
    assert isinstance(chart, OffloopChart) and chart.item is not None
    assert "10⁻⁶" in chart_object(chart.spec).opts.get().kwargs["ylabel"]


# -- models (issue 16 item 1, Inference part) ---------------------------------------------------------

def test_the_empty_store_shows_the_message_and_saves_nothing(caplog: pytest.LogCaptureFixture) -> None:
    section = InferenceSection(state=AppState())
    ctrl = section.controller
    assert ctrl.model_name is None and ctrl.models == [] and ctrl.active_model is None
    assert not ctrl.can_predict()
    with caplog.at_level(logging.ERROR, logger="fraud_app.ui.base"):
        ctrl.param.trigger("predict")
    assert count_predictions() == 0
    assert "No saved model" in caplog.text
    section.__panel__().get_root()  # renders without a model


def test_the_selector_shows_which_model_is_active_and_how(
        ctrl: InferenceController, fitted_baseline: FraudModel) -> None:
    # The first saved model was pinned when it was saved (issue 16 item 1).
    assert (ctrl.active_model, ctrl.active_how) == (MODEL, "first_saved")
    assert ctrl.param.model_name.names == {"baseline (decision_tree) · active (first saved)": MODEL}
    assert "pinned when it was saved" in active_text(ctrl.active_model, ctrl.active_how)
    fitted_baseline.save("challenger")  # saving another model never moves the active one
    ctrl.state.param.trigger("models_changed")
    assert (ctrl.active_model, ctrl.active_how) == (MODEL, "first_saved")
    set_active_model("challenger")
    ctrl.state.param.trigger("models_changed")
    assert (ctrl.active_model, ctrl.active_how) == ("challenger", "explicit")
    assert ctrl.param.model_name.names["challenger (decision_tree) · active (made active)"] == "challenger"
    assert "baseline (decision_tree)" in ctrl.param.model_name.names
    assert "made active explicitly" in active_text(ctrl.active_model, ctrl.active_how)


def test_the_selector_defaults_to_the_active_model_and_refreshes_on_models_changed(
        ctrl: InferenceController, fitted_baseline: FraudModel) -> None:
    assert ctrl.model_name == MODEL
    fitted_baseline.save("challenger")
    assert list(ctrl.param.model_name.names.values()) == [MODEL]
    ctrl.state.param.trigger("models_changed")
    assert set(ctrl.param.model_name.names.values()) == {MODEL, "challenger"}
    assert ctrl.model_name == MODEL  # the selection is kept
    ctrl.state.active_model = "challenger"  # e.g. the Training tab picked it
    assert ctrl.model_name == "challenger"
    ctrl.save_to_log = True
    ctrl.param.trigger("predict")
    assert list_predictions(limit=1)[0]["model"] == "challenger"
    ctrl.model_name = MODEL  # the user's choice is the session's
    assert ctrl.state.active_model == MODEL


def test_a_new_section_picks_the_store_active_model(fitted_baseline: FraudModel, app_env) -> None:
    # Issue 16 item 1 (store rule): the first saved model is pinned as active; a later save does not move it.
    fitted_baseline.save("older")
    fitted_baseline.save("newer")
    assert InferenceSection(state=AppState()).controller.model_name == "older"


# -- saved predictions -----------------------------------------------------------------------------

def test_predictions_saved_elsewhere_appear_on_the_next_poll(ctrl: InferenceController) -> None:
    posted = score_and_save(ctrl.inputs.values(), model=MODEL, source="api")[0]
    assert ctrl.total_predictions == 0
    asyncio.run(ctrl._poll())
    assert ctrl.total_predictions == 1
    assert int(ctrl.predictions["id"].iloc[0]) == posted["id"] and ctrl.predictions["source"].iloc[0] == "api"


def test_a_served_session_polls_and_stops_polling_when_it_ends(
        baseline: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import fraud_app.ui.inference.controller as module

    class FakePoller:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    started: list[tuple] = []
    on_end: list = []
    poller = FakePoller()
    monkeypatch.setattr(module, "_in_server_session", lambda: True)
    monkeypatch.setattr(pn.state, "add_periodic_callback",
                        lambda callback, period: started.append((callback, period)) or poller)
    monkeypatch.setattr(pn.state, "on_session_destroyed", on_end.append)
    ctrl = InferenceSection(state=AppState()).controller
    assert len(started) == 1 and started[0][1] == 2000
    assert started[0][0] == ctrl._poll
    assert len(on_end) == 1
    on_end[0](None)  # the session ends
    assert poller.stopped and ctrl._poller is None


def test_predictions_changed_in_the_session_refreshes_the_table(ctrl: InferenceController) -> None:
    score_and_save(ctrl.inputs.values(), model=MODEL, source="api")
    ctrl.state.param.trigger("predictions_changed")  # e.g. another tab saved predictions
    assert ctrl.total_predictions == 1 and len(ctrl.predictions) == 1


def test_models_saved_by_another_process_appear_on_the_next_poll(
        ctrl: InferenceController, fitted_baseline: FraudModel) -> None:
    fitted_baseline.save("from_cli")  # no models_changed event: another process saved it
    asyncio.run(ctrl._poll())
    assert "from_cli" in ctrl.param.model_name.names.values()
    assert ctrl.model_name == MODEL


def test_the_table_pages_through_the_database_newest_first(baseline: str) -> None:
    ctrl = InferenceSection(state=AppState(), page_size=2).controller
    rows = score_and_save([ctrl.inputs.values()] * 5, model=MODEL, source="api")
    ids = [r["id"] for r in rows][::-1]
    asyncio.run(ctrl._poll())
    assert ctrl.predictions["id"].tolist() == ids[:2]
    assert not ctrl.can_page_newer() and ctrl.can_page_older()
    ctrl.param.trigger("older_page")
    assert ctrl.page == 2 and ctrl.predictions["id"].tolist() == ids[2:4]
    ctrl.param.trigger("older_page")
    assert ctrl.page == 3 and ctrl.predictions["id"].tolist() == ids[4:]
    assert not ctrl.can_page_older() and ctrl.page_count() == 3
    ctrl.param.trigger("older_page")
    assert ctrl.page == 3
    ctrl.param.trigger("newer_page")
    assert ctrl.page == 2 and ctrl.can_page_newer()


# -- batch (issue 16 item 7) ---------------------------------------------------------------------------

def _batch_csv(n: int = 12) -> bytes:
    return load_transactions().iloc[:n].to_csv(index=False).encode()


def _upload(section: InferenceSection, data: bytes, filename: str = "batch.csv") -> None:
    section.batch.file_input.param.update(filename=filename, value=data)  # what the browser sends


@pytest.mark.parametrize(("make", "needle"), [
    (lambda f: f.drop(columns=["feature7"]), "missing column: feature7"),
    (lambda f: f.assign(merchant=1), "unknown column: merchant"),
    (lambda f: f.astype({"amount": str}).assign(amount=["12.5", "abc", *["1"] * (len(f) - 2)]),
     "column amount has non-numeric value(s) in row 2 ('abc')"),
    (lambda f: f.iloc[:0], "no transactions"),
    (None, "empty"),
])
def test_an_invalid_batch_is_refused_with_a_message_naming_the_problem_and_saves_nothing(
        section: InferenceSection, make, needle: str) -> None:
    ctrl = section.controller
    frame = load_transactions().iloc[:6]
    data = b"" if make is None else make(frame).to_csv(index=False).encode()
    _upload(section, data)
    assert ctrl.batch_frame is None and ctrl.batch_filename == "batch.csv"
    assert needle in ctrl.batch_error and any(needle in p for p in ctrl.batch_problems)
    assert not ctrl.can_score_batch()
    ctrl.param.trigger("score_batch")
    assert count_predictions() == 0 and ctrl.batch_result is None


def test_every_problem_of_a_file_is_listed_in_one_pass_with_the_help(section: InferenceSection) -> None:
    ctrl = section.controller
    frame = load_transactions().iloc[:6].drop(columns=["feature7"]).astype({"amount": str})
    frame["amount"] = ["1", "x", "2", "3", "4", "5"]
    _upload(section, frame.to_csv(index=False).encode())
    assert ctrl.batch_problems == ["missing column: feature7", "column amount has non-numeric value(s) in row 2 ('x')"]
    assert ctrl.batch_problem_count == 2
    text = problems_markdown(ctrl.batch_problems, ctrl.batch_problem_count)
    assert "2 problems found" in text and "- missing column: feature7" in text
    assert "the first 12 listed" in problems_markdown(["p"] * 12, 40)
    # The format help stays on screen with the error.
    help_panes = [p for p in section.batch.__panel__().objects if getattr(p, "object", None) == BATCH_HELP]
    assert len(help_panes) == 1 and help_panes[0].visible


def test_a_semicolon_separated_file_is_read_and_said_so(section: InferenceSection) -> None:
    ctrl = section.controller
    data = load_transactions().iloc[:5].to_csv(index=False, sep=";", decimal=",").encode()
    _upload(section, data, "export.csv")
    assert ctrl.batch_error is None and len(ctrl.batch_frame) == 5 and ctrl.can_score_batch()
    assert "read as semicolon-separated" in batch_status("export.csv", ctrl.batch_frame, None, None, MODEL)


def test_a_valid_batch_is_scored_saved_as_batch_sorted_by_risk_and_offered_as_csv(
        section: InferenceSection) -> None:
    ctrl = section.controller
    frame = load_transactions()
    source = pd.concat([frame[frame[TARGET] == 0].head(30), frame[frame[TARGET] == 1].head(10)])  # frauds last
    _upload(section, source.to_csv(index=False).encode(), "march.csv")
    assert ctrl.batch_error is None and len(ctrl.batch_frame) == 40 and ctrl.can_score_batch()
    ctrl.param.trigger("score_batch")
    stored = list_predictions(limit=100)
    assert len(stored) == 40 and {r["source"] for r in stored} == {"batch"}
    by_id = sorted(stored, key=lambda r: r["id"])
    for (_, expected), row in zip(source.iterrows(), by_id, strict=True):
        assert row["features"] == pytest.approx(expected[MODEL_FEATURES].astype(float).to_dict())
    # Highest P(fraud) first, in the table and in the file.
    result = ctrl.batch_result
    assert len(result) == 40 and result["fraud_probability"].is_monotonic_decreasing
    assert result["fraud_probability"].nunique() > 1 and not result["id"].is_monotonic_increasing
    downloaded = pd.read_csv(ctrl.scored_file())
    assert ctrl.download_name == "march-scored.csv"
    assert downloaded["id"].tolist() == result["id"].tolist()
    assert set(downloaded.columns) >= {"id", "fraud_probability", "is_fraud", "threshold", *MODEL_FEATURES}
    # The batch is consumed: pressing again saves nothing more; the log shows the rows.
    assert not ctrl.can_score_batch()
    ctrl.param.trigger("score_batch")
    assert count_predictions() == 40
    assert ctrl.total_predictions == 40 and set(ctrl.predictions["source"]) == {"batch"}


def test_the_template_csv_is_a_valid_batch_holding_the_reference_transaction(ctrl: InferenceController) -> None:
    parsed = parse_batch_csv(ctrl.template_file().getvalue())
    assert parsed.iloc[0].to_dict() == pytest.approx(_clear_medians(), abs=1e-12)


def test_a_batch_failing_at_scoring_saves_nothing_and_resets_the_busy_state(
        section: InferenceSection, caplog: pytest.LogCaptureFixture) -> None:
    ctrl = section.controller
    _upload(section, _batch_csv(5))
    delete_model(MODEL)
    with caplog.at_level(logging.ERROR, logger="fraud_app.ui.base"):
        ctrl.param.trigger("score_batch")
    assert "Batch scoring failed" in caplog.text
    assert count_predictions() == 0 and "nothing was saved" in ctrl.batch_error
    assert ctrl.batch_busy is False


def test_the_section_renders(section: InferenceSection) -> None:
    section.controller.param.trigger("predict")
    root = section.__panel__().get_root()
    assert root is not None
    assert not np.isnan(section.controller.last_prediction["fraud_probability"])
