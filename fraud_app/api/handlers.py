"""The API's handlers and :data:`ROUTE_TABLE`: JSON in, JSON out.

Every route is declared once in :data:`ROUTE_TABLE` (adding one is one line there); the Tornado
:data:`ROUTES` and the OpenAPI document (:func:`fraud_app.api.openapi.openapi_document`) are both
generated from it. The base handler, the errors and the executors live in :mod:`fraud_app.api.base`,
the decoding of request bodies in :mod:`fraud_app.api.body`
(re-exported here: ``from fraud_app.api.handlers import APIHandler, APIError`` keeps working).

``POST /api/predictions`` is parsed and validated in a worker thread, then scored and saved by the
process's micro-batcher (:mod:`fraud_app.inference.batching`): concurrent requests share one
``predict`` call per model and one transaction, and each is answered once its rows are committed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tornado.web import RequestHandler

from fraud_app import __version__
from fraud_app.api.base import (  # noqa: F401 - re-exported for handlers defined elsewhere
    API_WORKERS,
    BODY_BUDGET,
    DEFAULT_LIMIT,
    ERROR_TABLE,
    HEALTH_BUDGET_S,
    HTTP_METHODS,
    LINGER_BYTES,
    MAX_BODY_BYTES,
    MAX_LIMIT,
    MAX_OFFSET,
    RETRY_AFTER_S,
    SLOW_WRITE_S,
    WRITE_METHODS,
    APIError,
    APIHandler,
    ErrorRule,
    JSONHandler,
    _dumps,
    api_executor,
    api_token,
    as_api_error,
    busy,
    endpoint,
    error_rule,
    health_executor,
    log,
    run_blocking,
)
from fraud_app.api.body import (  # noqa: F401 - re-exported
    DuplicateKeyError,
    _fast_loads,
    _key_count,
    parse_json_body,
)
from fraud_app.api.openapi import (  # noqa: F401 - re-exported
    COMMON_RESPONSES,
    CREATED_FIELDS,
    DOCS_ASSETS,
    DocsAssetHandler,
    DocsHandler,
    openapi_document,
    swagger_ui_dir,
)
from fraud_app.config import get_settings

if TYPE_CHECKING:
    from fraud_app.storage import StoredRows

# -- handlers ------------------------------------------------------------------------------------

class HealthHandler(APIHandler):
    """``GET /api/health``: liveness, version and, to callers with a credential (or when auth is off),
    the database, the data set's size and the active model.

    Answers within :data:`HEALTH_BUDGET_S` whatever the database does: its checks run in their own
    threads (:func:`health_executor`), never queued behind the API workers, and a check that has not
    answered in time is reported as "degraded" instead of waited for.
    """

    requires_auth = False
    openapi = {"get": {
        "summary": "Liveness and what the server is serving",
        "description": "Open to everyone. When auth is on, anonymous callers get only `status` and "
                       "`version`; callers with a credential get the details.",
        "responses": {"200": {"description": "The server is up", "schema": "Health"}},
    }}

    @endpoint()
    async def get(self) -> None:
        auth_on = api_token() is not None or self._panel_provider() is not None
        self.write_json(await _health(details=self.credential is not None or not auth_on))


_health_checks: dict[str, tuple[int, float, Any]] = {}
_health_last: dict[str, tuple[int, Any]] = {}
#: A check still running after this long makes health report what it checks as not answering.
HEALTH_STALL_S = 1.0


def _start_check(name: str, fn: Callable[[], Any]) -> tuple[float, asyncio.Future]:
    """Run ``fn`` in the health threads unless the same check is still running (then reuse it)."""
    loop = asyncio.get_running_loop()
    pid = os.getpid()
    entry = _health_checks.get(name)
    if entry is None or entry[0] != pid or entry[2].done():
        entry = _health_checks[name] = (pid, loop.time(), asyncio.wrap_future(health_executor().submit(fn), loop=loop))
    return entry[1], entry[2]


def _outcome(name: str, started: float, future: asyncio.Future) -> tuple[bool, Any]:
    """``(answered, result or exception)`` of a check after the wait.

    A check that has not answered yet but started less than :data:`HEALTH_STALL_S` ago is slow only
    because the machine is busy: its previous answer stands in for it.
    """
    pid = os.getpid()
    if not future.done():
        last = _health_last.get(name)
        if last is not None and last[0] == pid and asyncio.get_running_loop().time() - started < HEALTH_STALL_S:
            return True, last[1]
        return False, None
    exc = future.exception()
    result = exc if exc is not None else future.result()
    _health_last[name] = (pid, result)
    return True, result


async def _health(details: bool) -> dict[str, Any]:
    """The health payload; every check runs at once in the health threads, awaited together for at most
    :data:`HEALTH_BUDGET_S` (one wake-up of the event loop, however busy it is)."""
    from fraud_app.storage import probe_database, write_wait_seconds

    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEALTH_BUDGET_S
    waited = write_wait_seconds()
    checks = {} if waited > SLOW_WRITE_S else {"database": probe_database}
    if details:
        checks.update(dataset=_dataset_info, model=_model_info)
    running = {name: _start_check(name, fn) for name, fn in checks.items()}
    pending = [future for _, future in running.values() if not future.done()]
    if pending:
        await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
    outcomes = {name: _outcome(name, started, future) for name, (started, future) in running.items()}

    database: dict[str, Any] = {"status": "ok"}
    if waited > SLOW_WRITE_S:
        database = {"status": "degraded", "detail": f"a write has waited {waited:.1f} s for a database lock"}
    else:
        done, result = outcomes["database"]
        if not done:
            database = {"status": "degraded",
                        "detail": f"the database did not answer within {HEALTH_BUDGET_S * 1000:.0f} ms"}
        elif isinstance(result, BaseException):
            log.warning("health: database check failed: %s", result)
            database = {"status": "degraded", "detail": f"the database check failed: {type(result).__name__}"}
    status = "ok" if database["status"] == "ok" else "degraded"
    if not details:
        return {"status": status, "version": __version__}
    payload: dict[str, Any] = {"status": status, "version": __version__, "dataset": get_settings().dataset,
                               "pid": os.getpid(), "database": database}
    done, dataset = outcomes["dataset"]
    if not done:
        payload.update(status="degraded", rows=None, detail="still loading the data set; ask again shortly")
    elif isinstance(dataset, BaseException):
        payload.update(status="degraded", rows=None, detail=f"{type(dataset).__name__}: {dataset}")
    else:
        payload.update(dataset)
        if dataset.get("detail"):
            payload["status"] = "degraded"
    done, model = outcomes["model"]
    if not done:
        payload.update(model=None, model_error="still loading the active model; ask again shortly")
    elif isinstance(model, BaseException):
        payload.update(model=None, model_error=str(model))
    else:
        payload["model"] = model
    return payload


def _dataset_info() -> dict[str, Any]:
    """Rows and frauds of the app's data set: the shared frame, or a lazy set's footers and cached summary.

    A health check never computes a lazy set's summary (a pass over every row on the cluster):
    until the app has it, the answer holds the rows and partitions its footers give.
    """
    from fraud_app.data import DataNotFoundError, LazyDataset
    from fraud_app.data.service import cached_info, current_dataset, current_info

    try:
        dataset = current_dataset()
    except DataNotFoundError as exc:
        return {"rows": None, "detail": str(exc)}
    if isinstance(dataset, LazyDataset):
        info = cached_info(dataset)
        lazy = {"lazy": True, "partitions": dataset.partitions}
        return {"rows": dataset.rows, **lazy} if info is None else {"rows": info.rows, "frauds": info.frauds, **lazy}
    info = current_info(dataset)
    return {"rows": info.rows, "frauds": info.frauds}


def _model_info() -> dict[str, Any] | None:
    from fraud_app.inference import active_model_info

    return active_model_info()  # a broken model file raises: reported as model_error (logged once)


class ModelsHandler(APIHandler):
    """``GET /api/models``: the saved models with their metrics, newest first, and the unusable folders."""

    openapi = {"get": {
        "summary": "Saved models with their metrics (newest first), the active one, and unusable folders",
        "responses": {"200": {"description": "The saved models", "schema": "ModelList"}},
    }}

    @endpoint()
    async def get(self) -> None:
        self.write_json(await run_blocking(_models_payload))


def _models_payload() -> bytes:
    from fraud_app.models import get_active_model_name
    from fraud_app.models.store import _scan
    from fraud_app.storage import to_jsonable

    keep = ("name", "kind", "version", "threshold", "metrics", "params", "trained_at", "saved_at",
            "data_fingerprint")
    found, invalid = _scan()
    models = [{key: meta.get(key) for key in keep} for meta in found]
    return _dumps(to_jsonable({"active": get_active_model_name(), "models": models, "invalid": invalid}))


def _created_single(fitted: Any, stored: StoredRows) -> tuple[bytes, int | None]:
    """What the batcher turns a single request's stored row into (in its thread): the 201 body and the id."""
    return _dumps(stored.created()[0]), stored.ids[0]


