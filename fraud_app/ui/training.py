"""The Training tab (placeholder; built in issue #6)."""

from __future__ import annotations

import panel as pn

from fraud_app.ui.base import Section, register_section


@register_section
class TrainingSection(Section):
    """Train, compare and save fraud models (coming in #6)."""

    title = "Training"
    icon = "⚙"
    order = 20

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._layout = pn.Column(pn.pane.Markdown("## Training\n\nComing soon."), name=self.title)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
