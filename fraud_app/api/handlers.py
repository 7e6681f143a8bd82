"""Tornado request handlers: JSON in, JSON out."""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado.web import RequestHandler

from fraud_app import __version__
from fraud_app.config import get_settings

log = logging.getLogger(__name__)


class JSONHandler(RequestHandler):
    """Base handler: JSON responses and ``{"error": {"code", "message"}}`` errors, never a traceback."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload, allow_nan=False, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info is not None:
            exc = exc_info[1]
            log_message = getattr(exc, "log_message", None)
            if log_message and status_code < 500:
                message = log_message
        self.finish(json.dumps({"error": {"code": status_code, "message": message}}))


class HealthHandler(JSONHandler):
    """``GET /api/health``: liveness, version and the data set's size."""

    def get(self) -> None:
        from fraud_app.data import DataNotFoundError, load_transactions

        settings = get_settings()
        payload: dict[str, Any] = {"status": "ok", "version": __version__, "dataset": settings.dataset}
        try:
            frame = load_transactions()
        except DataNotFoundError as exc:
            payload.update(status="degraded", rows=None, detail=str(exc))
        else:
            payload.update(rows=len(frame), frauds=int(frame["is_fraud"].sum()))
        self.write_json(payload)


ROUTES: list[tuple[str, type[RequestHandler], dict]] = [
    (r"/api/health", HealthHandler, {}),
]
