"""The app shell (placeholder until the sections land)."""

from __future__ import annotations

import panel as pn


def create_app() -> pn.viewable.Viewable:
    """Build the page for one browser session."""
    pn.extension(sizing_mode="stretch_width")
    tabs = pn.Tabs(
        ("Exploratory Data Analysis", pn.pane.Markdown("Exploratory Data Analysis")),
        ("Training", pn.pane.Markdown("Training")),
        ("Inference", pn.pane.Markdown("Inference")),
        dynamic=True,
    )
    return pn.template.FastListTemplate(title="Fraud Detection Studio", main=[tabs])
