"""Tornado request handlers: JSON in, JSON out.

Every route is declared once in :data:`ROUTE_TABLE`; the Tornado :data:`ROUTES` and the
OpenAPI document (:func:`openapi_document`) are both generated from it.

Rules every handler follows:

* errors are ``{"error": {"code": <HTTP status>, "message": "...", "field"?: "..."}}``, never a
  stack trace (``write_error`` is overridden, 500s included);
* database and model work runs in a small bounded thread pool, off the event loop, so that
  UI sessions served by the same process keep streaming;
* nothing is written unless the whole request is valid (a batch is one transaction);
* when the server runs with ``--basic-auth`` or OAuth, every ``/api`` route requires the same
  login as the app (through Bokeh's :class:`AuthRequestHandler` hooks and Panel's auth
  provider); when ``FRAUD_APP_API_TOKEN`` is set, POST also needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.web import HTTPError, RequestHandler, stream_request_body

from fraud_app import __version__
from fraud_app.config import get_settings

log = logging.getLogger(__name__)

#: Largest accepted request body: a 10,000-row batch is about 6 MB.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Threads doing database and model work for the API in one process.
API_WORKERS = 4
#: ``GET /api/predictions`` paging.
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
MAX_OFFSET = 2**62

T = TypeVar("T")

_executor_lock = threading.Lock()
_executor: tuple[int, ThreadPoolExecutor] | None = None


def api_executor() -> ThreadPoolExecutor:
    """The bounded thread pool for blocking API work (one per process, recreated after a fork)."""
    global _executor
    pid = os.getpid()
    current = _executor
    if current is not None and current[0] == pid:
        return current[1]
    with _executor_lock:
        if _executor is None or _executor[0] != pid:
            _executor = (pid, ThreadPoolExecutor(max_workers=API_WORKERS, thread_name_prefix="fraud-api"))
        return _executor[1]


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in :func:`api_executor` and await the result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(api_executor(), functools.partial(fn, *args, **kwargs))


def api_token() -> str | None:
    """``FRAUD_APP_API_TOKEN`` as the settings read it."""
    return get_settings().api_token


class APIError(HTTPError):
    """An HTTP error with a JSON body; ``field`` names the offending input, if any."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, None, reason=None)
        self.message = message
        self.field = field
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.message}"


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")


