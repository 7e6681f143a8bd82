"""The JSON REST API, mounted into the Panel server as a plugin.

``panel serve app.py --plugins fraud_app.api`` imports this module at server start-up and adds
its ``ROUTES`` (Tornado ``(pattern, handler, kwargs)`` tuples) to the server. Importing it under
``panel serve`` also configures the ``fraud_app`` loggers, logs one line saying what protects the
UI and the API, and refuses to start when a token locks the API but nothing protects the UI
(:func:`fraud_app.auth.check_startup`).
"""

import sys

from fraud_app.api.handlers import ROUTES

if sys.argv[1:2] == ["serve"]:  # imported by `panel serve --plugins fraud_app.api`, not by a test or a script
    from fraud_app.auth import check_startup

    check_startup()

__all__ = ["ROUTES"]
