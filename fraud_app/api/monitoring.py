"""``GET /api/monitoring`` and ``PUT /api/predictions/<id>/label`` (issue 15).

Both are :class:`~fraud_app.api.handlers.APIHandler` subclasses: the same preamble (Host, the
credential when auth is on, Origin and Content-Type of a write, body limits) and JSON errors. The
work (SQL) runs in the API's thread pool, never on the event loop.
"""

from __future__ import annotations

from typing import Any

from fraud_app.api.base import APIError, APIHandler, endpoint, run_blocking
from fraud_app.api.handlers import parse_json_body

#: ``labeled_by`` recorded for a label set through the API, by how the caller authenticated.
_LABELED_BY = {None: "api", "bearer": "api (token)", "cookie": "api (login cookie)"}


def _report(model: str | None, since: str | None, until: str | None, bucket: str) -> dict[str, Any]:
    from fraud_app.monitoring.report import MonitoringError, monitoring_report, parse_time

    try:
        return monitoring_report(model, parse_time(since, "since") if since else None,
                                 parse_time(until, "until") if until else None, bucket)
    except MonitoringError as exc:
        raise APIError(exc.status, str(exc), exc.field) from None


def _label(prediction_id: int, label: str | None, labeled_by: str) -> dict[str, Any] | None:
    from fraud_app.storage import set_label

    return set_label(prediction_id, label, labeled_by)


class MonitoringHandler(APIHandler):
    """``GET /api/monitoring``: volume, score distributions, PSI, labels, realized precision and alerts."""

    openapi = {"get": {
        "summary": "Monitoring of a model over a time window: volume, drift (PSI), labels and alerts",
        "description": "Computed from aggregates written with every prediction (SQL, no row scan). "
                       "The window is widened to whole hours. A model saved before references existed "
                       "answers with `reference: false` and `message: \"no reference: retrain\"`.",
        "parameters": [
            {"name": "model", "in": "query", "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
             "description": "a saved model (default: the active model)"},
            {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"},
             "description": "ISO 8601 start, UTC if no zone (default: until minus 7 days)"},
            {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"},
             "description": "ISO 8601 end (default: now)"},
            {"name": "bucket", "in": "query", "schema": {"type": "string", "enum": ["hour", "day"],
                                                           "default": "hour"}},
        ],
        "responses": {
            "200": {"description": "The monitoring report", "schema": "MonitoringReport"},
            "400": "A bad model name, timestamp, window or bucket (named in `field`)",
            "404": "No such model, or no model saved yet",
        },
    }}

    def _one(self, name: str) -> str | None:
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise APIError(400, f"{name} is given {len(values)} times; give it once", name)
        return values[0].decode("utf-8", errors="replace").strip() or None

    @endpoint("model", "since", "until", "bucket")
    async def get(self) -> None:
        bucket = self._one("bucket") or "hour"
        if bucket not in ("hour", "day"):
            raise APIError(400, f"bucket must be hour or day, got {bucket[:20]!r}", "bucket")
        payload = await run_blocking(_report, self._one("model"), self._one("since"), self._one("until"), bucket)
        self.write_json(payload)


