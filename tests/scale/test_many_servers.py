"""Many servers: two separate ``panel serve`` commands on two ports, one PostgreSQL, one model store.

A model saved through the first deployment's command line into the shared store
(``FRAUD_APP_MODELS_URL``) after both servers started is listed and served by both, and the
predictions posted to either land in the one ``predictions`` table.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import postgres_base_url
from tests.conftest import ROOT, stop_app
from tests.security.conftest import TOKEN_LOGIN, _clean_environ, start_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database; yields its URL (search_path set), dropped afterwards."""
    from sqlalchemy import create_engine, text

    from tests.api.conftest import _with_search_path

    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(base, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_two_servers_share_one_postgresql_and_one_model_store(tmp_path: Path, shared_postgres: str) -> None:
    from sqlalchemy import create_engine, text

    from fraud_app.data import MODEL_FEATURES, make_synthetic

    store = tmp_path / "shared-models"
    store.mkdir()
    shared = {"FRAUD_APP_DATABASE_URL": shared_postgres, "FRAUD_APP_MODELS_URL": f"file://{store}"}
    first = start_server(tmp_path / "host-a", None, TOKEN_LOGIN, **shared)
    try:
        second = start_server(tmp_path / "host-b", None, TOKEN_LOGIN, **shared)
        try:
            assert first.app.port != second.app.port
            assert first.call("GET", "/api/models", auth=False).json["models"] == []
            # a model saved through the first deployment (its CLI, its settings) after both servers started
            saved = subprocess.run([sys.executable, "-m", "fraud_app", "train", "--model", "decision_tree",
                                    "--name", "shared_tree", "--threshold", "validation"], cwd=ROOT,
                                   env=_clean_environ(first.env), capture_output=True, text=True, timeout=300)
            assert saved.returncode == 0, saved.stderr
            assert (store / "shared_tree" / "metadata.json").exists()
            assert not (first.home / "output" / "models").exists()  # not the server's own folder
            for server in (second, first):
                names = [m["name"] for m in server.call("GET", "/api/models", auth=False).json["models"]]
                assert names == ["shared_tree"]
            rows = make_synthetic(200, 0.05, 11)
            ids = []
            for i, server in enumerate((first, second, second, first)):
                body = {"model": "shared_tree", **{k: float(rows.iloc[i][k]) for k in MODEL_FEATURES}}
                resp = server.call("POST", "/api/predictions", body, auth=False)
                assert resp.status == 201, resp.body
                assert resp.json["model"] == "shared_tree"
                ids.append(resp.json["id"])
            assert len(set(ids)) == 4  # one sequence: ids never collide across servers
            engine = create_engine(shared_postgres)
            try:
                with engine.connect() as conn:
                    stored = conn.execute(text("SELECT id, model FROM predictions ORDER BY id")).all()
            finally:
                engine.dispose()
            assert sorted(ids) == [r.id for r in stored] and {r.model for r in stored} == {"shared_tree"}
            for server in (first, second):
                assert server.call("GET", "/api/predictions?limit=10", auth=False).json["total"] == 4
                one = server.call("GET", f"/api/predictions/{ids[1] if server is first else ids[0]}", auth=False)
                assert one.status == 200  # each server reads the other's rows
        finally:
            stop_app(second.app)
    finally:
        stop_app(first.app)
