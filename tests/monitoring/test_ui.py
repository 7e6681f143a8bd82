"""The Monitoring tab without a browser: drive its controller, assert on its Parameters and the database."""

from __future__ import annotations

import asyncio

import panel as pn
import pytest

from fraud_app.data import MODEL_FEATURES, make_synthetic


@pytest.fixture(autouse=True)
def reset_panel_state():
    with pn.config.set(sizing_mode=None, notifications=False):
        yield
    pn.state.reset()
    pn.state.clear_caches()


@pytest.fixture
def scored(database, monitored_model):
    from fraud_app.inference import score_and_save

    return score_and_save(make_synthetic(300, 0.2, 8)[MODEL_FEATURES], model=monitored_model, source="api")


def test_the_tab_is_registered_fourth_and_its_controller_holds_no_widgets(database):
    from fraud_app.ui.base import discover_sections, registered_sections
    from fraud_app.ui.monitoring import MonitoringController, MonitoringSection

    discover_sections()
    titles = [cls.title for cls in registered_sections()]
    assert titles.index("Monitoring") == 3 and MonitoringSection in registered_sections()
    ctrl = MonitoringController()
    assert not any(isinstance(getattr(ctrl, name), pn.viewable.Viewable) for name in ctrl.param)


def test_building_the_section_does_no_io(database, monkeypatch):
    from fraud_app.monitoring import report
    from fraud_app.ui.monitoring import MonitoringSection

    def fail(*args, **kwargs):
        raise AssertionError("the section read the database while being built")

    monkeypatch.setattr(report, "monitoring_report", fail)
    monkeypatch.setattr(pn.state, "onload", lambda callback: None)
    section = MonitoringSection()
    assert section.controller.report is None


def test_labels_through_the_controller_update_the_queue_the_figures_and_the_inference_table(scored):
    from fraud_app.storage import get_prediction
    from fraud_app.ui.inference import InferenceController
    from fraud_app.ui.monitoring import MonitoringController
    from fraud_app.ui.monitoring.views import alerts_html, figures_html

    ctrl = MonitoringController(queue_size=5)
    asyncio.run(ctrl.refresh_now())
    report = ctrl.report
    assert ctrl.error is None and report["model"] == "mon"
    assert report["labels"] == {"fraud": 0, "legitimate": 0, "unlabeled": 300}
    queue = ctrl.queue
    assert len(queue) == 5 and list(queue["fraud_probability"]) == sorted(queue["fraud_probability"], reverse=True)
    assert queue["fraud_probability"].iloc[0] == max(row["fraud_probability"] for row in scored)
    assert all(top.count("feature") + top.count("amount") >= 1 for top in queue["top_contributions"])
    assert "Realized precision" in figures_html(report) and "No alerts" in alerts_html(report) or report["alerts"]

    first, second = int(queue["id"].iloc[0]), int(queue["id"].iloc[1])
    row = asyncio.run(ctrl.label(first, "fraud"))
    assert row["label"] == "fraud" and row["labeled_by"] == "ui"
    asyncio.run(ctrl.label(second, "legitimate"))
    assert get_prediction(first)["label"] == "fraud"
    assert first not in set(ctrl.queue["id"]) and second not in set(ctrl.queue["id"])
    assert ctrl.report["labels"] == {"fraud": 1, "legitimate": 1, "unlabeled": 298}
    flagged = {r["id"]: r["is_fraud"] for r in scored}
    expected = 1 / (flagged[first] + flagged[second]) if flagged[first] and flagged[first] + flagged[second] else None
    if flagged[first] or flagged[second]:
        assert ctrl.report["realized"]["precision"] == pytest.approx(expected if flagged[first] else 0.0)
    assert ctrl.report["realized"]["recall"] == (1.0 if flagged[first] else 0.0)
    assert "mon-precision" in figures_html(ctrl.report)

    inference = InferenceController()
    asyncio.run(inference.refresh_predictions())
    table = inference.predictions
    assert "label" in table.columns
    assert table.set_index("id").loc[first, "label"] == "fraud"
    assert table.set_index("id").loc[second, "label"] == "legitimate"


def test_a_model_without_reference_says_retrain_and_no_model_says_train(database, fitted_tree):
    from fraud_app.ui.monitoring import MonitoringController
    from fraud_app.ui.monitoring.views import alerts_html, status_text

    ctrl = MonitoringController()
    asyncio.run(ctrl.refresh_now())
    assert ctrl.report is None and "train one first" in ctrl.error
    assert "train one first" in status_text(None, ctrl.error, "", False)
    fitted_tree.save("old", overwrite=True)
    asyncio.run(ctrl.refresh_now())
    assert ctrl.error is None and ctrl.report["reference"] is False
    assert "no reference: retrain" in alerts_html(ctrl.report)
    assert ctrl.param.model.objects == [None, "old"]