def _created_batch(fitted: Any, stored: StoredRows) -> tuple[bytes, int | None]:
    """The same for a batch request (no ``Location``: each row names its id)."""
    created = stored.created()
    return _dumps({"model": fitted.name, "model_version": fitted.version, "count": len(created),
                   "predictions": created}), None


def _created_payload(is_batch: bool) -> Callable[[Any, StoredRows], tuple[bytes, int | None]]:
    """The ``finish`` the batcher runs for a request: :func:`_created_batch` or :func:`_created_single`."""
    return _created_batch if is_batch else _created_single


class LoopAnswer:
    """What a worker thread resolves a request with (the batcher calls ``done``, ``set_result`` and
    ``set_exception`` like a ``concurrent.futures.Future``'s): the outcome reaches :attr:`future`, an
    asyncio future of the event loop, through ONE ``call_soon_threadsafe``; no concurrent Future, its
    lock and its chaining to the loop per request. Resolved by one thread only (the batch's leader)."""

    __slots__ = ("_loop", "future", "_done")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.future: asyncio.Future = loop.create_future()
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._done = True
        self._loop.call_soon_threadsafe(_settle, self.future, value, None)

    def set_exception(self, exc: BaseException) -> None:
        self._done = True
        self._loop.call_soon_threadsafe(_settle, self.future, None, exc)

    @classmethod
    def resolve_many(cls, items: list[tuple[LoopAnswer, Any, bool]]) -> None:
        """Resolve ``(answer, value, ok)`` items (a batch's requests): one hand-off per event loop, not one
        per request (each hand-off writes to the loop's wake-up pipe and wakes it)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, BaseException | None]]] = {}
        for answer, value, ok in items:
            answer._done = True
            by_loop.setdefault(answer._loop, []).append(
                (answer.future, value, None) if ok else (answer.future, None, value))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle(future: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if future.cancelled():  # the handler is gone (the connection closed)
        return
    if exc is None:
        future.set_result(value)
    else:
        future.set_exception(exc)


def _settle_all(settled: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for future, value, exc in settled:
        _settle(future, value, exc)


def _create_predictions(body: bytes | list[bytes], submitted: float | None = None,
                        answer: Future | LoopAnswer | None = None) -> tuple[bytes, int | None] | None:
    """Parse and validate one request body (in a worker thread), then hand it to the micro-batcher.

    ``answer`` receives ``(201 body, id of a single row or None)`` once the request's rows are
    committed, or the exception to answer with (:data:`~fraud_app.api.base.ERROR_TABLE`). The
    calling thread may lead the batcher (score and save this and other requests) before it returns.
    Without ``answer`` the result is returned (or raised) directly.

    ``submitted`` (``time.monotonic()``): when the request was handed to the worker pool. Time spent
    queued (for a worker, then for a batch) counts against ``FRAUD_APP_DB_BUSY_TIMEOUT``.
    """
    global _scoring
    from fraud_app.inference import parse_request
    from fraud_app.inference.batching import get_batcher

    _scoring = (parse_request, get_batcher)
    own = answer if answer is not None else Future()
    try:
        if isinstance(body, list):
            body = b"".join(body)
        payload = parse_json_body(body)
        del body
        values, model, is_batch = parse_request(payload)
        del payload
        get_batcher().submit(values, model, "api", finish=_created_payload(is_batch), future=own,
                             submitted=submitted)
    except BaseException as exc:
        if own.done():
            raise
        own.set_exception(exc)
    if answer is None:
        return own.result()
    return None


#: A body up to this size (a single transaction is about 700 bytes, 20 about 14 KB) is decoded and validated on
#: the event loop (tens of microseconds) and queued for the batcher from there; a larger one, in a worker.
INLINE_BODY_BYTES = 16 * 1024


def _queue_predictions(body: list[bytes], answer: LoopAnswer) -> bool:
    """Decode and validate a small body on the event loop, then queue it for the micro-batcher (which scores
    and saves in its worker thread, never here). A request that joins a batch in progress wakes no thread;
    a bad one is answered at once (400) without leaving the loop.

    Returns False, having done nothing, until a worker has imported the scoring modules (the first
    requests go through :func:`_create_predictions` in a worker: no import ever runs on the loop).
    """
    scoring = _scoring
    if scoring is None:
        return False
    parse_request, get_batcher = scoring
    values, model, is_batch = parse_request(parse_json_body(b"".join(body)))
    get_batcher().enqueue(values, model, "api", _created_payload(is_batch), answer, api_executor())
    return True


#: ``(parse_request, get_batcher)`` once a worker has imported them (see :func:`_queue_predictions`). Set only
#: after both imports returned: a module in ``sys.modules`` may still be importing in another thread.
_scoring: tuple[Callable, Callable] | None = None


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
            "responses": {
                "201": {"description": "Scored and saved: the stored row (single) or rows (batch)",
                        "schema": "PredictionCreated",
                        "links": {"GetSavedPrediction": {
                            "operationId": "get_api_predictions_id",
                            "parameters": {"id": "$response.body#/id"},
                            "description": "The saved prediction (single requests; a batch lists each id)"}}},
                "400": "Not JSON, a duplicate key, not an object, or a missing/unknown/non-numeric/out-of-range "
                       "field (named in `field`)",
                "404": "Unknown model",
                "413": "Body larger than 16 MiB",
                "415": "The body is not sent as Content-Type: application/json",
                "503": "No model saved yet, the model cannot be loaded (named, with the reason), the database "
                       "is locked (nothing was written), or too many uploads at once: see Retry-After",
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

    @endpoint()
    async def post(self) -> None:
        answer = LoopAnswer(asyncio.get_running_loop())
        chunks = self.take_body()
        if self._size > INLINE_BODY_BYTES or not _queue_predictions(chunks, answer):
            api_executor().submit(_create_predictions, chunks, time.monotonic(), answer)
        payload, new_id = await answer.future
        if new_id is not None:
            self.set_header("Location", f"/api/predictions/{new_id}")
        self.write_json(payload, status=201)

    @endpoint("limit", "offset")
    async def get(self) -> None:
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

    @endpoint()
    async def get(self, raw_id: str) -> None:
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

    @endpoint()
    async def get(self) -> None:
        from fraud_app.api.openapi import openapi_bytes

        self.write_json(await run_blocking(openapi_bytes))  # the first call imports the model stack


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


from fraud_app.api import monitoring as _monitoring  # noqa: E402 - its handlers subclass APIHandler above

ROUTE_TABLE: list[Route] = [
    Route(r"/api/health/?", HealthHandler, "/api/health"),
    Route(r"/api/models/?", ModelsHandler, "/api/models"),
    Route(r"/api/predictions/?", PredictionsHandler, "/api/predictions"),
    Route(r"/api/predictions/([^/]+)/?", PredictionHandler, "/api/predictions/{id}"),
    Route(r"/api/predictions/([^/]+)/label/?", _monitoring.LabelHandler, "/api/predictions/{id}/label"),
    Route(r"/api/monitoring/?", _monitoring.MonitoringHandler, "/api/monitoring"),
    Route(r"/api/openapi\.json", OpenAPIHandler, "/api/openapi.json"),
]

#: The catch-all that turns unknown ``/api`` paths into JSON 404s (not an API route itself).
FALLBACK_ROUTE = (r"/api(?:/.*)?", NotFoundHandler, {})

#: The reference page: HTML, not API operations, so not in :data:`ROUTE_TABLE` nor in the document.
DOCS_ROUTES: list[tuple[str, type[RequestHandler], dict]] = [
    (r"/api/?", DocsHandler, {}),
    (r"/api/docs/?", DocsHandler, {}),
    (r"/api/docs/static/(.*)", DocsAssetHandler, {"path": None}),
    (r"/api/docs/(init\.js)", DocsHandler, {}),
]

#: Tornado routes for ``panel serve --plugins fraud_app.api`` (``(pattern, handler, kwargs)``).
ROUTES: list[tuple[str, type[RequestHandler], dict]] = [
    *((route.pattern, route.handler, route.kwargs) for route in ROUTE_TABLE),
    *DOCS_ROUTES,
    FALLBACK_ROUTE,
]


def _openapi_bytes() -> bytes:  # kept for callers of the former single module
    from fraud_app.api.openapi import openapi_bytes

    return openapi_bytes()

