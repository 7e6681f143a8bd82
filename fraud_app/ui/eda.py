"""The Exploratory Data Analysis tab (placeholder until the EDA core lands)."""

from __future__ import annotations

import panel as pn

from fraud_app.ui.base import Section, register_section


@register_section
class EDASection(Section):
    """Explore the transactions: overview, distributions, correlations, separation."""

    title = "Exploratory Data Analysis"
    icon = "▦"
    order = 10

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._layout = pn.Column(pn.pane.Markdown("## Exploratory Data Analysis\n\nComing soon."))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
