"""Issue #10, items 1-5: the token protects what it promises (real ``panel serve`` processes)."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse

import pytest

from fraud_app.auth import COOKIE_NAME, make_login_cookie
from tests.security.conftest import (
    BEARER,
    TOKEN,
    TOKEN_LOGIN,
    error_of,
    raw_request,
    run_server_expecting_exit,
    start_server,
)

pytestmark = pytest.mark.slow


def _page(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request without following redirects: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.app.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _login(server, token: str = TOKEN, headers: dict | None = None):
    form = urllib.parse.urlencode({"token": token, "next": "/app"}).encode()
    return _page(server, "POST", "/login", form,
                 {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


def _cookie(set_cookie: str) -> str:
    return set_cookie.split(";")[0]


# -- item 1 ---------------------------------------------------------------------------------------

def test_1_a_token_without_a_ui_login_refuses_to_start(tmp_path):
    output = run_server_expecting_exit(tmp_path / "home", [], FRAUD_APP_API_TOKEN=TOKEN)
    assert "refusing to start" in output
    assert "--auth-module fraud_app/token_login.py" in output and "--basic-auth" in output


def test_1_the_page_asks_for_the_token_and_startup_says_what_protects_what(locked):
    status, headers, _ = _page(locked, "GET", "/app")
    assert status == 302 and headers["location"].lstrip(".").startswith("/login")
    status, _, body = _page(locked, "GET", "/login?next=/app")
    assert status == 200 and b'type="password"' in body and b"http" not in body.split(b"<body>")[1].lower()
    status, _, body = _login(locked, "wrong-token")
    assert status == 401 and b"not the access token" in body
    status, headers, _ = _login(locked)
    assert status == 302 and headers["location"] == "/app"
    cookie = _cookie(headers["set-cookie"])
    status, _, body = _page(locked, "GET", "/app", headers={"Cookie": cookie})
    assert status == 200 and b"bokeh" in body.lower()
    lines = [line for line in locked.log().splitlines() if "access control:" in line]
    assert len(lines) == 1, locked.log()[-2000:]
    assert "UI protected by the token login page" in lines[0] and "API protected by FRAUD_APP_API_TOKEN" in lines[0]


def test_1_basic_auth_with_a_token_protects_both(tmp_path, fitted_tree):
    server = start_server(tmp_path / "home", fitted_tree,
                          ["--basic-auth", "correct-horse-battery", "--cookie-secret", "c" * 32],
                          FRAUD_APP_API_TOKEN=TOKEN)
    try:
        status, headers, _ = _page(server, "GET", "/app")
        assert status == 302 and "login" in headers["location"]
        assert server.call("GET", "/api/models", auth=False).status == 401
        assert server.call("GET", "/api/models").status == 200
        line = next(line for line in server.log().splitlines() if "access control:" in line)
        assert "UI protected by Panel --basic-auth login" in line
    finally:
        from tests.conftest import stop_app

        stop_app(server.app)


# -- item 2 ---------------------------------------------------------------------------------------

def test_2_reads_need_the_token_and_health_says_only_status_and_version(locked, sample_rows):
    created = locked.call("POST", "/api/predictions", sample_rows[0])
    assert created.status == 201, created.body
    for path in ("/api/predictions", f"/api/predictions/{created.json['id']}", "/api/models",
                 "/api/openapi.json", "/api/predictions?limit=1"):
        resp = locked.call("GET", path, auth=False)
        assert resp.status == 401, (path, resp.body)
        assert "Bearer" in resp.headers["www-authenticate"]
        assert locked.call("GET", path).status == 200, path
    anonymous = locked.call("GET", "/api/health", auth=False)
    assert anonymous.status == 200 and set(anonymous.json) == {"status", "version"}
    full = locked.call("GET", "/api/health")
    assert {"pid", "rows", "model", "database"} <= set(full.json)


def test_2_a_blank_token_is_a_configuration_error(tmp_path):
    output = run_server_expecting_exit(tmp_path / "home", TOKEN_LOGIN, FRAUD_APP_API_TOKEN="   ")
    assert "FRAUD_APP_API_TOKEN is set but blank" in output


# -- item 3 ---------------------------------------------------------------------------------------

def test_3_credentials_are_checked_before_the_body_is_sent(locked):
    """A 16 MiB upload without a token is refused on its headers: the answer comes with no body sent."""
    started = time.monotonic()
    status, headers, body = raw_request(locked.client, "POST", "/api/predictions",
                                        {"Content-Length": str(16 * 1024 * 1024),
                                         "Content-Type": "application/json"}, timeout=20)
    assert status == 401 and json.loads(body)["error"]["code"] == 401
    assert time.monotonic() - started < 15  # before the fix the server waited for the body (our timeout)
    # and with a wrong token
    status, _, _ = raw_request(locked.client, "POST", "/api/predictions",
                               {"Content-Length": str(16 * 1024 * 1024), "Content-Type": "application/json",
                                "Authorization": "Bearer nope"}, timeout=20)
    assert status == 401


# -- item 4 ---------------------------------------------------------------------------------------

def test_4_writes_need_json_and_cookie_writes_need_an_allowed_origin(locked, sample_rows):
    before = locked.count()
    body = json.dumps(sample_rows[0])
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        resp = locked.call("POST", "/api/predictions", body, headers={"Content-Type": content_type})
        assert resp.status == 415 and error_of(resp)["field"] == "Content-Type", content_type

    status, headers, _ = _login(locked)
    cookie = _cookie(headers["set-cookie"])
    attributes = headers["set-cookie"].lower()
    assert "samesite=lax" in attributes and "httponly" in attributes and "secure" not in attributes
    origin = f"http://127.0.0.1:{locked.app.port}"
    evil = locked.call("POST", "/api/predictions", body, auth=False,
                       headers={"Cookie": cookie, "Origin": "http://evil.example"})
    assert evil.status == 403 and error_of(evil)["field"] == "Origin"
    evil_referer = locked.call("POST", "/api/predictions", body, auth=False,
                               headers={"Cookie": cookie, "Referer": "http://evil.example/page"})
    assert evil_referer.status == 403
    same = locked.call("POST", "/api/predictions", body, auth=False, headers={"Cookie": cookie, "Origin": origin})
    assert same.status == 201, same.body
    # a bearer-token client is not a browser: no Origin rule
    assert locked.call("POST", "/api/predictions", body, headers={"Origin": "http://elsewhere.example"}).status == 201
    assert locked.count() == before + 2

    # DNS rebinding: a foreign Host is refused, even with a valid token
    rebound = locked.call("GET", "/api/predictions", headers={"Host": f"evil.example:{locked.app.port}"})
    assert rebound.status == 403 and error_of(rebound)["field"] == "Host"
    assert locked.call("GET", "/api/health", headers={"Host": "evil.example"}).status == 403
    assert locked.call("GET", "/api/predictions", headers={"Host": f"localhost:{locked.app.port}"}).status == 200
    status, headers, _ = _page(locked, "GET", "/app", headers={"Host": "evil.example", "Cookie": cookie})
    assert status == 302  # a foreign Host is never logged in; its login page is refused:
    assert _page(locked, "GET", "/login", headers={"Host": "evil.example"})[0] == 403

    # over HTTPS (behind a proxy, --use-xheaders) the login cookie is Secure
    status, headers, _ = _login(locked, headers={"X-Forwarded-Proto": "https"})
    assert status == 302 and "secure" in headers["set-cookie"].lower()


def test_4_allowed_hosts_setting(tmp_path, fitted_tree):
    server = start_server(tmp_path / "home", fitted_tree, TOKEN_LOGIN, FRAUD_APP_ALLOWED_HOSTS="fraud.example.com")
    try:
        assert server.call("GET", "/api/health", headers={"Host": "fraud.example.com"}).status == 200
        assert server.call("GET", "/api/health", headers={"Host": "other.example.com"}).status == 403
    finally:
        from tests.conftest import stop_app

        stop_app(server.app)


# -- item 5 ---------------------------------------------------------------------------------------

def test_5_failed_auth_and_5xx_tracebacks_go_to_the_log_file(locked, sample_rows):
    import sqlite3

    wrong = "Bearer wrong-secret-value-123"
    assert locked.call("GET", "/api/models", auth=False).status == 401
    assert locked.call("GET", "/api/models", auth=False, headers={"Authorization": wrong}).status == 401
    expired = make_login_cookie(TOKEN, now=time.time() - 10 * 24 * 3600)
    assert locked.call("GET", "/api/predictions", auth=False,
                       headers={"Cookie": f"{COOKIE_NAME}={expired}"}).status == 401
    log = locked.log()
    assert re.search(r"auth failed: missing .* on GET /api/models from 127\.0\.0\.1", log), log[-2000:]
    assert re.search(r"auth failed: wrong bearer token on GET /api/models from 127\.0\.0\.1", log)
    assert re.search(r"auth failed: expired login cookie on GET /api/predictions from 127\.0\.0\.1", log)
    assert "wrong-secret-value-123" not in log and TOKEN not in log

    # a 5xx: the predictions table vanished under the server
    database = locked.home / "output" / "fraud_app.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE predictions RENAME TO predictions_away")
    try:
        resp = locked.call("POST", "/api/predictions", sample_rows[0])
        assert resp.status == 500 and "Traceback" not in resp.body.decode()
    finally:
        with sqlite3.connect(database) as conn:
            conn.execute("ALTER TABLE predictions_away RENAME TO predictions")
    log = locked.log()
    assert "uncaught exception on POST /api/predictions" in log and "Traceback" in log
    assert "no such table" in log.lower() or "predictions" in log