class LabelHandler(APIHandler):
    """``PUT /api/predictions/<id>/label``: an analyst's verdict on a stored prediction."""

    openapi = {"put": {
        "summary": "Label a stored prediction as fraud or legitimate (null clears the label)",
        "description": "Body: `{\"label\": \"fraud\" | \"legitimate\" | null}`. Answers with the updated row. "
                       "Labeled predictions feed the monitoring's realized precision and, with "
                       "`train --with-feedback`, the training rows.",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
        "requestBody": "LabelRequest",
        "responses": {
            "200": {"description": "The updated prediction", "schema": "Prediction"},
            "400": "The id is not a positive integer, the body is not JSON, or the label is not "
                   "\"fraud\", \"legitimate\" or null",
            "404": "No prediction with this id",
            "415": "The body is not sent as Content-Type: application/json",
        },
    }}

    @endpoint()
    async def put(self, raw_id: str) -> None:
        if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 18 or int(raw_id) < 1:
            raise APIError(400, f"id must be a positive integer, got {raw_id[:40]!r}", "id")
        body = parse_json_body(b"".join(self.take_body()))
        if not isinstance(body, dict):
            raise APIError(400, "send a JSON object: {\"label\": \"fraud\" | \"legitimate\" | null}", "body")
        unknown = sorted(set(body) - {"label"})
        if unknown:
            raise APIError(400, f"unknown field {unknown[0][:60]!r}; the body is {{\"label\": ...}}", unknown[0][:60])
        if "label" not in body:
            raise APIError(400, "missing field 'label' (\"fraud\", \"legitimate\" or null)", "label")
        label = body["label"]
        if label is not None and label not in ("fraud", "legitimate"):
            shown = label[:40] if isinstance(label, str) else type(label).__name__
            raise APIError(400, f"label must be \"fraud\", \"legitimate\" or null, got {shown!r}", "label")
        user = self.current_user if self.credential == "login" else None
        labeled_by = f"api ({user})" if user else _LABELED_BY.get(self.credential, "api")
        row = await run_blocking(_label, int(raw_id), label, labeled_by)
        if row is None:
            raise APIError(404, f"no prediction with id {int(raw_id)}", "id")
        self.write_json(row)


def schemas() -> dict[str, Any]:
    """OpenAPI components of these routes."""
    number_or_null = {"type": ["number", "null"]}
    return {
        "LabelRequest": {"type": "object", "additionalProperties": False, "required": ["label"], "properties": {
            "label": {"type": ["string", "null"], "enum": ["fraud", "legitimate", None]}}},
        "MonitoringReport": {"type": "object", "required": [
            "model", "since", "until", "bucket", "reference", "volume", "score_histogram", "psi", "labels",
            "realized", "alerts"], "properties": {
            "model": {"type": "string"}, "model_version": {"type": ["string", "null"]},
            "since": {"type": "string", "format": "date-time"}, "until": {"type": "string", "format": "date-time"},
            "bucket": {"type": "string", "enum": ["hour", "day"]},
            "reference": {"type": "boolean", "description": "false: the model was saved without a training reference"},
            "message": {"type": ["string", "null"]},
            "volume": {"type": "array", "items": {"type": "object", "required": ["bucket", "source", "count", "flagged"],
                                                  "properties": {"bucket": {"type": "string", "format": "date-time"},
                                                                 "source": {"type": "string"},
                                                                 "count": {"type": "integer"},
                                                                 "flagged": {"type": "integer"}}}},
            "totals": {"type": "object"},
            "score_histogram": {"type": "object", "required": ["edges", "live", "reference", "count"], "properties": {
                "edges": {"type": "array", "items": {"type": "number"}},
                "live": {"type": "array", "items": {"type": "number"}},
                "reference": {"type": ["array", "null"], "items": {"type": "number"}},
                "count": {"type": "integer"}}},
            "psi": {"type": "object", "additionalProperties": number_or_null,
                    "description": "population stability index per model input against the training reference"},
            "labels": {"type": "object", "required": ["fraud", "legitimate", "unlabeled"], "properties": {
                "fraud": {"type": "integer"}, "legitimate": {"type": "integer"}, "unlabeled": {"type": "integer"}}},
            "realized": {"type": "object", "required": ["precision", "recall", "labeled"], "properties": {
                "precision": number_or_null, "recall": number_or_null, "labeled": {"type": "integer"},
                "labeled_flagged": {"type": "integer"}}},
            "alerts": {"type": "array", "items": {"type": "object", "required": ["kind", "value", "threshold", "message"],
                                                  "properties": {
                                                      "kind": {"type": "string", "enum": ["psi", "flagged_rate", "precision"]},
                                                      "feature": {"type": "string"}, "value": {"type": "number"},
                                                      "threshold": {"type": "number"}, "message": {"type": "string"}}}},
            "thresholds": {"type": "object"}}},
    }