class JSONHandler(RequestHandler):
    """Base handler: JSON responses and ``{"error": {"code", "message"}}`` errors, never a traceback."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(payload if isinstance(payload, bytes) else _dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
        error: dict[str, Any] = {"code": status_code}
        if isinstance(exc, APIError):
            error["message"] = exc.message
            if exc.field is not None:
                error["field"] = exc.field
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif status_code >= 500:
            error["message"] = "internal server error (details are in the server log)"
        elif isinstance(exc, HTTPError) and exc.log_message:
            error["message"] = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            error["message"] = self._reason
        if status_code == 405 and not isinstance(exc, APIError):
            error["message"] = f"method {self.request.method} is not allowed here"
        self.finish(_dumps({"error": error}))


#: Methods Tornado dispatches; the base class answers each one with 405 unless a handler defines it.
HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@stream_request_body
class APIHandler(JSONHandler, AuthRequestHandler):
    """Base of every ``/api`` handler.

    * Login: when the Bokeh/Panel application has an auth provider (``--basic-auth``, OAuth),
      ``prepare`` asks it for the current user exactly as Panel's own pages do
      (``get_user_async`` / ``get_user``); no user means 401. A plain Tornado application
      (tests) has no provider and no login.
    * The body is streamed in and kept only up to :data:`MAX_BODY_BYTES`; a larger one is
      read and dropped and answered with 413 (the client always gets a JSON answer).
    * Any rejection found in ``prepare`` is raised only once the body has been read, so a
      client uploading a large body still receives a clean JSON response.
    """

    #: Set by a subclass for its ``/api/...`` documentation, see :class:`Route`.
    openapi: dict[str, dict[str, Any]] = {}

    def initialize(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._deferred: APIError | None = None

    # -- login -----------------------------------------------------------------------------
    def get_current_user(self) -> Any:
        provider = getattr(self.application, "auth_provider", None)
        if provider is None or provider.get_user is None:
            return None
        return provider.get_user(self)

    def get_login_url(self) -> str:
        provider = getattr(self.application, "auth_provider", None)
        if provider is None or (provider.get_login_url is None and provider.login_url is None):
            return "/login"
        return super().get_login_url()

    async def prepare(self) -> None:
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            self._too_large = True  # drop the body as it arrives; answered with 413 once it is read
        provider = getattr(self.application, "auth_provider", None)
        if provider is None:
            return
        if provider.get_user_async is not None:
            self.current_user = await provider.get_user_async(self)
        elif provider.get_user is not None:
            self.current_user = provider.get_user(self)
        else:  # Bokeh's NullAuth: the server runs without a login
            return
        if not self.current_user:
            self._deferred = APIError(
                401, f"login required: sign in at {self.get_login_url()} (the session cookie "
                     "authorises API calls)")

    def data_received(self, chunk: bytes) -> None:
        if self._too_large or self._deferred is not None:
            return
        self._size += len(chunk)
        if self._size > MAX_BODY_BYTES:
            self._too_large = True
            self._chunks.clear()
            return
        self._chunks.append(chunk)

    def check_request(self) -> None:
        """Raise the rejection found while reading the request (login), if any."""
        if self._deferred is not None:
            raise self._deferred

    @property
    def body(self) -> bytes:
        """The request body (at most :data:`MAX_BODY_BYTES`); 413 if it was larger."""
        if self._too_large:
            raise APIError(413, f"request body too large: the limit is {MAX_BODY_BYTES // (1024 * 1024)} MiB "
                                f"({MAX_BODY_BYTES:,} bytes); split the batch")
        if len(self._chunks) != 1:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0]

    # -- methods ---------------------------------------------------------------------------
    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The HTTP methods this handler implements (upper case)."""
        return [m.upper() for m in HTTP_METHODS if getattr(cls, m) is not APIHandler._not_allowed]

    def _not_allowed(self, *args: Any, **kwargs: Any) -> None:
        self.check_request()
        allowed = ", ".join(self.allowed_methods())
        raise APIError(405, f"method {self.request.method} is not allowed on {self.request.path}; "
                            f"allowed: {allowed}", headers={"Allow": allowed})

    get = post = put = patch = delete = head = options = _not_allowed

    def require_token(self) -> None:
        """401 unless the request carries ``Authorization: Bearer <FRAUD_APP_API_TOKEN>`` (when set)."""
        expected = api_token()
        if expected is None:
            return
        header = self.request.headers.get("Authorization", "")
        scheme, _, supplied = header.partition(" ")
        supplied = supplied.strip()
        ok = scheme.lower() == "bearer" and hmac.compare_digest(supplied.encode("utf-8"),
                                                                  expected.encode("utf-8"))
        if not ok:
            message = ("missing API token: send 'Authorization: Bearer <token>'" if not header
                       else "invalid API token")
            raise APIError(401, message, headers={"WWW-Authenticate": 'Bearer realm="fraud-app"'})

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query argument within ``[low, high]``; 400 naming it otherwise."""
        values = self.request.query_arguments.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise APIError(400, f"{name} is given {len(values)} times; give it once", name)
        raw = values[0].decode("utf-8", errors="replace").strip()
        if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 20:
            raise APIError(400, f"{name} must be an integer, got {raw!r}", name)
        value = int(raw)
        if not low <= value <= high:
            raise APIError(400, f"{name} must be between {low} and {high}, got {value}", name)
        return value

    def reject_unknown_query(self, *known: str) -> None:
        for name in self.request.query_arguments:
            if name not in known:
                hint = f"; known: {', '.join(known)}" if known else "; this route takes none"
                raise APIError(400, f"unknown query parameter {name!r}{hint}", name)


# -- handlers ------------------------------------------------------------------------------------

class HealthHandler(APIHandler):
    """``GET /api/health``: liveness, version, the data set's size and the active model."""

    openapi = {"get": {
        "summary": "Liveness and what the server is serving",
        "responses": {"200": {"description": "The server is up", "schema": "Health"}},
    }}

    async def get(self) -> None:
        self.check_request()
        self.reject_unknown_query()
        self.write_json(await run_blocking(_health_payload))


