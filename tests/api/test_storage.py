"""Storage: engine per process, SQLite pragmas, tables, repository functions, atomic batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from fraud_app import storage
from fraud_app.storage import predictions
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("database")


def _row(i: int = 0, **overrides):
    row = {"model": "m", "model_version": "v1", "features": {"feature1": float(i), "amount": 1.5},
           "fraud_probability": 0.25, "is_fraud": False, "threshold": 0.5, "source": "api"}
    row.update(overrides)
    return row


def test_engine_is_created_once_per_process_and_url(database):
    first = storage.get_engine()
    assert storage.get_engine() is first
    assert first.url.render_as_string(hide_password=False) == database.url or database.kind == "postgres"
    assert storage.database_url() == database.url


def test_tables_are_created_with_expected_columns(database):
    from sqlalchemy import inspect

    inspector = inspect(storage.get_engine())
    assert {"predictions", "training_runs"} <= set(inspector.get_table_names())
    columns = {c["name"] for c in inspector.get_columns("predictions")}
    assert columns == {"id", "created_at", "model", "model_version", "features", "fraud_probability",
                       "is_fraud", "threshold", "source", "label", "labeled_at", "labeled_by"}
    columns = {c["name"] for c in inspector.get_columns("training_runs")}
    assert columns == {"id", "created_at", "model", "kind", "params", "metrics", "saved", "duration_s"}


def test_sqlite_pragmas_and_parent_folder(app_env, monkeypatch, database):
    if database.kind != "sqlite":
        pytest.skip("SQLite only")
    path = app_env / "deep" / "nested" / "x.sqlite3"
    url = f"sqlite:///{path}"
    monkeypatch.setenv("FRAUD_APP_DATABASE_URL", url)
    engine = storage.get_engine()
    assert path.parent.is_dir() and path.exists()
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000  # FRAUD_APP_DB_BUSY_TIMEOUT default
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_insert_returns_stored_rows_and_reads_back(database):
    stored = storage.insert_predictions([_row(i) for i in range(3)])
    assert [r["id"] for r in stored] == sorted(r["id"] for r in stored)
    assert len({r["id"] for r in stored}) == 3
    one = storage.get_prediction(stored[1]["id"])
    assert one == stored[1]
    assert one["features"] == {"feature1": 1.0, "amount": 1.5}
    assert one["created_at"].endswith("Z")
    created = datetime.fromisoformat(one["created_at"].replace("Z", "+00:00"))
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=5)
    assert storage.get_prediction(10**9) is None
    assert storage.count_predictions() == 3


def test_list_is_newest_first_with_limit_and_offset(database):
    ids = [storage.insert_predictions([_row(i)])[0]["id"] for i in range(5)]
    listed = [r["id"] for r in storage.list_predictions(limit=2, offset=1)]
    assert listed == [ids[3], ids[2]]
    assert [r["id"] for r in storage.list_predictions()] == ids[::-1]
    assert storage.list_predictions(limit=10, offset=5) == []
    with pytest.raises(ValueError):
        storage.list_predictions(limit=-1)


def test_source_check_constraint_in_the_database(database):
    with pytest.raises(IntegrityError):
        with storage.get_engine().begin() as conn:
            conn.execute(insert(predictions), {**_row(), "source": "bogus",
                                               "created_at": datetime.now(UTC)})
    with pytest.raises(ValueError, match="source"):
        storage.insert_predictions([_row(source="web")])
    assert storage.count_predictions() == 0


def test_a_batch_is_atomic(database):
    storage.insert_predictions([_row(0)])
    bad_batch = [_row(1), _row(2), _row(3, fraud_probability=1.5), _row(4)]  # row 3 would violate a CHECK
    with pytest.raises(ValueError, match="fraud_probability"):  # refused before it can fail a group commit
        storage.insert_predictions(bad_batch)
    assert storage.count_predictions() == 1
    # the database's own CHECK still guards the table
    with pytest.raises(IntegrityError), storage.get_engine().begin() as conn:
        conn.execute(insert(predictions), [{**_row(5), "created_at": datetime.now(UTC)},
                                           {**_row(6, fraud_probability=1.5), "created_at": datetime.now(UTC)}])
    assert storage.count_predictions() == 1


def test_training_runs_roundtrip(database):
    class FakeResult:
        def to_dict(self, include_scores=False):
            assert include_scores is False
            return {"name": "lgbm", "kind": "lightgbm", "params": {"n_estimators": np.int64(50)},
                    "metrics": {"f1": np.float64(0.8), "roc_auc": float("nan"),
                                "confusion_matrix": np.array([[1, 2], [3, 4]])},
                    "saved": True, "duration_s": 1.25}

    first = storage.record_training_run(FakeResult())
    second = storage.record_training_run({"kind": "decision_tree", "params": {}, "metrics": {"f1": 0.5},
                                          "saved": False, "duration_s": None})
    runs = storage.list_training_runs()
    assert [r["id"] for r in runs] == [second, first]
    assert runs[1]["model"] == "lgbm" and runs[1]["kind"] == "lightgbm" and runs[1]["saved"] is True
    assert runs[1]["params"] == {"n_estimators": 50}
    assert runs[1]["metrics"] == {"f1": 0.8, "roc_auc": None, "confusion_matrix": [[1, 2], [3, 4]]}
    assert runs[0]["model"] is None and runs[0]["duration_s"] is None
    assert storage.list_training_runs(limit=1)[0]["id"] == second
    with pytest.raises(ValueError, match="kind"):
        storage.record_training_run({"params": {}})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_its_own_engine(database):
    parent_engine = storage.get_engine()
    storage.insert_predictions([_row(0)])
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's pool
        code = 1
        try:
            os.close(read_fd)
            child_engine = storage.get_engine()
            stored = storage.insert_predictions([_row(1)])
            report = {"same": child_engine is parent_engine, "id": stored[0]["id"]}
            os.write(write_fd, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as handle:
        report = json.loads(handle.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report["same"] is False
    # The parent's engine still works after the child disposed its inherited copy.
    assert storage.get_engine() is parent_engine
    assert storage.count_predictions() == 2


WRITER = """
import sys
from fraud_app import storage
for i in range(int(sys.argv[1])):
    storage.insert_predictions([{"model": "m", "model_version": "v", "features": {"i": i},
        "fraud_probability": 0.5, "is_fraud": True, "threshold": 0.5, "source": "batch"}])
