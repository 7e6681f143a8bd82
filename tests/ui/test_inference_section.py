"""The Inference tab without a browser: build the section, trigger its Events, check the database."""

from __future__ import annotations

import asyncio
import io
import logging
import math

import numpy as np
import pandas as pd
import panel as pn
import pytest

from fraud_app.data import MODEL_FEATURES, TARGET, load_transactions
from fraud_app.inference import score_and_save
from fraud_app.inference.reference import FROZEN_FEATURES, SLIDER_FEATURES, reference_data
from fraud_app.models import FraudModel, create, delete_model
from fraud_app.storage import count_predictions, list_predictions
from fraud_app.ui.inference import NO_MODEL_MESSAGE, InferenceSection
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


def _clear_medians() -> dict[str, float]:
    frame = load_transactions()
    return frame.loc[frame[TARGET] == 0, MODEL_FEATURES].median().to_dict()


def _slider(section: InferenceSection, label: str) -> pn.widgets.EditableFloatSlider:
    """The slider the user sees with this label."""
    matches = [s for s in section.slider_widgets if s.label == label or s.name == label]
    assert len(matches) == 1, f"expected one slider labelled {label!r}, found {len(matches)}"
    return matches[0]


# -- the transaction ------------------------------------------------------------------------------

def test_inputs_start_at_the_reference_transaction_the_clear_class_medians(section: InferenceSection) -> None:
    medians = _clear_medians()
    values = section.inputs.values()
    assert list(values) == MODEL_FEATURES
    for column in MODEL_FEATURES:
        assert values[column] == pytest.approx(medians[column], abs=1e-12), column
    assert "reference transaction" in section.origin and not section.edited


def test_the_sliders_are_labelled_with_their_columns_and_take_their_ranges_from_percentiles(
        section: InferenceSection) -> None:
    assert [s.label for s in section.slider_widgets] == ["feature11", "feature13", "feature15", "amount"]
    assert [s.name for s in section.slider_widgets] == list(SLIDER_FEATURES)
    frame = load_transactions()
    for slider in section.slider_widgets:
        column = slider.name
        low, high = np.percentile(frame[column], [0.5, 99.5])
        assert slider.start <= low < slider.start + slider.step + 1e-9, column
        assert slider.end - slider.step - 1e-9 < high <= slider.end, column
        # Far narrower than the raw min/max: the extreme tails are off the slider.
        assert slider.end - slider.start < frame[column].max() - frame[column].min()


@pytest.mark.parametrize("label", ["feature11", "feature13", "feature15", "amount"])
def test_moving_a_slider_changes_only_its_own_column_in_the_scored_transaction(
        section: InferenceSection, label: str) -> None:
    """The template's off-by-one: the slider labelled featureN must write featureN, nothing else."""
    reference = section.inputs.values()
    slider = _slider(section, label)
    new_value = round(slider.start + 0.8 * (slider.end - slider.start), 3)
    assert new_value != pytest.approx(reference[label])
    slider.value = new_value  # what dragging the slider does
    section.param.trigger("predict")
    stored = list_predictions(limit=1)[0]["features"]
    changed = {c for c in MODEL_FEATURES if stored[c] != pytest.approx(reference[c], abs=1e-12)}
    assert changed == {label}
    assert stored[label] == pytest.approx(new_value)
    assert section.edited


def test_predict_writes_exactly_one_row_with_the_inputs_and_source_ui(section: InferenceSection) -> None:
    section.param.trigger("load_fraud")
    section.inputs.amount = 123.45
    expected = section.inputs.values()
    before = count_predictions()
    section.param.trigger("predict")
    assert count_predictions() == before + 1
    row = list_predictions(limit=1)[0]
    assert row["source"] == "ui"
    assert row["model"] == MODEL
    assert row["features"] == pytest.approx(expected)
    assert section.last_prediction["id"] == row["id"]
    # The verdict and the bar show that row.
    verdict = "Fraudulent" if row["is_fraud"] else "Clear"
    assert verdict in section._verdict.object and f"#{row['id']}" in section._verdict.object
    assert f"{row['threshold']:.4f}" in section._probability.object
    # The contributions chart explains this transaction with the model's own contributions.
    assert list(section.contributions.columns) == ["feature", "value", "contribution"]
    assert section._chart_box.visible and section._chart.object is not None
    # The table was refreshed after the run: the new row is on top.
    assert int(section.predictions["id"].iloc[0]) == row["id"]
    assert section.predictions["source"].iloc[0] == "ui"
    assert section.total_predictions == before + 1


def test_the_verdict_follows_the_models_threshold(section: InferenceSection, fitted_baseline: FraudModel) -> None:
    section.param.trigger("load_fraud")
    section.param.trigger("predict")
    row = section.last_prediction
    probability = fitted_baseline.predict_proba(pd.DataFrame([section.inputs.values()]))[0]
    assert row["fraud_probability"] == pytest.approx(probability)
    assert row["is_fraud"] == (probability >= fitted_baseline.threshold)


