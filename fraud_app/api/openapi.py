"""The OpenAPI 3.1 document of the API and its reference page (``/api``, ``/api/docs``).

The document is generated from :data:`fraud_app.api.handlers.ROUTE_TABLE` and each handler's
``openapi`` attribute; the request schemas come from the validation module
(:func:`fraud_app.inference.validation.request_schemas`), the types that validate requests, so
the two cannot drift (``tests/api/test_openapi.py`` also checks them against each other).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from tornado.web import HTTPError, StaticFileHandler

from fraud_app import __version__, auth
from fraud_app.api.base import APIError, JSONHandler, _dumps

#: Fields of a stored prediction returned by ``POST`` (the inputs are left out: the client sent them).
CREATED_FIELDS = ("id", "created_at", "model", "model_version", "fraud_probability", "is_fraud", "threshold",
                  "source")

# -- the API reference page (/api, /api/docs) ------------------------------------------------------

#: Files of the vendored Swagger UI (from the ``swagger-ui-py`` package) the page loads.
DOCS_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")

_DOCS_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Fraud Detection Studio API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="/api/docs/static/favicon-32x32.png">
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css">
</head><body>
<noscript>This page renders <a href="/api/openapi.json">/api/openapi.json</a> with JavaScript.</noscript>
<div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body></html>
"""

_DOCS_INIT = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    withCredentials: true,
    presets: [SwaggerUIBundle.presets.apis],
    onComplete: function () {},
  });
};
"""


def swagger_ui_dir() -> str:
    """The folder of Swagger UI's files inside the installed ``swagger-ui-py`` package (not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (pip install swagger-ui-py)")
    return os.path.join(list(spec.submodule_search_locations)[0], "static")


class DocsHandler(JSONHandler):
    """``GET /api`` and ``/api/docs``: a readable reference rendered from ``/api/openapi.json``.

    The page and its assets are open (they hold no data and no description of their own); the
    document they render, ``/api/openapi.json``, needs a credential when auth is on, which a
    signed-in browser sends as its cookie. Everything is served from this server: no CDN.
    """

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                                   "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        self.set_header("X-Frame-Options", "DENY")

    def prepare(self) -> None:
        problem = auth.check_host(self)
        if problem is not None:
            raise APIError(403, problem, "Host")

    def get(self, part: str | None = None) -> None:
        if part == "init.js":
            self.set_header("Content-Type", "text/javascript; charset=utf-8")
            self.finish(_DOCS_INIT)
            return
        if part:
            raise APIError(404, f"no such API route: {self.request.path} (see /api/docs)")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_DOCS_PAGE)


class DocsAssetHandler(StaticFileHandler):
    """The vendored Swagger UI files; only :data:`DOCS_ASSETS`, 404 for anything else."""

    def initialize(self, path: str | None = None, default_filename: str | None = None) -> None:
        super().initialize(path or swagger_ui_dir(), default_filename)

    def prepare(self) -> None:
        problem = auth.check_host(self)
        if problem is not None:
            raise HTTPError(403)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if os.path.basename(absolute_path) not in DOCS_ASSETS:
            raise HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)


# -- OpenAPI -------------------------------------------------------------------------------------

