"""Fixtures for the storage/inference/API tests.

* ``database``: parametrised over a temp-file SQLite database and PostgreSQL
  (``FRAUD_APP_TEST_POSTGRES_URL``; one fresh schema per test, dropped afterwards). Without
  the URL the PostgreSQL variant is skipped, unless ``FRAUD_APP_REQUIRE_POSTGRES=1``, then it fails.
* ``saved_model``: a small decision tree (fitted once per session on seeded synthetic data),
  saved as ``"tree"`` into the test's own models folder.
* ``api``: the ``ROUTES`` served by a plain Tornado application in a background thread on a free
  port, with a tiny JSON client.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

POSTGRES_ENV = "FRAUD_APP_TEST_POSTGRES_URL"


def postgres_base_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if url:
        return url
    if os.environ.get("FRAUD_APP_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"FRAUD_APP_REQUIRE_POSTGRES=1 but {POSTGRES_ENV} is not set")
    pytest.skip(f"{POSTGRES_ENV} is not set (PostgreSQL tests skipped)")
    return None


@dataclass
class Database:
    kind: str
    url: str


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A fresh, empty database for this test; FRAUD_APP_DATABASE_URL points at it."""
    yield from _database(request.param, app_env, monkeypatch)


@pytest.fixture
def database_postgres(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """Like ``database``, PostgreSQL only."""
    yield from _database("postgres", app_env, monkeypatch)


def _database(kind: str, app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    from fraud_app.storage import dispose_engines

    if kind == "sqlite":
        url = f"sqlite:///{app_env / 'db' / 'predictions.sqlite3'}"
        monkeypatch.setenv("FRAUD_APP_DATABASE_URL", url)
        yield Database("sqlite", url)
        dispose_engines()
        return
    from sqlalchemy import create_engine, text

    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = _with_search_path(base, schema)
        monkeypatch.setenv("FRAUD_APP_DATABASE_URL", url)
        yield Database("postgres", url)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _reset_process_state() -> Iterator[None]:
    """No engine or loaded model leaks from one test into the next."""
    yield
    from fraud_app.inference import clear_model_cache
    from fraud_app.storage import dispose_engines

    dispose_engines()
    clear_model_cache()


@pytest.fixture(scope="session")
def fitted_tree():
    """A small decision tree fitted once per session on seeded synthetic data."""
    from fraud_app.data import MODEL_FEATURES, make_synthetic
    from fraud_app.models import create

    frame = make_synthetic(3000, 0.05, 7)
    return create("decision_tree", max_depth=4, random_state=0).fit(frame[MODEL_FEATURES], frame["is_fraud"])


@pytest.fixture
def saved_model(fitted_tree, app_env: Path) -> str:
    """The fitted tree saved as ``"tree"`` in this test's models folder; returns the name."""
    fitted_tree.save("tree", overwrite=True)
    return "tree"


@pytest.fixture(scope="session")
def sample_rows() -> list[dict[str, float]]:
    """Fifty valid transactions (the 29 inputs) from the synthetic generator."""
    from fraud_app.data import MODEL_FEATURES, make_synthetic

    frame = make_synthetic(2000, 0.05, 11)
    frauds = frame[frame["is_fraud"] == 1].head(10)
    legit = frame[frame["is_fraud"] == 0].head(40)
    rows = []
    for part in (frauds, legit):
        for record in part[MODEL_FEATURES].to_dict(orient="records"):
            rows.append({key: float(value) for key, value in record.items()})
    return rows


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class ApiClient:
    """A minimal HTTP client for one base URL (a new connection per call)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 60) -> Response:
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.call("POST", path, body, **kwargs)

    def settled_health(self, timeout: float = 60, **kwargs: Any) -> dict:
        """``/api/health`` once the data set and the active model are loaded (it never waits for them)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            payload = self.get("/api/health", **kwargs).json
            if payload.get("status") == "ok" and payload.get("model") is not None or time.monotonic() > deadline:
                return payload
            time.sleep(0.2)


def raw_request(client: ApiClient, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send a request's head (and ``body``, possibly shorter than its Content-Length) on a raw socket and
    read the answer, without ever sending the rest: what a refused client sees before uploading."""
    import socket

    head = f"{method} {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection((client.host, client.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        got = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(got.get("content-length", "0"))
        while len(rest) < length:
            part = sock.recv(65536)
            if not part:
                break
            rest += part
    return status, got, rest


class InProcessServer:
    """``tornado.web.Application(ROUTES)`` on a free loopback port in a daemon thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="api-test-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            from tornado.web import Application

            from fraud_app.api import ROUTES

            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            server = Application(ROUTES).listen(self.port, "127.0.0.1")
            self._ready.set()
            await self._stop.wait()
            server.stop()
            await server.close_all_connections()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    def start(self) -> ApiClient:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"in-process API server did not start: {self._error!r}")
        return ApiClient("127.0.0.1", self.port)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="session")
def _api_server() -> Iterator[ApiClient]:
    server = InProcessServer()
    client = server.start()
    try:
        yield client
    finally:
        server.stop()


@pytest.fixture
def api(_api_server: ApiClient, app_env: Path) -> ApiClient:
    """The API handlers served in-process (one server per session).

    The handlers read the database URL, the models folder and the token from the
    environment on each request, so every test still gets its own database and models.
    """
    return _api_server