def _health_payload() -> dict[str, Any]:
    from fraud_app.data import DataNotFoundError, load_transactions
    from fraud_app.inference import active_model_info

    settings = get_settings()
    payload: dict[str, Any] = {"status": "ok", "version": __version__, "dataset": settings.dataset,
                               "pid": os.getpid()}
    try:
        frame = load_transactions()
    except DataNotFoundError as exc:
        payload.update(status="degraded", rows=None, detail=str(exc))
    else:
        payload.update(rows=len(frame), frauds=int(frame["is_fraud"].sum()))
    try:
        payload["model"] = active_model_info()
    except Exception as exc:  # a broken model file must not take the health check down
        log.warning("health: active model unavailable: %s", exc)
        payload["model"] = None
    return payload


class ModelsHandler(APIHandler):
    """``GET /api/models``: the saved models with their metrics, newest first."""

    openapi = {"get": {
        "summary": "Saved models with their metrics (newest first) and the active one",
        "responses": {"200": {"description": "The saved models", "schema": "ModelList"}},
    }}

    async def get(self) -> None:
        self.check_request()
        self.reject_unknown_query()
        self.write_json(await run_blocking(_models_payload))


def _models_payload() -> bytes:
    from fraud_app.models import get_active_model_name, list_models
    from fraud_app.storage import to_jsonable

    keep = ("name", "kind", "version", "threshold", "metrics", "params", "trained_at", "saved_at",
            "data_fingerprint")
    models = [{key: meta.get(key) for key in keep} for meta in list_models()]
    return _dumps(to_jsonable({"active": get_active_model_name(), "models": models}))


#: Fields of a stored prediction returned by ``POST`` (the inputs are left out: the client sent them).
CREATED_FIELDS = ("id", "created_at", "model", "model_version", "fraud_probability", "is_fraud", "threshold",
                  "source")


def _create_predictions(body: bytes) -> tuple[bytes, int | None]:
    """Parse, validate, score and save one request body (in a worker thread)."""
    from fraud_app.inference import NoModelError, PredictionInputError, parse_request, save_scores, score_array
    from fraud_app.models import InvalidModelNameError, ModelNotFoundError

    if not body.strip():
        raise APIError(400, "empty request body: send a JSON object with the 29 model inputs", "body")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "undecodable or too deeply nested"
        raise APIError(400, f"the request body is not valid JSON: {detail}", "body") from None
    try:
        values, model, is_batch = parse_request(payload)
        fitted, scores, _ = score_array(values, model)
    except PredictionInputError as exc:
        raise APIError(400, exc.message, exc.field) from None
    except InvalidModelNameError as exc:
        raise APIError(400, str(exc), "model") from None
    except ModelNotFoundError as exc:
        raise APIError(404, f"{exc.args[0] if exc.args else 'unknown model'}; GET /api/models lists them",
                       "model") from None
    except NoModelError as exc:
        raise APIError(503, str(exc)) from None
    rows = save_scores(fitted, values, scores, "api")
    created = [{key: row[key] for key in CREATED_FIELDS} for row in rows]
    if is_batch:
        return _dumps({"model": fitted.name, "model_version": fitted.version, "count": len(created),
                       "predictions": created}), None
    return _dumps(created[0]), created[0]["id"]


def _list_payload(limit: int, offset: int) -> bytes:
    from fraud_app.storage import count_predictions, list_predictions

    return _dumps({"total": count_predictions(), "limit": limit, "offset": offset,
                   "predictions": list_predictions(limit=limit, offset=offset)})


