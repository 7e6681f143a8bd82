"""Access control shared by the REST API and the served page (no Panel import).

One story (see ``docs/security.md``):

* **Auth is on** when ``FRAUD_APP_API_TOKEN`` is set or the server runs with a Panel login
  (``--basic-auth``, OAuth). Then every ``/api`` route needs a credential, except
  ``/api/health``, which answers only its status and version to anonymous callers.
* **Credentials**: ``Authorization: Bearer <token>``; the login cookie set by the token login
  page (:class:`TokenLoginHandler`, served when the server is started with
  ``--auth-module fraud_app/token_login.py``); or the Panel login's own cookie.
* **The UI is never open while the API is locked**: with a token set and no Panel login,
  ``panel serve`` must load the token login page (``--auth-module``) or it refuses to start
  (:func:`check_startup`).
* Every request must name an allowed ``Host`` (DNS rebinding); a cookie-authenticated write
  must come from an allowed ``Origin``/``Referer`` (CSRF).
* Failed authentication is logged with its reason, the route and the client, never the token.

The login cookie is ``v1:<expiry>:<hmac>``, signed with a key derived from the token itself: every
server process agrees without a shared cookie secret, and changing the token logs everyone out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import logging
import os
import sys
import time
import urllib.parse
from typing import Any

from tornado.web import RequestHandler

from fraud_app.config import get_settings

log = logging.getLogger("fraud_app.auth")

#: The token login cookie.
COOKIE_NAME = "fraud_app_login"
LOGIN_URL = "/login"
LOGOUT_URL = "/logout"
#: Hosts every server accepts (any port): the machine itself.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")

#: Set when ``--auth-module fraud_app/token_login.py`` was loaded into this process.
_token_login_installed = False


def mark_token_login_installed() -> None:
    """Record that the token login page protects the UI (called by ``token_login.py``)."""
    global _token_login_installed
    _token_login_installed = True


def token_login_installed() -> bool:
    return _token_login_installed


def api_token() -> str | None:
    """``FRAUD_APP_API_TOKEN`` (None when unset; a blank value is a configuration error)."""
    return get_settings().api_token


# -- the login cookie ----------------------------------------------------------------------------

def _key(token: str) -> bytes:
    return hashlib.sha256(b"fraud-app-login-v1\0" + token.encode("utf-8")).digest()


def make_login_cookie(token: str, now: float | None = None) -> str:
    """A login cookie value valid for ``FRAUD_APP_LOGIN_HOURS``."""
    expiry = int((now if now is not None else time.time()) + get_settings().login_hours * 3600)
    payload = f"v1:{expiry}"
    return f"{payload}:{hmac.new(_key(token), payload.encode(), hashlib.sha256).hexdigest()}"


def check_login_cookie(value: str | None, token: str, now: float | None = None) -> str | None:
    """None when ``value`` is a valid, unexpired login cookie, else the reason: missing, wrong or expired."""
    if not value:
        return "missing"
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != "v1" or not parts[1].isdigit():
        return "wrong"
    payload = f"{parts[0]}:{parts[1]}"
    expected = hmac.new(_key(token), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), parts[2].encode("utf-8", "replace")):
        return "wrong"
    if int(parts[1]) < (now if now is not None else time.time()):
        return "expired"
    return None


def check_bearer(header: str | None, token: str) -> str | None:
    """None when ``header`` is ``Bearer <token>``, else the reason: missing or wrong."""
    if not header:
        return "missing"
    scheme, _, supplied = header.partition(" ")
    supplied = supplied.strip()
    if scheme.lower() != "bearer" or not supplied:
        return "wrong"
    ok = hmac.compare_digest(supplied.encode("utf-8", "replace"), token.encode("utf-8"))
    return None if ok else "wrong"


def log_failure(handler: RequestHandler, reason: str, credential: str) -> None:
    """Audit one failed authentication: reason, credential kind, route and client, never the secret."""
    request = handler.request
    log.warning("auth failed: %s %s on %s %s from %s", reason, credential, request.method, request.path,
                request.remote_ip)


# -- hosts and origins ---------------------------------------------------------------------------

def _split_host(value: str) -> tuple[str, str | None]:
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[:end + 1], value[end + 1:]
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = value.partition(":")
    return host, port if sep else None


def allowed_hosts(application: Any = None) -> list[str]:
    """``FRAUD_APP_ALLOWED_HOSTS`` plus ``--allow-websocket-origin`` entries plus the local names."""
    hosts = list(get_settings().allowed_hosts)
    origins = getattr(application, "websocket_origins", None) or ()
    hosts.extend(str(origin).lower() for origin in origins)
    hosts.extend(LOCAL_HOSTS)
    return hosts


def host_allowed(host_header: str | None, application: Any = None) -> bool:
    """True when the request's ``Host`` is an allowed host (an entry without a port allows any port)."""
    if not host_header:
        return False
    host, port = _split_host(host_header)
    for entry_host, entry_port in _allowed_pairs(get_settings().allowed_hosts,
                                                 tuple(getattr(application, "websocket_origins", None) or ())):
        if entry_host == host and (entry_port is None or entry_port == (port or "80")):
            return True
    return False


