"""Fraud Detection Studio: ``panel serve app.py --plugins fraud_app.api``.

This file only assembles the app; everything lives in the ``fraud_app`` package.
"""

import panel as pn

from fraud_app.logging_setup import configure_logging
from fraud_app.ui.app import create_app

configure_logging()

if pn.state.served:
    create_app().servable(title="Fraud Detection Studio")