class PredictionsHandler(APIHandler):
    """``POST /api/predictions`` (score and save) and ``GET /api/predictions`` (newest first)."""

    openapi = {
        "post": {
            "summary": "Score one transaction or a batch with the named (or active) model and save the results",
            "description": "One flat object with the 29 inputs (and optionally `model`), or "
                           "`{\"model\"?: name, \"transactions\": [...]}` with 1 to 10,000 objects. "
                           "Nothing is saved unless every row is valid; a batch is saved in one transaction.",
            "requestBody": "PredictionRequest",
            "security": True,
            "responses": {
                "201": {"description": "Scored and saved: the stored row (single) or rows (batch)",
                        "schema": "PredictionCreated"},
                "400": "Not JSON, not an object, or a missing/unknown/non-numeric field (named in `field`)",
                "401": "Missing or wrong bearer token (when FRAUD_APP_API_TOKEN is set) or not logged in",
                "404": "Unknown model",
                "413": "Body larger than 16 MiB",
                "503": "No model saved yet",
            },
        },
        "get": {
            "summary": "Saved predictions, newest first",
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                             "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
            ],
            "responses": {
                "200": {"description": "A page of predictions", "schema": "PredictionPage"},
                "400": "Bad limit or offset (or an unknown query parameter)",
            },
        },
    }

    async def post(self) -> None:
        self.check_request()
        self.require_token()
        self.reject_unknown_query()
        payload, new_id = await run_blocking(_create_predictions, self.body)
        if new_id is not None:
            self.set_header("Location", f"/api/predictions/{new_id}")
        self.write_json(payload, status=201)

    async def get(self) -> None:
        self.check_request()
        self.reject_unknown_query("limit", "offset")
        limit = self.query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = self.query_int("offset", 0, 0, MAX_OFFSET)
        self.write_json(await run_blocking(_list_payload, limit, offset))


def _get_prediction(prediction_id: int) -> dict[str, Any] | None:
    from fraud_app.storage import get_prediction  # first import (SQLAlchemy) off the event loop too

    return get_prediction(prediction_id)


class PredictionHandler(APIHandler):
    """``GET /api/predictions/<id>``: one saved prediction."""

    openapi = {"get": {
        "summary": "One saved prediction, with its inputs",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1}}],
        "responses": {
            "200": {"description": "The prediction", "schema": "Prediction"},
            "400": "The id is not a positive integer",
            "404": "No prediction with this id",
        },
    }}

    async def get(self, raw_id: str) -> None:
        self.check_request()
        self.reject_unknown_query()
        if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 18 or int(raw_id) < 1:
            raise APIError(400, f"id must be a positive integer, got {raw_id!r}", "id")
        row = await run_blocking(_get_prediction, int(raw_id))
        if row is None:
            raise APIError(404, f"no prediction with id {int(raw_id)}", "id")
        self.write_json(row)


class OpenAPIHandler(APIHandler):
    """``GET /api/openapi.json``: the OpenAPI 3 description of this API."""

    openapi = {"get": {
        "summary": "This document (OpenAPI 3.1)",
        "responses": {"200": {"description": "The OpenAPI document", "schema": None}},
    }}

    async def get(self) -> None:
        self.check_request()
        self.reject_unknown_query()
        self.write_json(await run_blocking(_openapi_bytes))  # the first call imports the model stack


class NotFoundHandler(APIHandler):
    """Any other ``/api/...`` path: a JSON 404 instead of the server's HTML page."""

    def _missing(self, *args: Any, **kwargs: Any) -> None:
        self.check_request()
        raise APIError(404, f"no such API route: {self.request.path} (see /api/openapi.json)")

    get = post = put = patch = delete = head = options = _missing


# -- the route table -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """One API route: its Tornado pattern, its handler and its OpenAPI path."""

    pattern: str
    handler: type[APIHandler]
    path: str
    kwargs: dict = field(default_factory=dict)


ROUTE_TABLE: list[Route] = [
    Route(r"/api/health/?", HealthHandler, "/api/health"),
    Route(r"/api/models/?", ModelsHandler, "/api/models"),
    Route(r"/api/predictions/?", PredictionsHandler, "/api/predictions"),
    Route(r"/api/predictions/([^/]+)/?", PredictionHandler, "/api/predictions/{id}"),
    Route(r"/api/openapi\.json", OpenAPIHandler, "/api/openapi.json"),
]

