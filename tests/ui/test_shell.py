"""The app shell: section registry, FraudApp assembly, deferred loading and error handling."""

from __future__ import annotations

import logging

import panel as pn
import param
import pytest

from fraud_app.data import DataNotFoundError
from fraud_app.ui import base
from fraud_app.ui.app import FraudApp, create_app
from fraud_app.ui.base import (
    Section,
    busy,
    catch_and_notify,
    discover_sections,
    register_section,
    registered_sections,
)
from fraud_app.ui.state import AppState

EXPECTED_TITLES = ["Exploratory Data Analysis", "Training", "Inference", "Monitoring"]


def test_the_sections_register_in_order() -> None:
    discover_sections()
    titles = [cls.title for cls in registered_sections()]
    assert titles[:4] == EXPECTED_TITLES


def test_adding_a_tab_is_one_class_and_one_registration(section_registry: dict) -> None:
    @register_section
    class AuditSection(Section):
        title = "Audit"
        icon = "✓"
        order = 99

        def __init__(self, **params) -> None:
            super().__init__(**params)
            self._layout = pn.pane.Markdown("audit log")

        def __panel__(self) -> pn.viewable.Viewable:
            return self._layout

    app = FraudApp()
    labels = [label for label in app._tabs._names]
    assert labels[-1] == "✓ Audit"
    app.build_all()
    assert [type(s).__name__ for s in app.sections][-1] == "AuditSection"
    # The new section shares the session state with the others.
    assert app.sections[-1].state is app.state is app.sections[0].state


def test_register_section_rejects_non_sections(section_registry: dict) -> None:
    with pytest.raises(TypeError, match="Section subclass"):
        register_section(int)  # type: ignore[arg-type]


def test_unregister_removes_the_tab(section_registry: dict) -> None:
    @register_section
    class Temporary(Section):
        title = "Temporary"

        def __panel__(self) -> pn.viewable.Viewable:
            return pn.pane.Markdown("x")

    assert Temporary in registered_sections()
    base.unregister_section(Temporary)
    assert Temporary not in registered_sections()


def test_create_app_builds_three_tabs_and_loads_the_data() -> None:
    app = create_app()
    assert isinstance(app, FraudApp)
    assert app._tabs._names == [cls.label() for cls in app._classes]
    assert isinstance(app.__panel__(), pn.template.BaseTemplate)
    # Outside a server the data set is loaded at once: the synthetic data set is in the state.
    assert app.state.dataset is not None and len(app.state.dataset) == 20_000
    assert app.state.dataset_info.frauds == 200
    assert "20,000 transactions" in app.data_card_text()
    assert [s.title for s in app.build_all()] == EXPECTED_TITLES
    assert all(holder[0] is section.__panel__() for holder, section in zip(app._holders, app.sections, strict=True))


def test_a_tab_is_built_on_its_first_visit() -> None:
    app = FraudApp(use_template=False)
    assert [s.title for s in app.sections] == EXPECTED_TITLES[:1]
    assert len(app._holders[2]) == 0
    app.active = 2
    assert [s.title for s in app.sections] == [EXPECTED_TITLES[0], EXPECTED_TITLES[2]]
    inference = app.sections[1]
    assert app._holders[2][0] is inference.__panel__()
    app.active = 0
    app.active = 2
    assert app.sections[1] is inference  # built once, kept