@functools.lru_cache(maxsize=64)
def _allowed_pairs(configured: tuple[str, ...], origins: tuple) -> tuple[tuple[str, str | None], ...]:
    """:func:`allowed_hosts` split into ``(host, port or None)``, once per setting and origin list (not once
    per request)."""
    hosts = [*configured, *(str(origin).lower() for origin in origins), *LOCAL_HOSTS]
    return tuple(_split_host(entry) for entry in hosts)


def origin_allowed(origin: str, application: Any = None) -> bool:
    """True when an ``Origin`` (or a ``Referer`` URL) names an allowed host."""
    parsed = urllib.parse.urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False
    netloc = parsed.netloc.rsplit("@", 1)[-1]
    if ":" not in netloc.rsplit("]", 1)[-1]:
        netloc = f"{netloc}:{443 if parsed.scheme == 'https' else 80}"
    return host_allowed(netloc, application)


def check_host(handler: RequestHandler) -> str | None:
    """None when the ``Host`` is allowed, else a message for a 403."""
    host = handler.request.headers.get("Host")
    if host_allowed(host, handler.application):
        return None
    return (f"host {host!r} is not allowed: add it to FRAUD_APP_ALLOWED_HOSTS or --allow-websocket-origin "
            "(a foreign Host is how DNS rebinding reaches a local server)")


def check_origin(handler: RequestHandler) -> str | None:
    """None when a write's ``Origin`` (else ``Referer``) is absent or allowed, else a message for a 403."""
    headers = handler.request.headers
    origin = headers.get("Origin")
    source = "Origin"
    if origin is None:
        origin, source = headers.get("Referer"), "Referer"
    if origin is None or origin_allowed(origin, handler.application):
        return None
    return (f"cross-site request refused: {source} {origin[:100]!r} is not an allowed origin "
            "(a cookie-authenticated write must come from this server's own pages)")


# -- who protects what ---------------------------------------------------------------------------

def ui_protection() -> str | None:
    """What protects the served page, or None when nothing does."""
    try:
        from panel.config import config
    except ImportError:  # pragma: no cover - panel is a dependency
        return None
    if config.basic_auth:
        return "Panel --basic-auth login"
    oauth = config.oauth_provider
    if not oauth and "--oauth-provider" in sys.argv:
        oauth = sys.argv[sys.argv.index("--oauth-provider") + 1] if sys.argv[-1] != "--oauth-provider" else "?"
    if oauth:
        return f"OAuth login ({oauth})"
    if _token_login_installed and api_token() is not None:
        return f"the token login page ({LOGIN_URL})"
    module = os.environ.get("BOKEH_AUTH_MODULE")
    if "--auth-module" in sys.argv[:-1]:
        module = sys.argv[sys.argv.index("--auth-module") + 1]
    if module and not _token_login_installed:
        return f"the auth module {module}"
    return None


def protection_summary() -> str:
    """One line: what protects the UI and what protects the API."""
    token = api_token() is not None
    ui = ui_protection()
    ui_text = ui or "nothing (open)"
    if token and ui and "token" not in ui:
        api = f"FRAUD_APP_API_TOKEN (Bearer) or the {ui}; /api/health answers status and version only"
    elif token:
        api = "FRAUD_APP_API_TOKEN (Bearer, or the login cookie); /api/health answers status and version only"
    elif ui:
        api = f"the {ui}; /api/health answers status and version only"
    else:
        api = "nothing (FRAUD_APP_API_TOKEN is unset)"
    return f"access control: UI protected by {ui_text}; API protected by {api}"


REFUSAL = ("FRAUD_APP_API_TOKEN is set but nothing protects the UI, so anyone could train, delete or activate "
           "models from /app. Either start the server with the token login page "
           "(panel serve app.py --plugins fraud_app.api --auth-module fraud_app/token_login.py; `make run` does), "
           "or with a Panel login (--basic-auth / --oauth-provider), or unset FRAUD_APP_API_TOKEN.")


def ui_locked() -> bool:
    """True when a token is set and nothing protects the UI (the page must not be served)."""
    return api_token() is not None and ui_protection() is None


