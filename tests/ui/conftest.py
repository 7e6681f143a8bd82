"""UI test fixtures: a clean ``pn.state`` and config around every test."""

from __future__ import annotations

from collections.abc import Iterator

import panel as pn
import pytest

from fraud_app.ui import base


@pytest.fixture(autouse=True)
def reset_panel_state() -> Iterator[None]:
    """Restore Panel's global config, server state and caches after each test."""
    with pn.config.set(sizing_mode=None, notifications=False):
        yield
    pn.state.reset()
    pn.state.clear_caches()


@pytest.fixture
def section_registry() -> Iterator[dict]:
    """Snapshot the section registry and restore it after the test.

    The app's own sections are discovered first, so a test that discovers them does not leave the
    registry without the ones its module import did not register.
    """
    base.discover_sections()
    saved = dict(base._REGISTRY)
    try:
        yield base._REGISTRY
    finally:
        base._REGISTRY.clear()
        base._REGISTRY.update(saved)
