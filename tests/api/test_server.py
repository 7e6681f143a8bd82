"""The API inside the real ``panel serve app.py --plugins fraud_app.api`` process."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from fraud_app import storage
from fraud_app.api.handlers import MAX_BODY_BYTES
from tests.api.conftest import ApiClient, raw_request
from tests.api.test_handlers import assert_error
from tests.conftest import start_app, stop_app

pytestmark = pytest.mark.slow


def test_real_server_scores_saves_and_answers_json_errors(saved_model, sample_rows):
    app = start_app()
    try:
        client = ApiClient("127.0.0.1", app.port)
        created = client.post("/api/predictions", sample_rows[0])
        assert created.status == 201, created.body
        assert client.get(created.headers["location"]).json["features"] == sample_rows[0]
        batch = client.post("/api/predictions", {"transactions": sample_rows[:10]})
        assert batch.status == 201 and batch.json["count"] == 10

        # 17 MiB declared: above our 16 MiB limit, below Tornado's own 100 MB; refused before it is sent.
        status, _, body = raw_request(client, "POST", "/api/predictions",
                                      {"Content-Length": str(17 * 1024 * 1024), "Content-Type": "application/json"})
        assert status == 413 and json.loads(body)["error"]["code"] == 413
        assert MAX_BODY_BYTES < 17 * 1024 * 1024
        assert_error(client.call("DELETE", "/api/predictions"), 405)
        assert_error(client.get("/api/predictions/12345"), 404, "id")
        assert_error(client.get("/api/unknown"), 404)
        assert_error(client.post("/api/predictions", b"{oops"), 400, "body")
        assert client.settled_health()["model"]["name"] == "tree"
        assert storage.count_predictions() == 11
    finally:
        stop_app(app)
    assert "Traceback" not in app.log(), app.log()[-3000:]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Stop at the login's redirect: rendering the app page is not what these tests measure."""

    def redirect_request(self, *args, **kwargs):
        return None


class _Browser:
    """urllib with a cookie jar: what a logged-in script or browser does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def open(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as resp:
                return resp.status, resp.geturl(), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.url, exc.read()

    def login(self, username: str, password: str):
        form = urllib.parse.urlencode({"username": username, "password": password}).encode()
        return self.open("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})


def test_basic_auth_protects_the_api(saved_model, sample_rows):
    password = "correct-horse-battery"
    app = start_app(extra_args=["--basic-auth", password, "--cookie-secret", "test-cookie-secret-0123456789"])
    try:
        anonymous = _Browser(app.url)
        body = json.dumps(sample_rows[0]).encode()
        status, _, payload = anonymous.open("GET", "/api/health")
        assert status == 200 and set(json.loads(payload)) == {"status", "version"}  # open, but minimal
        for method, path, data in [("GET", "/api/predictions", None), ("GET", "/api/models", None),
                                   ("GET", "/api/openapi.json", None),
                                   ("GET", "/api/predictions/1", None), ("POST", "/api/predictions", body),
                                   ("PUT", "/api/predictions", body), ("GET", "/api/nothing", None)]:
            status, _, payload = anonymous.open(method, path, data, {"Content-Type": "application/json"})
            assert status == 401, (method, path, status, payload[:200])
            assert json.loads(payload)["error"]["code"] == 401
            assert "/login" in json.loads(payload)["error"]["message"]
        assert storage.count_predictions() == 0

        wrong = _Browser(app.url)
        status, _, _ = wrong.login("alice", "not-the-password")
        assert status == 302 and "user" not in {cookie.name for cookie in wrong.jar}
        assert wrong.open("GET", "/api/predictions")[0] == 401

        alice = _Browser(app.url)
        status, _, _ = alice.login("alice", password)
        assert status == 302
        assert "user" in {cookie.name for cookie in alice.jar}
        status, _, payload = alice.open("POST", "/api/predictions", body, {"Content-Type": "application/json"})
        assert status == 201, payload
        created = json.loads(payload)
        status, _, payload = alice.open("GET", f"/api/predictions/{created['id']}")
        assert status == 200 and json.loads(payload)["features"] == sample_rows[0]
        assert alice.open("GET", "/api/predictions")[0] == 200
        assert storage.count_predictions() == 1
    finally:
        stop_app(app)


@pytest.mark.postgres
def test_several_server_processes_share_postgres(saved_model, sample_rows, database_postgres):
    """``panel serve --num-procs 2`` on PostgreSQL: each forked process gets its own engine; no row is lost."""
    from concurrent.futures import ThreadPoolExecutor

    app = start_app(extra_args=["--num-procs", "2"])
    try:
        client = ApiClient("127.0.0.1", app.port)

        def worker(i: int) -> tuple[list[int], set[int]]:
            ids, pids = [], set()
            for j in range(6):
                resp = client.post("/api/predictions", sample_rows[(i + j) % len(sample_rows)])
                assert resp.status == 201, resp.body
                ids.append(resp.json["id"])
            pids.update(client.get("/api/health").json["pid"] for _ in range(3))
            return ids, pids

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(worker, range(8)))
        ids = [i for got, _ in results for i in got]
        pids = set().union(*(p for _, p in results))
        assert len(set(ids)) == 48
        assert {p["id"] for p in storage.list_predictions(limit=1000)} == set(ids)
        assert len(pids) == 2, f"requests were served by {pids}"
    finally:
        stop_app(app)
    assert "Traceback" not in app.log(), app.log()[-3000:]
