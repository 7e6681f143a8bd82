"""Fixtures for the hostile-client tests (issue #10): real ``panel serve`` processes.

* ``locked``: one server per module with ``FRAUD_APP_API_TOKEN`` set and the token login page
  (``--auth-module fraud_app/token_login.py``), a saved decision tree, SQLite, its own folders.
* ``open_server``: the same without a token (auth off).

Both are shared by the tests of a module (starting ``panel serve`` takes seconds); each test
leaves the server as it found it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import ApiClient, Response, fitted_tree, raw_request, sample_rows  # noqa: F401
from tests.conftest import ROOT, TEST_ENV, ServedApp, start_app, stop_app

TOKEN = "hostile-review-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
TOKEN_LOGIN = ["--auth-module", str(ROOT / "fraud_app" / "token_login.py")]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """Every FRAUD_APP_* variable a test server sees (nothing inherited from the test process)."""
    env = {name: "" for name in os.environ if name.startswith("FRAUD_APP_")
           and not name.startswith(("FRAUD_APP_TEST_", "FRAUD_APP_REQUIRE_"))}
    env.update(TEST_ENV)
    env.update({
        "FRAUD_APP_HOME": str(home),
        "FRAUD_APP_DATA_DIR": str(home / "data"),
        "FRAUD_APP_OUTPUT_DIR": str(home / "output"),
        "FRAUD_APP_LOG_DIR": str(home / "logs"),
        "FRAUD_APP_LOG_LEVEL": "INFO",
        "FRAUD_APP_DATABASE_URL": f"sqlite:///{home / 'output' / 'fraud_app.sqlite3'}",
    })
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


def _clean_environ(env: dict[str, str]) -> dict[str, str]:
    """os.environ without FRAUD_APP_* settings, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_APP_")
            or k.startswith(("FRAUD_APP_TEST_", "FRAUD_APP_REQUIRE_"))}
    return {**base, **env}


def save_tree(fitted, env: dict[str, str], name: str = "tree") -> None:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        fitted.save(name, overwrite=True)


@dataclass
class Server:
    """A running server, a client for it, and its folders."""

    app: ServedApp
    client: ApiClient
    home: Path
    env: dict[str, str]

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             auth: bool = True, **kwargs: Any) -> Response:
        merged = {**(BEARER if auth else {}), **(headers or {})}
        return self.client.call(method, path, body, headers=merged, **kwargs)

    def count(self) -> int:
        resp = self.call("GET", "/api/predictions?limit=1")
        assert resp.status == 200, resp.body
        return resp.json["total"]

    def log(self) -> str:
        path = self.home / "logs" / "fraud_app.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def console(self) -> str:
        return self.app.log()


def start_server(home: Path, fitted, extra_args: list[str] | None = None, **env_extra: str) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    env = server_env(home, **env_extra)
    if fitted is not None:
        save_tree(fitted, env)
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("FRAUD_APP_") and not name.startswith(("FRAUD_APP_TEST_", "FRAUD_APP_REQUIRE_")):
                mp.delenv(name)
        for key, value in env.items():
            mp.setenv(key, value)
        app = start_app(extra_args=extra_args, log_path=home / "console.log")
    return Server(app, ApiClient("127.0.0.1", app.port), home, env)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, fitted_tree) -> Iterator[Server]:  # noqa: F811
    """A server with a token and the token login page."""
    server = start_server(tmp_path_factory.mktemp("locked"), fitted_tree, [*TOKEN_LOGIN, "--use-xheaders"],
                          FRAUD_APP_API_TOKEN=TOKEN, FRAUD_APP_DB_BUSY_TIMEOUT="1")
    try:
        yield server
    finally:
        stop_app(server.app)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory, fitted_tree) -> Iterator[Server]:  # noqa: F811
    """A server without a token (auth off)."""
    server = start_server(tmp_path_factory.mktemp("open"), fitted_tree, TOKEN_LOGIN)
    try:
        yield server
    finally:
        stop_app(server.app)


def run_server_expecting_exit(home: Path, extra_args: list[str], timeout: float = 90, **env_extra: str) -> str:
    """Start ``panel serve`` and expect it to exit by itself; return its output."""
    home.mkdir(parents=True, exist_ok=True)
    env = _clean_environ(server_env(home, **env_extra))
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--plugins", "fraud_app.api",
           "--port", "0", "--address", "127.0.0.1", *extra_args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def error_of(resp: Response) -> dict:
    assert resp.headers["content-type"].startswith("application/json"), resp.body[:300]
    payload = json.loads(resp.body)
    assert set(payload) == {"error"}
    return payload["error"]
