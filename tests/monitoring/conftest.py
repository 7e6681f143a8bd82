"""Fixtures of the monitoring tests: the storage/API fixtures of ``tests/api`` and a model with a reference."""

from __future__ import annotations

import pytest

from tests.api.conftest import (  # noqa: F401 - fixtures
    _api_server,
    _database,
    _reset_process_state,
    api,
    database,
    database_postgres,
    fitted_tree,
    sample_rows,
)


@pytest.fixture(autouse=True)
def _forget_references():
    yield
    from fraud_app.monitoring.aggregates import clear_reference_cache

    clear_reference_cache()


@pytest.fixture(scope="session")
def synthetic_frame():
    from fraud_app.data import make_synthetic

    return make_synthetic(6000, 0.03, 5)


@pytest.fixture
def monitored_model(synthetic_frame, app_env) -> str:
    """A decision tree trained by the pipeline (so it carries a training reference), saved as ``"mon"``."""
    from fraud_app.training.pipeline import TrainingPipeline

    TrainingPipeline("decision_tree", {"max_depth": 4}, name="mon", save=True, seed=0).run(synthetic_frame)
    return "mon"