def check_startup() -> None:
    """At ``panel serve`` start-up: configure logging, log the protection line, refuse an open UI.

    Raises
    ------
    SystemExit
        when ``FRAUD_APP_API_TOKEN`` is set and no login protects the UI.
    """
    from fraud_app.logging_setup import configure_logging

    configure_logging()
    if ui_locked():
        log.error("refusing to start: %s", REFUSAL)
        raise SystemExit(f"fraud_app: refusing to start: {REFUSAL}")
    summary = protection_summary()
    log.log(logging.WARNING if "nothing" in summary else logging.INFO, summary)


# -- the token login page ------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fraud Detection Studio: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }}
main {{ max-width: 26rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
label {{ display: block; margin: 1rem 0 .3rem; font-weight: 600; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .55rem; font-size: 1rem; }}
button {{ margin-top: 1.2rem; padding: .55rem 1.2rem; font-size: 1rem; background: #1f5fbf; color: #fff;
         border: 0; border-radius: 4px; cursor: pointer; }}
.error {{ color: #b00020; }}
.hint {{ color: #555; font-size: .9rem; }}
</style></head>
<body><main>
<h1>Fraud Detection Studio</h1>
<p class="hint">This server is protected by an access token (FRAUD_APP_API_TOKEN). Enter it to open the app;
the same token authorises API clients as <code>Authorization: Bearer &lt;token&gt;</code>.</p>
{error}
<form method="post" action="{action}">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>
</main></body></html>
"""


def _safe_next(value: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def get_user(handler: RequestHandler) -> str | None:
    """The Bokeh auth hook: who is asking for a page (None sends them to the login page)."""
    problem = check_host(handler)
    if problem is not None:  # DNS rebinding: the login page answers 403 for this host
        log.warning("refused %s %s from %s: %s", handler.request.method, handler.request.path,
                    handler.request.remote_ip, problem)
        return None
    token = api_token()
    if token is None:
        return "anonymous"  # no token: the app is open by configuration, and the start-up line says so
    reason = check_login_cookie(handler.get_cookie(COOKIE_NAME), token)
    if reason is None:
        return "token"
    if reason != "missing":
        log_failure(handler, reason, "login cookie")
    return None


def set_login_cookie(handler: RequestHandler, token: str) -> None:
    secure = handler.request.protocol == "https"
    handler.set_cookie(COOKIE_NAME, make_login_cookie(token), path="/", httponly=True, samesite="Lax",
                       secure=secure, expires_days=get_settings().login_hours / 24)


class TokenLoginHandler(RequestHandler):
    """``GET /login``: the form; ``POST /login``: check the token, set the login cookie, go back."""

    def prepare(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                                   "form-action 'self'; frame-ancestors 'none'")
        problem = check_host(self)
        if problem is not None:
            self.set_status(403)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(problem)

    def _render(self, error: str = "", status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        block = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        self.finish(_PAGE.format(error=block, action=html.escape(self.request.path),
                                 next=html.escape(_safe_next(self.get_argument("next", "/")))))

    def get(self) -> None:
        if api_token() is None:
            self.redirect(_safe_next(self.get_argument("next", "/")))
            return
        self._render()

    def post(self) -> None:
        token = api_token()
        if token is None:
            self.redirect("/")
            return
        problem = check_origin(self)
        if problem is not None:
            log_failure(self, "cross-site", "login form")
            self._render(problem, 403)
            return
        supplied = self.get_body_argument("token", "")
        if not supplied:
            log_failure(self, "missing", "login form token")
            self._render("Enter the access token.", 401)
            return
        if not hmac.compare_digest(supplied.encode("utf-8", "replace"), token.encode("utf-8")):
            log_failure(self, "wrong", "login form token")
            self._render("That is not the access token.", 401)
            return
        set_login_cookie(self, token)
        log.info("signed in through the token login page from %s", self.request.remote_ip)
        self.redirect(_safe_next(self.get_body_argument("next", "/")))


class TokenLogoutHandler(RequestHandler):
    """``GET /logout``: forget the login cookie."""

    def get(self) -> None:
        self.clear_cookie(COOKIE_NAME, path="/")
        self.redirect(LOGIN_URL)


__all__ = [
    "COOKIE_NAME", "LOGIN_URL", "LOGOUT_URL", "REFUSAL", "TokenLoginHandler", "TokenLogoutHandler",
    "allowed_hosts", "api_token", "check_bearer", "check_host", "check_login_cookie", "check_origin",
    "check_startup", "get_user", "host_allowed", "log_failure", "make_login_cookie", "origin_allowed",
    "protection_summary", "ui_locked", "ui_protection",
]