def test_random_real_transactions_come_from_the_data_set(section: InferenceSection) -> None:
    frame = load_transactions()
    for event, label in (("load_fraud", 1), ("load_clear", 0)):
        section.param.trigger(event)
        values = section.inputs.values()
        row = section.sample.row
        assert frame[TARGET].iat[row] == label == section.sample.is_fraud
        assert f"row {row:,}" in section.origin
        assert values == pytest.approx(frame.loc[row, MODEL_FEATURES].astype(float).to_dict())
        for slider in section.slider_widgets:  # a slider widens to hold an out-of-range real value
            assert slider.start <= slider.value <= slider.end
    # Seeded per session: the same seed draws the same transactions.
    other = InferenceSection(state=AppState(), seed=7)
    other.param.trigger("load_fraud")
    again = InferenceSection(state=AppState(), seed=7)
    again.param.trigger("load_fraud")
    assert other.inputs.values() == again.inputs.values()
    section.param.trigger("load_reference")
    assert section.inputs.values() == pytest.approx(_clear_medians())
    assert section.sample is None


def test_frozen_inputs_are_read_only_until_unfrozen(section: InferenceSection) -> None:
    widgets = {w.name: w for w in section.frozen_widgets}
    assert list(widgets) == list(FROZEN_FEATURES) and len(widgets) == 25
    assert all(w.disabled for w in widgets.values())
    section.unfrozen = ["feature4"]
    assert not widgets["feature4"].disabled
    assert all(w.disabled for name, w in widgets.items() if name != "feature4")
    widgets["feature4"].value = 3.5  # typing into the unfrozen box
    section.param.trigger("predict")
    assert list_predictions(limit=1)[0]["features"]["feature4"] == 3.5
    section.unfrozen = []
    assert widgets["feature4"].disabled


def test_the_reference_is_computed_once_per_process(baseline: str) -> None:
    from fraud_app.inference import reference

    reference_data()
    before = reference.compute_count
    for _ in range(3):
        InferenceSection(state=AppState())
    assert reference.compute_count == before


# -- models -----------------------------------------------------------------------------------------

def test_the_empty_store_shows_the_message_and_saves_nothing(caplog: pytest.LogCaptureFixture) -> None:
    section = InferenceSection(state=AppState())
    assert section.model_name is None and section.models == []
    assert section._no_model.visible
    assert "Training" in section._no_model.object and section._no_model.object == NO_MODEL_MESSAGE
    assert section._predict_button.disabled
    with caplog.at_level(logging.ERROR, logger="fraud_app.ui.base"):
        section.param.trigger("predict")
    assert count_predictions() == 0
    assert "No saved model" in caplog.text
    section.__panel__().get_root()  # renders without a model


def test_the_selector_defaults_to_the_active_model_and_refreshes_on_models_changed(
        section: InferenceSection, fitted_baseline: FraudModel) -> None:
    assert section.model_name == MODEL
    fitted_baseline.save("challenger")
    assert list(section.param.model_name.objects.values()) == [MODEL]
    section.state.param.trigger("models_changed")
    assert set(section.param.model_name.objects.values()) == {MODEL, "challenger"}
    assert section.model_name == MODEL  # the selection is kept
    section.state.active_model = "challenger"  # e.g. the Training tab picked it
    assert section.model_name == "challenger"
    section.param.trigger("predict")
    assert list_predictions(limit=1)[0]["model"] == "challenger"


def test_a_new_section_picks_the_store_active_model(fitted_baseline: FraudModel, app_env) -> None:
    # Issue 16 item 1 (store rule): the first saved model is pinned as active; a later save does not move it.
    fitted_baseline.save("older")
    fitted_baseline.save("newer")
    assert InferenceSection(state=AppState()).model_name == "older"


def test_a_failing_prediction_is_notified_and_the_busy_state_resets(
        section: InferenceSection, caplog: pytest.LogCaptureFixture) -> None:
    delete_model(MODEL)  # gone behind the tab's back
    with caplog.at_level(logging.ERROR, logger="fraud_app.ui.base"):
        section.param.trigger("predict")
    assert "Prediction failed" in caplog.text
    assert count_predictions() == 0
    assert section._predict_button.loading is False and section._verdict.loading is False
    assert section.model_name is None and section._no_model.visible  # the list was refreshed


# -- saved predictions ----------------------------------------------------------------------------

def test_predictions_saved_elsewhere_appear_on_the_next_poll(section: InferenceSection) -> None:
    posted = score_and_save(section.inputs.values(), model=MODEL, source="api")[0]
    assert section.total_predictions == 0
    asyncio.run(section._poll())
    assert section.total_predictions == 1
    assert int(section.predictions["id"].iloc[0]) == posted["id"]
    assert section.predictions["source"].iloc[0] == "api"