def _schemas() -> dict[str, Any]:
    from fraud_app.inference.validation import request_schemas

    requests = request_schemas(ref_prefix="#/components/schemas/")
    transaction = requests["Transaction"]
    created = {"type": "object", "additionalProperties": False, "required": list(CREATED_FIELDS),
               "properties": {
                   "id": {"type": "integer", "minimum": 1}, "created_at": {"type": "string", "format": "date-time"},
                   "model": {"type": "string"}, "model_version": {"type": ["string", "null"]},
                   "fraud_probability": {"type": "number", "minimum": 0, "maximum": 1},
                   "is_fraud": {"type": "boolean"}, "threshold": {"type": "number"},
                   "source": {"type": "string", "enum": ["ui", "api", "batch"]}}}
    prediction = {"type": "object", "additionalProperties": False,
                  "required": [*CREATED_FIELDS, "features"],
                  "properties": {**created["properties"], "features": transaction,
                                 "label": {"type": ["string", "null"], "enum": ["fraud", "legitimate", None]},
                                 "labeled_at": {"type": ["string", "null"], "format": "date-time"},
                                 "labeled_by": {"type": ["string", "null"]}}}
    from fraud_app.api import monitoring as _monitoring

    return {
        **requests,
        "CreatedPrediction": created,
        "CreatedBatch": {"type": "object", "additionalProperties": False,
                         "required": ["model", "model_version", "count", "predictions"], "properties": {
                             "model": {"type": "string"}, "model_version": {"type": ["string", "null"]},
                             "count": {"type": "integer", "minimum": 1},
                             "predictions": {"type": "array", "minItems": 1,
                                             "items": {"$ref": "#/components/schemas/CreatedPrediction"}}}},
        "PredictionCreated": {"oneOf": [{"$ref": "#/components/schemas/CreatedPrediction"},
                                        {"$ref": "#/components/schemas/CreatedBatch"}]},
        "Prediction": prediction,
        "PredictionPage": {"type": "object", "additionalProperties": False,
                           "required": ["total", "limit", "offset", "predictions"], "properties": {
                               "total": {"type": "integer", "minimum": 0}, "limit": {"type": "integer"},
                               "offset": {"type": "integer"},
                               "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
        "Model": {"type": "object", "properties": {
            "name": {"type": "string"}, "kind": {"type": "string"}, "version": {"type": ["string", "null"]},
            "threshold": {"type": "number"}, "metrics": {"type": ["object", "null"]},
            "params": {"type": ["object", "null"]}, "trained_at": {"type": ["string", "null"]},
            "saved_at": {"type": ["string", "null"]}, "data_fingerprint": {"type": ["string", "null"]}}},
        "InvalidModel": {"type": "object", "required": ["name", "reason"], "properties": {
            "name": {"type": "string"}, "reason": {"type": "string", "description": "why it cannot be used"}}},
        "ModelList": {"type": "object", "required": ["active", "models", "invalid"], "properties": {
            "active": {"type": ["string", "null"]},
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
            "invalid": {"type": "array", "items": {"$ref": "#/components/schemas/InvalidModel"},
                        "description": "model folders that cannot be used (listed, never scored with)"}}},
        "Health": {"type": "object", "required": ["status", "version"], "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]}, "version": {"type": "string"},
            "dataset": {"type": "string"}, "rows": {"type": ["integer", "null"]},
            "frauds": {"type": "integer"}, "model": {"type": ["object", "null"]},
            "model_error": {"type": "string"}, "detail": {"type": "string"},
            "database": {"type": "object", "required": ["status"], "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]}, "detail": {"type": "string"}}},
            "pid": {"type": "integer", "description": "the serving process (several with --num-procs)"}}},
        **_monitoring.schemas(),
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "integer", "description": "the HTTP status"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the offending input, when there is one"}}}}},
    }


def _json_content(schema: str | None) -> dict[str, Any]:
    body = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "object"}
    return {"application/json": {"schema": body}}


#: Answers every operation may give.
COMMON_RESPONSES = {
    "400": "A malformed query or header (named in `field`)",
    "401": "Auth is on (FRAUD_APP_API_TOKEN or a Panel login) and the credential is missing, wrong or expired",
    "403": "The Host is not an allowed host, or a cookie-authenticated write came from a foreign Origin",
    "405": "Method not allowed on this path",
    "500": "Internal error (no details are returned; see the server log)",
    "503": "The server is busy (too many uploads at once, or the database is locked): retry after Retry-After",
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, generated from :data:`ROUTE_TABLE` and each handler's ``openapi``."""
    paths: dict[str, Any] = {}
    from fraud_app.api.handlers import ROUTE_TABLE

    for route in ROUTE_TABLE:
        operations: dict[str, Any] = {}
        for method, spec in route.handler.openapi.items():
            responses: dict[str, Any] = {}
            for status, response in {**COMMON_RESPONSES, **spec["responses"]}.items():
                if isinstance(response, str):
                    responses[status] = {"description": response, "content": _json_content("Error")}
                else:
                    responses[status] = {"description": response["description"],
                                         "content": _json_content(response.get("schema"))}
                    if "links" in response:
                        responses[status]["links"] = response["links"]
            operation: dict[str, Any] = {
                "operationId": f"{method}_{route.path.strip('/').replace('/', '_').replace('.', '_')}"
                               .replace("{", "").replace("}", ""),
                "summary": spec["summary"],
                "responses": dict(sorted(responses.items())),
            }
            if "description" in spec:
                operation["description"] = spec["description"]
            if "parameters" in spec:
                operation["parameters"] = spec["parameters"]
            if "requestBody" in spec:
                operation["requestBody"] = {"required": True, "content": _json_content(spec["requestBody"])}
            if route.handler.requires_auth:
                operation["security"] = [{"bearerToken": []}, {"loginCookie": []}, {}]
            else:
                operation["security"] = [{}]
            operations[method] = operation
        paths[route.path] = operations
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fraud Detection Studio API", "version": __version__,
                 "description": "Score credit-card transactions with the saved fraud models and read the "
                                "stored predictions. Errors are {\"error\": {\"code\", \"message\", \"field\"?}}."},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "FRAUD_APP_API_TOKEN. When the server sets it, every route except "
                                   "/api/health needs it (or the login cookie)."},
                "loginCookie": {
                    "type": "apiKey", "in": "cookie", "name": auth.COOKIE_NAME,
                    "description": "Set by the token login page (/login); a Panel login (--basic-auth, "
                                   "OAuth) uses its own cookie. Cookie-authenticated writes must come "
                                   "from an allowed Origin."}},
        },
    }


@functools.cache
def openapi_bytes() -> bytes:
    """The document as JSON bytes (built once per process)."""
    return _dumps(openapi_document())
