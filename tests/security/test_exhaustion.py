"""Issue #10, items 6-8: no client can exhaust the server (real ``panel serve`` processes).

These tests check behaviour, with generous bounds; the figures (RSS, latencies) come from
``bench/bench_security.py``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.security.conftest import BEARER, TOKEN, error_of, raw_request, start_server
from tests.conftest import stop_app

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def aborted_upload(port: int, token: str | None, size: int = 16 * MIB) -> None:
    """Declare ``size`` bytes, send all but the last one, then close: an upload aborted at the very end."""
    head = (f"POST /api/predictions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "") + "\r\n")
    block = b" " * (256 * 1024)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head.encode())
            left = size - 1
            while left > 0:
                sent = sock.send(block[:min(left, len(block))])
                left -= sent
    except OSError:
        pass  # refused at once (503) and closed by the server: what a flood should get


def test_6_aborted_uploads_are_freed_and_capped(tmp_path, fitted_tree, sample_rows):
    server = start_server(tmp_path / "home", fitted_tree, None, FRAUD_APP_MAX_BUFFERED_MB="40")
    try:
        pid = server.app.proc.pid
        assert server.call("POST", "/api/predictions", sample_rows[0]).status == 201  # warm: model loaded
        start = rss_mb(pid)
        for _ in range(2):
            with ThreadPoolExecutor(40) as pool:
                list(pool.map(lambda _: aborted_upload(server.app.port, None), range(40)))
        time.sleep(2)
        grown = rss_mb(pid) - start
        assert grown < 100, f"RSS grew by {grown:.0f} MB after 80 aborted 16 MiB uploads"
        # every aborted upload gave its share of the budget back: a real request is served
        assert server.call("POST", "/api/predictions", sample_rows[1]).status == 201

        # beyond the cap: 503 with Retry-After, decided on the headers
        holders = [socket.create_connection(("127.0.0.1", server.app.port)) for _ in range(2)]
        try:
            for sock in holders:
                sock.sendall((f"POST /api/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                              f"\r\nContent-Length: {16 * MIB}\r\n\r\n").encode() + b" " * MIB)
            time.sleep(0.5)
            status, headers, body = raw_request(server.client, "POST", "/api/predictions",
                                                {"Content-Length": str(16 * MIB), "Content-Type": "application/json"})
            assert status == 503 and int(headers["retry-after"]) > 0
            assert "busy" in json.loads(body)["error"]["message"]
        finally:
            for sock in holders:
                sock.close()
        time.sleep(0.5)
        assert server.call("POST", "/api/predictions", sample_rows[2]).status == 201
        assert server.count() == 3
    finally:
        stop_app(server.app)


def test_6_with_a_token_aborted_unauthorised_uploads_hold_nothing(locked):
    pid = locked.app.proc.pid
    start = rss_mb(pid)
    with ThreadPoolExecutor(40) as pool:
        list(pool.map(lambda _: aborted_upload(locked.app.port, "wrong"), range(40)))
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda _: aborted_upload(locked.app.port, TOKEN), range(20)))
    time.sleep(2)
    assert rss_mb(pid) - start < 100
    assert locked.call("GET", "/api/models").status == 200


def test_7_a_database_lock_does_not_freeze_the_api(tmp_path, fitted_tree, sample_rows):
    server = start_server(tmp_path / "home", fitted_tree, None, FRAUD_APP_DB_BUSY_TIMEOUT="3")
    try:
        assert server.call("POST", "/api/predictions", sample_rows[0]).status == 201
        database = server.home / "output" / "fraud_app.sqlite3"
        holder = sqlite3.connect(database, timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with ThreadPoolExecutor(6) as pool:
                # more writers than API worker threads: every worker is now blocked on the lock
                def timed_post():
                    started = time.monotonic()
                    resp = server.call("POST", "/api/predictions", {"transactions": sample_rows[:20]})
                    return resp, time.monotonic() - started

                posts = [pool.submit(timed_post) for _ in range(6)]
                time.sleep(1.5)
                latencies, statuses = [], []
                for _ in range(5):
                    started = time.monotonic()
                    health = server.call("GET", "/api/health")
                    latencies.append(time.monotonic() - started)
                    statuses.append(health.json["database"]["status"])
                    assert health.status == 200
                results = [future.result() for future in posts]
            assert max(latencies) < 1.0, latencies  # before: as long as the lock (every worker blocked)
            assert "degraded" in statuses, statuses
            for resp, elapsed in results:
                assert resp.status == 503, resp.body
                assert elapsed < 3 + 1.5, elapsed  # the busy timeout bounds the wait, queued or not
                assert int(resp.headers["retry-after"]) > 0
                assert "lock" in error_of(resp)["message"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert server.count() == 1  # nothing half-written
        assert server.call("POST", "/api/predictions", {"transactions": sample_rows[:5]}).status == 201
        assert server.count() == 6
        assert server.call("GET", "/api/health").json["database"]["status"] == "ok"
    finally:
        stop_app(server.app)


def test_8_page_loads_and_api_calls_share_the_server(open_server, sample_rows, monkeypatch):
    """While browsers reload /app, every API call is answered and nothing is lost."""
    stop = threading.Event()
    pages = []

    def reload_loop() -> None:
        while not stop.is_set():
            with urllib.request.urlopen(f"{open_server.app.url}/app", timeout=60) as resp:
                pages.append(resp.status)

    before = open_server.count()
    loops = [threading.Thread(target=reload_loop) for _ in range(2)]
    for loop in loops:
        loop.start()
    try:
        statuses = [open_server.call("POST", "/api/predictions", sample_rows[i % 10]).status for i in range(10)]
    finally:
        stop.set()
        for loop in loops:
            loop.join(90)
    assert statuses == [201] * 10
    assert pages and set(pages) == {200}
    assert open_server.count() == before + 10


def test_8_api_work_runs_in_worker_threads(app_env, fitted_tree, sample_rows, monkeypatch):
    """Scoring, storage, listing and health checks run off the event loop (in-process server); only a small
    body's decoding may run on it (tests/api/test_handlers.py covers where each body is decoded)."""
    from fraud_app.api import handlers
    from fraud_app.inference import service
    from fraud_app.storage import writer
    from tests.api.conftest import InProcessServer

    fitted_tree.save("tree", overwrite=True)
    seen: dict[str, str] = {}

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            seen[name] = threading.current_thread().name
            return fn(*args, **kwargs)
        return wrapper

    for name in ("_list_payload", "_models_payload", "_get_prediction", "_dataset_info", "_model_info"):
        monkeypatch.setattr(handlers, name, spy(name, getattr(handlers, name)))
    monkeypatch.setattr(service, "_predict", spy("_predict", service._predict))
    monkeypatch.setattr(writer.GroupWriter, "write", spy("GroupWriter.write", writer.GroupWriter.write))
    import fraud_app.storage as storage

    monkeypatch.setattr(storage, "probe_database", spy("probe_database", storage.probe_database))
    server = InProcessServer()
    client = server.start()
    try:
        created = client.post("/api/predictions", sample_rows[0])
        assert created.status == 201
        assert client.get("/api/predictions").status == 200
        assert client.get(f"/api/predictions/{created.json['id']}").status == 200
        assert client.get("/api/models").status == 200
        assert client.get("/api/health").status == 200
    finally:
        server.stop()
    assert set(seen) == {"_predict", "GroupWriter.write", "_list_payload", "_models_payload", "_get_prediction",
                         "_dataset_info", "_model_info", "probe_database"}
    for name, thread in seen.items():
        assert thread.startswith(("fraud-api", "fraud-health")), (name, thread)


_ = BEARER