#: The catch-all that turns unknown ``/api`` paths into JSON 404s (not an API route itself).
FALLBACK_ROUTE = (r"/api(?:/.*)?", NotFoundHandler, {})

#: Tornado routes for ``panel serve --plugins fraud_app.api`` (``(pattern, handler, kwargs)``).
ROUTES: list[tuple[str, type[RequestHandler], dict]] = [
    *((route.pattern, route.handler, route.kwargs) for route in ROUTE_TABLE),
    FALLBACK_ROUTE,
]


# -- OpenAPI -------------------------------------------------------------------------------------

def _schemas() -> dict[str, Any]:
    from fraud_app.data import MODEL_FEATURES
    from fraud_app.inference import MAX_BATCH

    number = {"type": "number", "description": "a finite number (no strings, booleans, null, NaN or inf)"}
    transaction = {"type": "object", "additionalProperties": False, "required": list(MODEL_FEATURES),
                   "properties": {name: number for name in MODEL_FEATURES}}
    model_name = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                  "description": "a saved model's name; default: the active model"}
    created = {"type": "object", "properties": {
        "id": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
        "model": {"type": "string"}, "model_version": {"type": ["string", "null"]},
        "fraud_probability": {"type": "number", "minimum": 0, "maximum": 1},
        "is_fraud": {"type": "boolean"}, "threshold": {"type": "number"},
        "source": {"type": "string", "enum": ["ui", "api", "batch"]}}}
    prediction = {"allOf": [created, {"type": "object", "properties": {"features": transaction}}]}
    return {
        "Transaction": transaction,
        "SingleRequest": {"type": "object", "additionalProperties": False, "required": list(MODEL_FEATURES),
                          "properties": {**{name: number for name in MODEL_FEATURES}, "model": model_name}},
        "BatchRequest": {"type": "object", "additionalProperties": False, "required": ["transactions"],
                         "properties": {"model": model_name, "transactions": {
                             "type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                             "items": {"$ref": "#/components/schemas/Transaction"}}}},
        "PredictionRequest": {"oneOf": [{"$ref": "#/components/schemas/SingleRequest"},
                                        {"$ref": "#/components/schemas/BatchRequest"}]},
        "CreatedPrediction": created,
        "PredictionCreated": {"oneOf": [
            {"$ref": "#/components/schemas/CreatedPrediction"},
            {"type": "object", "properties": {
                "model": {"type": "string"}, "model_version": {"type": ["string", "null"]},
                "count": {"type": "integer"},
                "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/CreatedPrediction"}}}},
        ]},
        "Prediction": prediction,
        "PredictionPage": {"type": "object", "properties": {
            "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
        "Model": {"type": "object", "properties": {
            "name": {"type": "string"}, "kind": {"type": "string"}, "version": {"type": ["string", "null"]},
            "threshold": {"type": "number"}, "metrics": {"type": "object"}, "params": {"type": "object"},
            "trained_at": {"type": ["string", "null"]}, "saved_at": {"type": ["string", "null"]},
            "data_fingerprint": {"type": ["string", "null"]}}},
        "ModelList": {"type": "object", "properties": {
            "active": {"type": ["string", "null"]},
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}},
        "Health": {"type": "object", "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]}, "version": {"type": "string"},
            "dataset": {"type": "string"}, "rows": {"type": ["integer", "null"]},
            "frauds": {"type": "integer"}, "model": {"type": ["object", "null"]},
            "pid": {"type": "integer", "description": "the serving process (several with --num-procs)"}}},
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
    "401": "Login required (server started with --basic-auth or OAuth)",
    "405": "Method not allowed on this path",
    "500": "Internal error (no details are returned; see the server log)",
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, generated from :data:`ROUTE_TABLE` and each handler's ``openapi``."""
    paths: dict[str, Any] = {}
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
            if spec.get("security"):
                operation["security"] = [{"bearerToken": []}, {}]
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
            "securitySchemes": {"bearerToken": {
                "type": "http", "scheme": "bearer",
                "description": "Required on POST only when the server sets FRAUD_APP_API_TOKEN"}},
        },
    }


@functools.cache
def _openapi_bytes() -> bytes:
    return _dumps(openapi_document())