def test_the_tab_opened_at_start_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a browser session a tab opened by the URL is built with the page, not again in the worker."""
    offloaded: list = []
    monkeypatch.setattr("fraud_app.ui.app.in_server_session", lambda: True)
    monkeypatch.setattr("fraud_app.ui.app.run_off_loop", lambda func, then: offloaded.append(func))
    app = FraudApp(use_template=False, active=2)
    assert [s.title for s in app.sections] == [EXPECTED_TITLES[2]]
    assert offloaded == []
    # The URL's tab reaches `active` while the page is being built (Location.sync): no worker build then.
    app._ready = False
    app.active = 0
    assert offloaded == []
    app._ready = True
    app.active = 1  # a later visit to another tab is built in the worker
    assert len(offloaded) == 1 and offloaded[0].func.title == EXPECTED_TITLES[1]


def test_a_session_shares_the_process_wide_data_set_info() -> None:
    first, second = FraudApp(use_template=False), FraudApp(use_template=False)
    assert first.state.dataset is second.state.dataset
    assert first.state.dataset_info is second.state.dataset_info


def test_sections_are_per_instance() -> None:
    first, second = FraudApp(), FraudApp()
    first.build_all()
    second.build_all()
    assert first.state is not second.state
    for a, b in zip(first.sections, second.sections, strict=True):
        assert a is not b


def test_embedded_app_has_no_template() -> None:
    app = FraudApp(use_template=False)
    assert isinstance(app.__panel__(), pn.Column)


def test_active_tab_is_linked_both_ways() -> None:
    app = FraudApp(use_template=False)
    app.active = 2
    assert app._tabs.active == 2
    app._tabs.active = 1
    assert app.active == 1


def test_failed_load_is_logged_and_shown(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> None:
        raise DataNotFoundError("data set not found at /nowhere/creditcard.parquet")

    monkeypatch.setattr("fraud_app.data.service.current_dataset", missing)  # what AppState.load_dataset opens
    shown: list[str] = []

    class Notifications:
        def error(self, message: str, duration: int = 0) -> None:
            shown.append(message)

    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: Notifications()))
    logger = logging.getLogger("fraud_app")
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr("fraud_app.ui.state.prepare_dataset", missing)
    monkeypatch.setattr("fraud_app.ui.app.prepare_dataset", missing)
    monkeypatch.setattr("fraud_app.ui.app.dataset_ready", lambda: False)
    with caplog.at_level(logging.ERROR, logger="fraud_app"):
        app = FraudApp()
    assert app._holders[0][0] is app.sections[0].__panel__()
    assert app.state.dataset is None
    assert "/nowhere/creditcard.parquet" in app.state.dataset_error
    assert shown and "Could not load the data set" in shown[0] and "/nowhere" in shown[0]
    assert any("Could not load the data set" in r.getMessage() for r in caplog.records)
    assert "Not loaded" in app.data_card_text()
    assert "could not be loaded" in app.sections[0].header_html()


def test_busy_resets_after_an_exception() -> None:
    button = pn.widgets.Button(name="Go")
    with pytest.raises(RuntimeError), busy(button, attribute="disabled"):
        assert button.disabled is True
        raise RuntimeError("boom")
    assert button.disabled is False


def test_catch_and_notify_logs_and_returns_none(caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("fraud_app"), "propagate", True)

    @catch_and_notify("Scoring failed")
    def callback() -> int:
        raise ValueError("bad amount")

    with caplog.at_level(logging.ERROR, logger="fraud_app"):
        assert callback() is None
    assert any("Scoring failed" in r.getMessage() and "bad amount" in r.getMessage()
               for r in caplog.records)


def test_state_outputs_are_constant() -> None:
    state = AppState()
    with pytest.raises(TypeError, match="(?i)constant parameter"):
        state.dataset_error = "edited from outside"
    state.set_training_result({"f1": 0.8})
    assert state.training_result == {"f1": 0.8}
    events: list[str] = []
    state.param.watch(lambda e: events.append(e.name), ["models_changed", "predictions_changed"])
    state.param.trigger("models_changed")
    state.predictions_changed = True
    assert events == ["models_changed", "predictions_changed"]


def test_every_parameter_is_documented() -> None:
    discover_sections()
    classes = [AppState, FraudApp, *registered_sections()]
    for cls in classes:
        for name, parameter in cls.param.objects("existing").items():
            if name == "name" or parameter.owner in (param.Parameterized, pn.viewable.Viewer,
                                                     pn.viewable.Viewable, pn.viewable.Layoutable):
                continue
            if parameter.owner.__module__.startswith("fraud_app"):
                assert parameter.doc, f"{cls.__name__}.{name} has no doc"
