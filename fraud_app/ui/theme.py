"""One place for the UI's colours and its CSS files (``assets/*.css``), shared by every tab.

Clear and fraud have one colour each across the app (charts, verdicts, tables):
blue for clear, red for fraud, which stay apart for the common colour-vision
deficiencies (unlike green against red). CSS files in ``assets/`` refer to them as
``var(--fds-clear)`` / ``var(--fds-fraud)``; :func:`stylesheet` defines those
variables from the table below, so the colours are declared once.
"""

from __future__ import annotations

import functools
from pathlib import Path

#: The repository's ``assets/`` folder (logo, CSS, page template, screenshots).
ASSETS = Path(__file__).resolve().parents[2] / "assets"

CLEAR_COLOR = "#2e75b6"
FRAUD_COLOR = "#e03131"
#: Colour of each class, keyed by the class names the EDA summary uses.
CLASS_COLORS = {"clear": CLEAR_COLOR, "fraud": FRAUD_COLOR}
#: Colour of a contribution's direction in the explanation charts.
DIRECTION_COLORS = {"towards fraud": FRAUD_COLOR, "towards clear": CLEAR_COLOR}
#: Header and accent colour (the logo's blue).
ACCENT_COLOR = "#1f4e79"

_VARIABLES = f":host, :root {{ --fds-clear: {CLEAR_COLOR}; --fds-fraud: {FRAUD_COLOR}; --fds-accent: {ACCENT_COLOR}; }}\n"


@functools.cache
def stylesheet(name: str) -> str:
    """The CSS file ``assets/<name>.css``, preceded by the colour variables it may use.

    Read once per process; pass the result in a component's ``stylesheets=[...]``.
    """
    return _VARIABLES + (ASSETS / f"{name}.css").read_text(encoding="utf-8")


__all__ = ["ACCENT_COLOR", "ASSETS", "CLASS_COLORS", "CLEAR_COLOR", "DIRECTION_COLORS", "FRAUD_COLOR", "stylesheet"]
