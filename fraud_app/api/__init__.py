"""The JSON REST API, mounted into the Panel server as a plugin.

``panel serve app.py --plugins fraud_app.api`` imports this module and adds its
``ROUTES`` (Tornado ``(pattern, handler, kwargs)`` tuples) to the server.
"""

from fraud_app.api.handlers import ROUTES

__all__ = ["ROUTES"]
