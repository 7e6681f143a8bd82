"""Tornado request handlers: JSON in, JSON out.

Every route is declared once in :data:`ROUTE_TABLE`; the Tornado :data:`ROUTES` and the
OpenAPI document (:func:`openapi_document`) are both generated from it.

Rules every handler follows:

* errors are ``{"error": {"code": <HTTP status>, "message": "...", "field"?: "..."}}``, never a
  stack trace (``write_error`` is overridden, 500s included);
* database and model work runs in a small bounded thread pool, off the event loop, so that
  UI sessions served by the same process keep streaming;
* nothing is written unless the whole request is valid (a batch is one transaction);
* who may ask is decided on the headers, before the body is read (:meth:`APIHandler.prepare`):
  when auth is on (``FRAUD_APP_API_TOKEN`` or a Panel login), every route but a minimal
  ``/api/health`` needs ``Authorization: Bearer <token>`` or a login cookie; see
  :mod:`fraud_app.auth` and ``docs/security.md``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.web import HTTPError, RequestHandler, StaticFileHandler, stream_request_body

from fraud_app import __version__, auth
from fraud_app.config import get_settings

log = logging.getLogger(__name__)

#: Largest accepted request body: a 10,000-row batch is about 6 MB.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Threads doing database and model work for the API in one process.
API_WORKERS = 4
#: ``GET /api/predictions`` paging.
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
MAX_OFFSET = 2**62
#: A refused request whose declared body is at most this large is answered once its body is drained
#: (never buffered); a larger one is answered at once and its connection closed.
LINGER_BYTES = 64 * 1024
#: Seconds a client is told to wait (``Retry-After``) when the server is busy.
RETRY_AFTER_S = 5
#: ``/api/health`` answers within this budget whatever the database does (seconds).
HEALTH_BUDGET_S = 0.15
#: A write that has waited longer than this for the database makes ``/api/health`` report "degraded".
SLOW_WRITE_S = 1.0
#: Methods that change something: they need ``Content-Type: application/json`` and, when authorised by a
#: cookie, an allowed ``Origin``.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_INTEGER = re.compile(r"-?[0-9]{1,19}")

T = TypeVar("T")

_executor_lock = threading.Lock()
_executor: tuple[int, ThreadPoolExecutor] | None = None
_health_executor: tuple[int, ThreadPoolExecutor] | None = None


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


def health_executor() -> ThreadPoolExecutor:
    """Three threads of its own for ``/api/health``, so a database lock that blocks every API worker
    never delays it."""
    global _health_executor
    pid = os.getpid()
    with _executor_lock:
        if _health_executor is None or _health_executor[0] != pid:
            _health_executor = (pid, ThreadPoolExecutor(max_workers=3, thread_name_prefix="fraud-health"))
        return _health_executor[1]


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in :func:`api_executor` and await the result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(api_executor(), functools.partial(fn, *args, **kwargs))


def api_token() -> str | None:
    """``FRAUD_APP_API_TOKEN`` as the settings read it."""
    return auth.api_token()


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


def busy(message: str) -> APIError:
    """A 503 that tells the client when to retry."""
    return APIError(503, message, headers={"Retry-After": str(RETRY_AFTER_S)})


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")


# -- buffered request bodies (one counter per process, event-loop thread only) --------------------

class _BodyBudget:
    """How many request-body bytes this process holds at once, capped by ``FRAUD_APP_MAX_BUFFERED_MB``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.used = 0

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.used + size > get_settings().max_buffered_bytes:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        if size:
            with self._lock:
                self.used = max(0, self.used - size)


BODY_BUDGET = _BodyBudget()