def test_a_served_session_polls_and_stops_polling_when_it_ends(
        baseline: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import fraud_app.ui.inference as module

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
    section = InferenceSection(state=AppState())
    assert len(started) == 1 and started[0][1] == 2000
    assert started[0][0] == section._poll
    assert len(on_end) == 1
    on_end[0](None)  # the session ends
    assert poller.stopped and section._poller is None


def test_predictions_changed_in_the_session_refreshes_the_table(section: InferenceSection) -> None:
    score_and_save(section.inputs.values(), model=MODEL, source="api")
    section.state.param.trigger("predictions_changed")  # e.g. another tab saved predictions
    assert section.total_predictions == 1 and len(section.predictions) == 1


def test_models_saved_by_another_process_appear_on_the_next_poll(
        section: InferenceSection, fitted_baseline: FraudModel) -> None:
    fitted_baseline.save("from_cli")  # no models_changed event: another process saved it
    asyncio.run(section._poll())
    assert "from_cli" in section.param.model_name.objects.values()
    assert section.model_name == MODEL


def test_the_table_pages_through_the_database_newest_first(baseline: str) -> None:
    section = InferenceSection(state=AppState(), page_size=2)
    rows = score_and_save([section.inputs.values()] * 5, model=MODEL, source="api")
    ids = [r["id"] for r in rows][::-1]
    asyncio.run(section._poll())
    assert section.predictions["id"].tolist() == ids[:2]
    assert section._newer_button.disabled and not section._older_button.disabled
    section.param.trigger("older_page")
    assert section.page == 2 and section.predictions["id"].tolist() == ids[2:4]
    section.param.trigger("older_page")
    assert section.page == 3 and section.predictions["id"].tolist() == ids[4:]
    assert section._older_button.disabled
    section.param.trigger("older_page")
    assert section.page == 3
    section.param.trigger("newer_page")
    assert section.page == 2
    assert "of 3" in section._pager.object and "5 saved predictions" in section._pager.object


# -- batch ------------------------------------------------------------------------------------------

def _batch_csv(n: int = 12) -> bytes:
    frame = load_transactions().iloc[:n]
    return frame.to_csv(index=False).encode()


def _upload(section: InferenceSection, data: bytes, filename: str = "batch.csv") -> None:
    section._file_input.param.update(filename=filename, value=data)  # what the browser sends


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
    frame = load_transactions().iloc[:6]
    data = b"" if make is None else make(frame).to_csv(index=False).encode()
    _upload(section, data)
    assert section.batch_frame is None
    assert needle in section.batch_error
    assert section._batch_alert.visible and needle in section._batch_alert.object.replace("&#x27;", "'")
    assert section._score_batch_button.disabled
    section.param.trigger("score_batch")
    assert count_predictions() == 0
    assert not section._download.visible


def test_a_valid_batch_is_scored_saved_as_batch_and_offered_as_csv(section: InferenceSection) -> None:
    _upload(section, _batch_csv(12), "march.csv")
    assert section.batch_error is None and len(section.batch_frame) == 12
    assert not section._score_batch_button.disabled
    section.param.trigger("score_batch")
    stored = list_predictions(limit=50)
    assert len(stored) == 12 and {r["source"] for r in stored} == {"batch"}
    source = load_transactions().iloc[:12]
    by_id = sorted(stored, key=lambda r: r["id"])
    for (_, expected), row in zip(source.iterrows(), by_id, strict=True):
        assert row["features"] == pytest.approx(expected[MODEL_FEATURES].astype(float).to_dict())
    assert len(section.batch_result) == 12 and section._batch_box.objects == [section._batch_table]
    assert len(section._batch_table.value) == 12
    # Offered as a CSV: one line per stored row, with the ids and the verdicts.
    assert section._download.visible and section._download.filename == "march-scored.csv"
    downloaded = pd.read_csv(io.BytesIO(section.batch_download().getvalue()))
    assert sorted(downloaded["id"]) == [r["id"] for r in by_id]
    assert set(downloaded.columns) >= {"id", "fraud_probability", "is_fraud", "threshold", *MODEL_FEATURES}
    assert downloaded["fraud_probability"].tolist() == pytest.approx([r["fraud_probability"] for r in by_id])
    # The batch is consumed: pressing again saves nothing more; the table shows the rows.
    assert section._score_batch_button.disabled
    section.param.trigger("score_batch")
    assert count_predictions() == 12
    assert section.total_predictions == 12 and set(section.predictions["source"]) == {"batch"}


def test_a_batch_failing_at_scoring_saves_nothing_and_resets_the_busy_state(
        section: InferenceSection, caplog: pytest.LogCaptureFixture) -> None:
    _upload(section, _batch_csv(5))
    delete_model(MODEL)
    with caplog.at_level(logging.ERROR, logger="fraud_app.ui.base"):
        section.param.trigger("score_batch")
    assert "Batch scoring failed" in caplog.text
    assert count_predictions() == 0 and "nothing was saved" in section.batch_error
    assert section._score_batch_button.loading is False and section._batch_box.loading is False


def test_the_section_renders(section: InferenceSection) -> None:
    section.param.trigger("predict")
    root = section.__panel__().get_root()
    assert root is not None
    assert not math.isnan(section.last_prediction["fraud_probability"])
