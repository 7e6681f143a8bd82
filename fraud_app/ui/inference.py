"""The Inference tab (placeholder; built in issue #7)."""

from __future__ import annotations

import panel as pn

from fraud_app.ui.base import Section, register_section


@register_section
class InferenceSection(Section):
    """Score transactions with a saved model and browse saved predictions (coming in #7)."""

    title = "Inference"
    icon = "⚡"
    order = 30

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._layout = pn.Column(pn.pane.Markdown("## Inference\n\nComing soon."), name=self.title)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