class JSONHandler(RequestHandler):
    """Base handler: JSON responses and ``{"error": {"code", "message"}}`` errors, never a traceback."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(payload if isinstance(payload, bytes) else _dumps(payload))

    def log_exception(self, typ, value, tb) -> None:  # noqa: ANN001 - Tornado's signature
        """Client errors in one line; any 5xx with its traceback, to the ``fraud_app`` log (console and file)."""
        if isinstance(value, HTTPError) and value.status_code < 500:
            return
        if isinstance(value, APIError):  # a 503 we chose (busy database, unloadable model): no traceback
            log.warning("%s %s -> %s", self.request.method, self.request.path, value)
            return
        log.error("uncaught exception on %s %s from %s", self.request.method, self.request.path,
                  self.request.remote_ip, exc_info=(typ, value, tb))

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
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(_dumps({"error": error}))


#: Methods Tornado dispatches; the base class answers each one with 405 unless a handler defines it.
HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


@stream_request_body
class APIHandler(JSONHandler, AuthRequestHandler):
    """Base of every ``/api`` handler.

    Everything about who may ask is decided in :meth:`prepare`, on the headers alone, before a
    byte of the body is read: the ``Host`` (403), the credential when auth is on (401, with the
    reason logged), the ``Origin`` of a cookie-authenticated write (403), the ``Content-Type`` of
    a write (415), the declared size (413) and the room left in the process's body budget (503
    with ``Retry-After``). A refused request is answered at once and its body never buffered.

    The body is streamed in and kept only up to :data:`MAX_BODY_BYTES`; a body whose size was not
    declared and turns out larger is dropped as it arrives and answered with 413. A connection
    that closes mid-upload frees its chunks at once (:meth:`on_connection_close`).
    """

    #: Set by a subclass for its ``/api/...`` documentation, see :class:`Route`.
    openapi: dict[str, dict[str, Any]] = {}
    #: False for ``/api/health``: open, but minimal for anonymous callers when auth is on.
    requires_auth = True

    def initialize(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._reserved = 0
        self._too_large = False
        self._over_budget = False
        self._discard = False
        self._refusal: APIError | None = None
        #: How the caller proved who it is: "bearer", "cookie" (token login), "login" (Panel), or None.
        self.credential: str | None = None

    # -- login -----------------------------------------------------------------------------
    def get_current_user(self) -> Any:
        provider = getattr(self.application, "auth_provider", None)
        if provider is None or provider.get_user is None:
            return None
        return provider.get_user(self)

    def get_login_url(self) -> str:
        provider = getattr(self.application, "auth_provider", None)
        if provider is None or (provider.get_login_url is None and provider.login_url is None):
            return auth.LOGIN_URL
        return super().get_login_url()

    def _panel_provider(self) -> Any:
        """The application's Panel login provider (basic auth, OAuth), or None (none, or our token page)."""
        provider = getattr(self.application, "auth_provider", None)
        if provider is None or (provider.get_user is None and provider.get_user_async is None):
            return None
        if getattr(provider, "get_user", None) is auth.get_user:  # the token login page: same token
            return None
        module = getattr(provider, "_module", None)
        if module is not None and getattr(module, "get_user", None) is auth.get_user:
            return None
        return provider

    async def _authenticate(self) -> None:
        """Set :attr:`credential`; raise 401 (logged with its reason) when one is required and missing."""
        token = api_token()
        provider = self._panel_provider()
        if token is None and provider is None:
            return  # auth is off
        reasons: list[str] = []
        if token is not None:
            header = self.request.headers.get("Authorization")
            reason = auth.check_bearer(header, token)
            if reason is None:
                self.credential = "bearer"
                return
            if header:
                reasons.append(f"{reason} bearer token")
            cookie_reason = auth.check_login_cookie(self.get_cookie(auth.COOKIE_NAME), token)
            if cookie_reason is None:
                self.credential = "cookie"
                return
            if cookie_reason != "missing":
                reasons.append(f"{cookie_reason} login cookie")
        if provider is not None:
            if provider.get_user_async is not None:
                user = await provider.get_user_async(self)
            else:
                user = provider.get_user(self)
            if user:
                self.current_user = user
                self.credential = "login"
                return
        if not self.requires_auth:  # /api/health: answered (minimal), but a bad credential is still audited
            if reasons:
                auth.log_failure(self, reasons[0].split(" ")[0], " ".join(reasons[0].split(" ")[1:]))
            return
        reason = reasons[0] if reasons else "missing credential"
        auth.log_failure(self, reason.split(" ")[0], " ".join(reason.split(" ")[1:]) or "credential")
        ways = []
        if token is not None:
            ways.append("send 'Authorization: Bearer <token>'")
        if provider is not None or auth.token_login_installed():
            ways.append(f"sign in at {self.get_login_url()} (the login cookie authorises API calls)")
        if token is not None and not reasons:
            message = "missing API token: " + " or ".join(ways)
        elif token is not None:
            message = f"{'invalid' if 'wrong' in reason else 'expired'} credential ({reason}): " + " or ".join(ways)
        else:
            message = "login required: " + " or ".join(ways)
        headers = {"WWW-Authenticate": 'Bearer realm="fraud-app"'} if token is not None else {}
        raise APIError(401, message, headers=headers)

    def _implements(self, method: str) -> bool:
        handler = getattr(type(self), method.lower(), None)
        return handler is not None and handler is not APIHandler._not_allowed \
            and getattr(handler, "__name__", "") != "_missing"

    async def prepare(self) -> None:
        try:
            await self._check_headers()
        except APIError as refusal:
            declared = self.request.headers.get("Content-Length", "")
            chunked = "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()
            if not chunked and (not declared or (declared.isdigit() and int(declared) <= LINGER_BYTES)):
                # Small or no body: read it (discarding every byte) and answer once it is in, so the
                # client is not cut off mid-send and always reads the answer.
                self._refusal = refusal
                self._discard = True
                return
            raise  # a large or open-ended body: answer now; Tornado then closes the connection

    async def _check_headers(self) -> None:
        problem = auth.check_host(self)
        if problem is not None:
            log.warning("refused %s %s from %s: %s", self.request.method, self.request.path,
                        self.request.remote_ip, problem)
            raise APIError(403, problem, "Host")
        await self._authenticate()
        method = self.request.method or "GET"
        if method in WRITE_METHODS and self._implements(method):
            if self.credential in ("cookie", "login"):
                problem = auth.check_origin(self)
                if problem is not None:
                    auth.log_failure(self, "cross-site", f"{self.credential} write")
                    raise APIError(403, problem, "Origin")
            content_type = self.request.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                shown = content_type[:60] or "none"
                raise APIError(415, f"send the body as JSON with 'Content-Type: application/json' (got {shown})",
                               "Content-Type")
        length = self.request.headers.get("Content-Length")
        if length is not None:
            if not length.isdigit():
                raise APIError(400, f"bad Content-Length {length[:30]!r}", "Content-Length")
            size = int(length)
            if size > MAX_BODY_BYTES:
                raise self._too_large_error()
            if size and not BODY_BUDGET.reserve(size):
                raise busy("the server is busy receiving other uploads; retry shortly")
            self._reserved = size

    def data_received(self, chunk: bytes) -> None:
        if self._too_large or self._over_budget or self._discard:
            return
        self._size += len(chunk)
        if self._size > MAX_BODY_BYTES:
            self._drop(too_large=True)
            return
        if self._size > self._reserved:  # no Content-Length (chunked): reserve as it comes
            extra = self._size - self._reserved
            if not BODY_BUDGET.reserve(extra):
                self._drop(over_budget=True)
                return
            self._reserved += extra
        self._chunks.append(chunk)

    def _drop(self, too_large: bool = False, over_budget: bool = False) -> None:
        self._too_large = self._too_large or too_large
        self._over_budget = self._over_budget or over_budget
        self._chunks = []
        BODY_BUDGET.release(self._reserved)
        self._reserved = 0

    def _release(self) -> None:
        self._chunks = []
        BODY_BUDGET.release(self._reserved)
        self._reserved = 0

    def on_connection_close(self) -> None:
        """The client went away (an aborted upload): free its chunks and its share of the budget now."""
        self._release()
        super().on_connection_close()

    def on_finish(self) -> None:
        self._release()

    def check_request(self) -> None:
        """Raise the refusal decided in :meth:`prepare` on the headers (kept until a small body was drained)."""
        if self._refusal is not None:
            raise self._refusal

    @staticmethod
    def _too_large_error() -> APIError:
        return APIError(413, f"request body too large: the limit is {MAX_BODY_BYTES // (1024 * 1024)} MiB "
                             f"({MAX_BODY_BYTES:,} bytes); split the batch", "body")

    def take_body(self) -> list[bytes]:
        """The body's chunks (joined later, in a worker thread); 413/503 if it was dropped."""
        if self._too_large:
            raise self._too_large_error()
        if self._over_budget:
            raise busy("the server is busy receiving other uploads; retry shortly")
        chunks, self._chunks = self._chunks, []
        return chunks

    @property
    def body(self) -> bytes:
        """The request body (at most :data:`MAX_BODY_BYTES`); 413 if it was larger."""
        return b"".join(self.take_body())

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
        """Kept for compatibility: the credential is checked in :meth:`prepare` for every route."""

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query argument within ``[low, high]``; 400 naming it otherwise."""
        values = self.request.query_arguments.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise APIError(400, f"{name} is given {len(values)} times; give it once", name)
        raw = values[0].decode("utf-8", errors="replace").strip()
        if _INTEGER.fullmatch(raw) is None:
            raise APIError(400, f"{name} must be an integer, got {raw[:40]!r}", name)
        value = int(raw)
        if not low <= value <= high:
            raise APIError(400, f"{name} must be between {low} and {high}, got {value}", name)
        return value

    def reject_unknown_query(self, *known: str) -> None:
        for name in self.request.query_arguments:
            if name not in known:
                hint = f"; known: {', '.join(known)}" if known else "; this route takes none"
                raise APIError(400, f"unknown query parameter {name[:60]!r}{hint}", name[:60])


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

    async def get(self) -> None:
        self.check_request()
        self.reject_unknown_query()
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
    from fraud_app.data import DataNotFoundError, load_transactions

    try:
        frame = load_transactions()
    except DataNotFoundError as exc:
        return {"rows": None, "detail": str(exc)}
    return {"rows": len(frame), "frauds": int(frame["is_fraud"].sum())}


def _model_info() -> dict[str, Any] | None:
    from fraud_app.inference import active_model_info

    return active_model_info()  # a broken model file raises: reported as model_error (logged once)


class ModelsHandler(APIHandler):
    """``GET /api/models``: the saved models with their metrics, newest first, and the unusable folders."""

    openapi = {"get": {
        "summary": "Saved models with their metrics (newest first), the active one, and unusable folders",
        "responses": {"200": {"description": "The saved models", "schema": "ModelList"}},
    }}

    async def get(self) -> None:
        self.check_request()
        self.reject_unknown_query()
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


#: Fields of a stored prediction returned by ``POST`` (the inputs are left out: the client sent them).
CREATED_FIELDS = ("id", "created_at", "model", "model_version", "fraud_probability", "is_fraud", "threshold",
                  "source")


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return result


def parse_json_body(body: bytes) -> Any:
    """Decode a request body; 400 naming the problem (bad JSON, a duplicate key, a huge number, nesting)."""
    if not body.strip():
        raise APIError(400, "empty request body: send a JSON object with the 29 model inputs", "body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"the request body is not UTF-8 text (undecodable byte at offset {exc.start})",
                       "body") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except DuplicateKeyError as exc:
        raise APIError(400, f"the request body names the key {exc.key[:60]!r} twice in one object; "
                            "give each key once", exc.key[:60]) from None
    except json.JSONDecodeError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, "
                            f"column {exc.colno})", "body") from None
    except RecursionError:
        raise APIError(400, "the request body is not valid JSON for this API: it is nested too deeply", "body") \
            from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        detail = str(exc)
        if "digits" in detail:
            detail = ("a number has too many digits (Python refuses integers of more than "
                      f"{sys.get_int_max_str_digits()} digits); model inputs must lie within "
                      "+/-3.4e38")
        raise APIError(400, f"the request body is not valid JSON for this API: {detail}", "body") from None


def _create_predictions(body: bytes | list[bytes], submitted: float | None = None) -> tuple[bytes, int | None]:
    """Parse, validate, score and save one request body (in a worker thread).

    ``submitted`` (``time.monotonic()``): when the request was handed to the worker pool. Time spent
    queued for a worker (busy workers are usually workers blocked on a database lock) counts against
    ``FRAUD_APP_DB_BUSY_TIMEOUT``; time spent decoding and scoring does not.
    """
    queued = 0.0 if submitted is None else max(0.0, time.monotonic() - submitted)
    from fraud_app.inference import NoModelError, PredictionInputError, parse_request, save_scores, score_array
    from fraud_app.models import InvalidModelNameError, ModelLoadError, ModelNotFoundError
    from fraud_app.storage import DatabaseBusyError

    if isinstance(body, list):
        body = b"".join(body)
    payload = parse_json_body(body)
    del body
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
    except ModelLoadError as exc:
        raise APIError(503, f"{exc}; re-save or replace it, name another model, or make another one active "
                            "(GET /api/models lists them)", "model") from None
    except NoModelError as exc:
        raise APIError(503, str(exc)) from None
    try:
        budget = max(0.1, get_settings().db_busy_timeout_s - queued)
        rows = save_scores(fitted, values, scores, "api", deadline=time.monotonic() + budget)
    except DatabaseBusyError as exc:
        raise busy(f"{exc}; retry shortly") from None
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

    async def post(self) -> None:
        self.check_request()
        self.reject_unknown_query()
        payload, new_id = await run_blocking(_create_predictions, self.take_body(), time.monotonic())
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


# -- OpenAPI -------------------------------------------------------------------------------------

def _schemas() -> dict[str, Any]:
    from fraud_app.data import MODEL_FEATURES
    from fraud_app.inference import MAX_BATCH
    from fraud_app.inference.validation import feature_bounds

    def number(name: str) -> dict[str, Any]:
        low, high = feature_bounds(name)
        text = ("the amount in euros, 0 or more" if name == "amount"
                else "a finite number within the float32 range")
        return {"type": "number", "minimum": low, "maximum": high,
                "description": f"{text} (no strings, booleans, null, NaN or inf)"}

    transaction = {"type": "object", "additionalProperties": False, "required": list(MODEL_FEATURES),
                   "properties": {name: number(name) for name in MODEL_FEATURES}}
    model_name = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                  "description": "a saved model's name; default: the active model"}
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
    return {
        "Transaction": transaction,
        "SingleRequest": {"type": "object", "additionalProperties": False, "required": list(MODEL_FEATURES),
                          "properties": {**{name: number(name) for name in MODEL_FEATURES}, "model": model_name}},
        "BatchRequest": {"type": "object", "additionalProperties": False, "required": ["transactions"],
                         "properties": {"model": model_name, "transactions": {
                             "type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                             "items": {"$ref": "#/components/schemas/Transaction"}}}},
        "PredictionRequest": {"oneOf": [{"$ref": "#/components/schemas/SingleRequest"},
                                        {"$ref": "#/components/schemas/BatchRequest"}]},
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
def _openapi_bytes() -> bytes:
    return _dumps(openapi_document())
