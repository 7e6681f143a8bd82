"""Fraud Detection Studio: ``panel serve app.py --plugins fraud_app.api --warm``.

This file only assembles the app; everything lives in the ``fraud_app`` package.
Access control (docs/security.md): ``make run`` also passes ``--auth-module fraud_app/token_login.py``
so that, when ``FRAUD_APP_API_TOKEN`` is set, the page asks for the token.
"""

import logging
import time

import panel as pn

from fraud_app.auth import REFUSAL, ui_locked
from fraud_app.logging_setup import configure_logging

configure_logging()

# ``pn.state.served`` asks the same with ``inspect.stack()``, which costs tens of milliseconds of
# the shared event loop per session; the module name Panel gives a served script is enough.
if __name__.startswith("bokeh_app_"):
    if ui_locked():  # the start-up check refuses this already; never build the UI if it was bypassed
        pn.pane.Alert(f"The app is locked. {REFUSAL}", alert_type="danger").servable(title="Fraud Detection Studio")
    else:
        from fraud_app.ui.app import create_app
        from fraud_app.ui.warmup import warm_up

        warm_up()  # once per process (at start with --warm); a no-op afterwards
        _started = time.perf_counter()
        create_app().servable(title="Fraud Detection Studio")
        logging.getLogger("fraud_app.ui.session").debug(
            "session built in %.1f ms", 1000 * (time.perf_counter() - _started))
