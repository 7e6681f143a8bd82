"""The base of every API handler: errors, the error table, the preamble, the executors.

Rules every handler follows:

* errors are ``{"error": {"code": <HTTP status>, "message": "...", "field"?: "..."}}``, never a
  stack trace (``write_error`` is overridden, 500s included). A handler raises :class:`APIError`
  or lets a domain exception through: :data:`ERROR_TABLE` maps exception classes to statuses, and
  ``write_error`` reads it;
* database and model work runs in a small bounded thread pool, off the event loop, so that
  UI sessions served by the same process keep streaming;
* who may ask is decided on the headers, before the body is read (:meth:`APIHandler.prepare`):
  when auth is on (``FRAUD_APP_API_TOKEN`` or a Panel login), every route but a minimal
  ``/api/health`` needs ``Authorization: Bearer <token>`` or a login cookie; see
  :mod:`fraud_app.auth` and ``docs/security.md``;
* every method is declared with :func:`endpoint`, the one preamble (the refusal decided on the
  headers, then unknown query parameters, then the credential).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from bokeh.server.views.auth_request_handler import AuthRequestHandler
from tornado.web import HTTPError, RequestHandler, stream_request_body

from fraud_app import __version__, auth
from fraud_app.config import get_settings
from fraud_app.pools import process_pool

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

def api_executor() -> ThreadPoolExecutor:
    """The bounded thread pool for blocking API work (one per process, recreated after a fork)."""
    return process_pool("fraud-api", API_WORKERS)


def health_executor() -> ThreadPoolExecutor:
    """Three threads of its own for ``/api/health``, so a database lock that blocks every API worker
    never delays it."""
    return process_pool("fraud-health", 3)


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
    """Compact JSON bytes (orjson; the stdlib for what orjson refuses, e.g. integers beyond 64 bits)."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")


# -- the error table: exception class -> answer ---------------------------------------------------

@dataclass(frozen=True)
class ErrorRule:
    """How ``write_error`` answers one exception class: its status, the field at fault and the message."""

    status: int
    #: The ``field`` of the answer: a fixed name, or ``"@field"`` for the exception's own ``.field``.
    field: str | None = None
    #: ``message(exc)``; default ``str(exc)``.
    message: Callable[[BaseException], str] | None = None
    #: Send ``Retry-After`` (a 503 the client should retry).
    retry: bool = False


def _model_missing(exc: BaseException) -> str:
    return f"{exc.args[0] if exc.args else 'unknown model'}; GET /api/models lists them"


def _model_broken(exc: BaseException) -> str:
    return (f"{exc}; re-save or replace it, name another model, or make another one active "
            "(GET /api/models lists them)")


def _database_failed(exc: BaseException) -> str:
    cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else type(exc).__name__
    return (f"the database failed while saving this request's batch ({cause}); nothing of "
            "the batch was written; retry shortly")


#: Exception classes (``module.QualName``, looked up along the exception's MRO, so nothing is imported
#: to answer an error) and how ``write_error`` answers them. Anything else is a 500 without details.
ERROR_TABLE: dict[str, ErrorRule] = {
    "fraud_app.inference.validation.PredictionInputError": ErrorRule(400, "@field"),
    "fraud_app.models.errors.InvalidModelNameError": ErrorRule(400, "model"),
    "fraud_app.models.errors.ModelNotFoundError": ErrorRule(404, "model", _model_missing),
    "fraud_app.models.errors.ModelLoadError": ErrorRule(503, "model", _model_broken),
    "fraud_app.inference.service.NoModelError": ErrorRule(503),
    "fraud_app.storage.writer.DatabaseBusyError": ErrorRule(503, None, lambda e: f"{e}; retry shortly", True),
    "fraud_app.storage.writer.DatabaseUnavailableError": ErrorRule(503, None, _database_failed, True),
}


def error_rule(exc: BaseException | None) -> ErrorRule | None:
    """The :data:`ERROR_TABLE` rule of ``exc``'s class or its nearest base class, or None."""
    if exc is None:
        return None
    for cls in type(exc).__mro__:
        rule = ERROR_TABLE.get(f"{cls.__module__}.{cls.__qualname__}")
        if rule is not None:
            return rule
    return None


def as_api_error(exc: BaseException) -> APIError | None:
    """``exc`` as the :class:`APIError` the table says it is (None: not in the table)."""
    if isinstance(exc, APIError):
        return exc
    rule = error_rule(exc)
    if rule is None:
        return None
    field = getattr(exc, "field", None) if rule.field == "@field" else rule.field
    message = rule.message(exc) if rule.message is not None else str(getattr(exc, "message", exc))
    headers = {"Retry-After": str(RETRY_AFTER_S)} if rule.retry else None
    return APIError(rule.status, message, field, headers)


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
        mapped = as_api_error(value) if isinstance(value, Exception) else None
        if mapped is not None:
            value = mapped
        if isinstance(value, HTTPError) and value.status_code < 500:
            return
        if isinstance(value, APIError):  # a 503 we chose (busy database, unloadable model): no traceback
            log.warning("%s %s -> %s", self.request.method, self.request.path, value)
            return
        log.error("uncaught exception on %s %s from %s", self.request.method, self.request.path,
                  self.request.remote_ip, exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
        mapped = as_api_error(exc) if isinstance(exc, Exception) else None
        if mapped is not None and mapped is not exc:
            exc, status_code = mapped, mapped.status_code
            self.set_status(status_code)
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
        """The credential: checked in :meth:`prepare` for every route, before the body; nothing is left
        to check here (kept as the third step of :func:`endpoint`'s preamble)."""

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


def endpoint(*query: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API method and the query parameters it takes, in the style of ``@web.authenticated``.

    The one preamble every method runs before its body: :meth:`APIHandler.check_request` (the
    refusal decided on the headers), then :meth:`APIHandler.reject_unknown_query` with ``query``,
    then :meth:`APIHandler.require_token`::

        @endpoint("limit", "offset")
        async def get(self) -> None: ...
    """

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def wrapper(self: APIHandler, *args: Any, **kwargs: Any) -> Any:
                self.check_request()
                self.reject_unknown_query(*query)
                self.require_token()
                return await method(self, *args, **kwargs)
        else:
            @functools.wraps(method)
            def wrapper(self: APIHandler, *args: Any, **kwargs: Any) -> Any:
                self.check_request()
                self.reject_unknown_query(*query)
                self.require_token()
                return method(self, *args, **kwargs)
        wrapper.query_parameters = query  # type: ignore[attr-defined]
        return wrapper

    return decorate
