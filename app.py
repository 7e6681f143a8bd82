"""Fraud Detection Studio: ``panel serve app.py --plugins fraud_app.api --warm``.

This file only assembles the app; everything lives in the ``fraud_app`` package.
"""

import logging
import time

import panel as pn

from fraud_app.logging_setup import configure_logging
from fraud_app.ui.app import create_app
from fraud_app.ui.warmup import warm_up

configure_logging()

if pn.state.served:
    warm_up()  # once per process (at start with --warm); a no-op afterwards
    _started = time.perf_counter()
    create_app().servable(title="Fraud Detection Studio")
    logging.getLogger("fraud_app.ui.session").debug(
        "session built in %.1f ms", 1000 * (time.perf_counter() - _started))