"""


@pytest.mark.slow
def test_several_processes_write_concurrently(database):
    storage.init_db()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, "40"], env=env, cwd=ROOT) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert storage.count_predictions() == 160



def test_writers_give_up_at_their_deadline_when_the_database_is_locked(database, monkeypatch):
    """Another connection holds the lock: every concurrent writer fails with DatabaseBusyError by its
    deadline (queued behind this process's other writes or not), and nothing is written."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import create_engine

    monkeypatch.setenv("FRAUD_APP_DB_BUSY_TIMEOUT", "0.6")
    storage.insert_predictions([_row(0)])
    holder_engine = create_engine(database.url)
    holder = holder_engine.connect()
    transaction = holder.begin()
    if database.kind == "sqlite":
        holder.exec_driver_sql("DELETE FROM predictions WHERE id < 0")  # takes SQLite's write lock
    else:
        holder.exec_driver_sql("LOCK TABLE predictions IN EXCLUSIVE MODE")
    outcomes, lock = [], threading.Lock()

    def write(i: int) -> None:
        started = time.monotonic()
        try:
            storage.insert_predictions([_row(i), _row(i + 100)])
            outcome = "written"
        except storage.DatabaseBusyError:
            outcome = "busy"
        with lock:
            outcomes.append((outcome, time.monotonic() - started))

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(1, 9)))
    finally:
        transaction.rollback()
        holder.close()
        holder_engine.dispose()
    assert [o for o, _ in outcomes] == ["busy"] * 8
    assert max(t for _, t in outcomes) < 0.6 + 1.0, outcomes
    assert storage.count_predictions() == 1
    storage.insert_predictions([_row(50)])
    assert storage.count_predictions() == 2


@pytest.mark.parametrize("setting, expected", [(None, 1), ("NORMAL", 1), ("FULL", 2), ("full", 2)])
def test_sqlite_synchronous_is_a_setting(app_env, monkeypatch, database, setting, expected):
    """WAL with synchronous=NORMAL (1) by default; FRAUD_APP_SQLITE_SYNCHRONOUS=FULL (2) fsyncs every commit."""
    if database.kind != "sqlite":
        pytest.skip("SQLite only")
    if setting is None:
        monkeypatch.delenv("FRAUD_APP_SQLITE_SYNCHRONOUS", raising=False)
    else:
        monkeypatch.setenv("FRAUD_APP_SQLITE_SYNCHRONOUS", setting)
    storage.dispose_engines()
    with storage.get_engine().connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == expected
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    storage.dispose_engines()


def test_a_bad_synchronous_setting_is_refused(monkeypatch):
    from fraud_app.config import ConfigError, get_settings

    monkeypatch.setenv("FRAUD_APP_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(ConfigError, match="NORMAL or FULL"):
        get_settings()