def test_the_charts_are_drawn_from_the_report(scored):
    from fraud_app.ui.charts import chart_object
    from fraud_app.ui.monitoring import MonitoringSection

    section = MonitoringSection()
    asyncio.run(section.controller.refresh_now())
    charts = section.charts
    assert charts.volume.spec is not None and charts.psi.spec is not None and charts.scores.spec is not None
    assert charts.psi.drawn == charts.psi.spec  # drawn at once outside a server
    psi = chart_object(charts.psi.spec)
    assert "HLine" in repr(psi)  # the alert threshold is drawn
    assert section.on_screen() is True


def test_the_training_tab_option_adds_labeled_predictions(scored):
    from fraud_app.storage import set_label
    from fraud_app.ui.state import AppState
    from fraud_app.ui.training.controller import TrainingController
    from fraud_app.ui.training.feedback import FeedbackOption, result_text

    for row in scored[:4]:
        set_label(row["id"], "fraud", "test")
    ctrl = TrainingController(state=AppState(), save=False)
    option = FeedbackOption(controller=ctrl)
    assert ctrl.make_pipeline().feedback is None
    option.enabled = True
    pipeline = ctrl.make_pipeline()
    assert callable(pipeline.feedback)  # read in the training thread, not here
    from fraud_app.data import make_synthetic

    result = pipeline.run(make_synthetic(3000, 0.05, 1))
    assert result.feedback_rows == 4
    assert "**4** labeled predictions" in result_text(result, True)


def test_the_review_queue_table_sends_only_a_valid_click_on_a_shown_row_to_the_controller():
    from fraud_app.ui.monitoring.views import ReviewQueueTable, queue_rows
    from fraud_app.ui.monitoring.controller import queue_frame

    frame = queue_frame([{"id": 7, "created_at": "2026-11-30T01:02:03.456+00:00", "source": "api",
                          "fraud_probability": 0.912345678, "is_fraud": True, "features": {}}], model="missing")
    rows = queue_rows(frame)
    assert rows[0]["id"] == 7 and rows[0]["fraud_probability"] == "0.91235"
    assert rows[0]["created_at"] == "2026-11-30 01:02:03" and rows[0]["verdict"] == "Fraudulent"
    assert queue_rows(None) == []

    calls: list[tuple[int, str]] = []

    async def on_label(prediction_id: int, label: str) -> None:
        calls.append((prediction_id, label))

    table = ReviewQueueTable(rows=rows, on_label=on_label)
    assert "on_label" not in table.get_root().data.properties_with_values()  # a callback never goes to the browser
    for msg in ({"id": 7, "label": "fraud"}, {"id": "7", "label": "legitimate"}, {"id": 8, "label": "fraud"},
                {"id": 7, "label": "maybe"}, {"id": None, "label": "fraud"}, ["not", "a", "dict"]):
        asyncio.run(table._handle_msg(msg))
    assert calls == [(7, "fraud"), (7, "legitimate")]


def test_the_monitoring_charts_draw_on_the_axes_their_data_needs():
    import holoviews as hv
    import pandas as pd
    from bokeh.models import FactorRange, LogScale

    from fraud_app.data import MODEL_FEATURES
    from fraud_app.ui.charts import chart_object
    from fraud_app.ui.monitoring.charts import SHARE_FLOOR, psi_spec, scores_spec, volume_spec

    hv.extension("bokeh")
    edges = [i / 20 for i in range(21)]
    report = {
        "since": "2026-11-23T02:00:00Z", "until": "2026-11-30T03:00:00Z",
        "volume": [{"bucket": "2026-11-30T02:00:00Z", "source": "api", "count": 2000, "flagged": 40}],
        "score_histogram": {"edges": edges, "live": [0.99, 0.0] + [0.01 / 17] * 17 + [0.0],
                            "reference": [0.998] + [0.002 / 18] * 18 + [0.0]},
        "psi": {name: 0.01 * i for i, name in enumerate(MODEL_FEATURES)}, "thresholds": {"psi": 0.25},
    }
    scores = hv.render(chart_object(scores_spec(report)))
    # Grouped bars need a categorical axis (with numeric bins the chart came out empty), on a log scale.
    assert isinstance(scores.x_range, FactorRange) and scores.x_range.factors[0] == ("0.00-0.05", "live")
    assert isinstance(scores.y_scale, LogScale) and scores.y_range.start == SHARE_FLOOR
    psi = hv.render(chart_object(psi_spec(report)))
    assert list(psi.x_range.factors) == MODEL_FEATURES  # the threshold's label adds no category
    volume = hv.render(chart_object(volume_spec(report)))
    for child in volume.children:  # one bucket still gets the whole window as its time axis
        plot = child[0]
        assert (plot.x_range.start, plot.x_range.end) == (pd.Timestamp("2026-11-23 02:00"),
                                                          pd.Timestamp("2026-11-30 03:00"))
