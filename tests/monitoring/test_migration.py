"""Alembic: a database of the release before migrations is upgraded in place, no row lost (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    inspect,
    select,
    text,
)

from fraud_app.data import MODEL_FEATURES
from fraud_app.storage.tables import UTCDateTime

#: The schema exactly as the release before migrations created it (``metadata.create_all``).
_ID = BigInteger().with_variant(Integer(), "sqlite")
OLD = MetaData()
OLD_PREDICTIONS = Table(
    "predictions", OLD,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("model", String(128), nullable=False),
    Column("model_version", String(128), nullable=True),
    Column("features", JSON(none_as_null=True), nullable=False),
    Column("fraud_probability", Float(), nullable=False),
    Column("is_fraud", Boolean(), nullable=False),
    Column("threshold", Float(), nullable=False),
    Column("source", String(8), nullable=False),
    CheckConstraint("source IN ('ui', 'api', 'batch')", name="ck_predictions_source"),
    CheckConstraint("fraud_probability >= 0 AND fraud_probability <= 1", name="ck_predictions_probability"),
)
OLD_RUNS = Table(
    "training_runs", OLD,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("model", String(128), nullable=True),
    Column("kind", String(64), nullable=False),
    Column("params", JSON(none_as_null=True), nullable=False),
    Column("metrics", JSON(none_as_null=True), nullable=False),
    Column("saved", Boolean(), nullable=False),
    Column("duration_s", Float(), nullable=True),
)
N_ROWS = 1500
START = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)


def _populate_old_release(url: str) -> None:
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() == "sqlite":
        from pathlib import Path

        Path(make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        OLD.create_all(engine)
        rows = [{"created_at": START + timedelta(minutes=i), "model": "tree", "model_version": "v1",
                 "features": {name: float(i % 7) for name in MODEL_FEATURES},
                 "fraud_probability": (i % 100) / 100, "is_fraud": i % 100 >= 90, "threshold": 0.9,
                 "source": ("ui", "api", "batch")[i % 3]} for i in range(N_ROWS)]
        with engine.begin() as conn:
            conn.execute(OLD_PREDICTIONS.insert(), rows)
            conn.execute(OLD_RUNS.insert(), {"created_at": START, "model": "tree", "kind": "decision_tree",
                                             "params": {}, "metrics": {"f1": 0.5}, "saved": True, "duration_s": 1.0})
    finally:
        engine.dispose()


def test_the_latest_revision_matches_the_tables_module():
    from alembic.script import ScriptDirectory

    from fraud_app.storage.migrations import HEAD, MIGRATIONS_DIR, _config

    script = ScriptDirectory.from_config(_config(None))
    assert script.get_heads() == [HEAD]
    assert str(MIGRATIONS_DIR).endswith("fraud_app/storage/migrations")


def test_a_populated_database_of_the_previous_release_is_upgraded_in_place(database):
    from fraud_app import storage
    from fraud_app.storage.migrations import HEAD, current_revision
    from fraud_app.storage.tables import monitoring_bins, monitoring_volume, predictions

    _populate_old_release(database.url)
    engine = storage.init_db()  # the app's first open of the database runs the migrations
    with engine.connect() as conn:
        assert current_revision(conn) == HEAD
        assert conn.execute(select(func.count()).select_from(predictions)).scalar_one() == N_ROWS
        assert conn.execute(text("SELECT COUNT(*) FROM training_runs")).scalar_one() == 1
        assert conn.execute(select(func.sum(monitoring_volume.c.count))).scalar_one() == N_ROWS
        assert conn.execute(select(func.sum(monitoring_volume.c.flagged))).scalar_one() == N_ROWS // 10
        assert conn.execute(select(func.sum(monitoring_bins.c.count))
                            .where(monitoring_bins.c.feature == "fraud_probability")).scalar_one() == N_ROWS
        # 1,500 minutes from 08:30: 26 hours, three sources
        hours = conn.execute(select(func.count(func.distinct(monitoring_volume.c.hour)))).scalar_one()
        assert hours == 26
        first = conn.execute(select(func.min(monitoring_volume.c.hour))).scalar_one()
        assert first == datetime(2026, 2, 1, 8, tzinfo=UTC)
    columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
    assert {"label", "labeled_at", "labeled_by"} <= columns
    indexes = {i["name"] for i in inspect(engine).get_indexes("predictions")}
    assert {"ix_predictions_labeled", "ix_predictions_review"} <= indexes

    # the old rows read, label and list as before; new rows are written next to them
    old = storage.get_prediction(2)
    assert old["features"]["feature1"] == 1.0 and old["label"] is None and old["source"] == "api"
    assert storage.set_label(2, "fraud", "analyst")["label"] == "fraud"
    new = storage.insert_predictions([{"model": "tree", "model_version": "v1", "features": old["features"],
                                       "fraud_probability": 0.5, "is_fraud": False, "threshold": 0.9,
                                       "source": "api"}])
    assert new[0]["id"] == N_ROWS + 1
    assert storage.count_predictions() == N_ROWS + 1

    # a second open (another process, a restart) finds it current and changes nothing
    storage.dispose_engines()
    from fraud_app.storage.migrations import upgrade

    assert upgrade(storage.get_engine()) == "current"


def test_a_fresh_database_is_created_at_the_latest_revision_and_matches_an_upgraded_one(database, tmp_path):
    from fraud_app import storage
    from fraud_app.storage.migrations import HEAD, current_revision

    engine = storage.init_db()
    with engine.connect() as conn:
        assert current_revision(conn) == HEAD
    fresh = inspect(engine)
    tables = sorted(t for t in fresh.get_table_names() if t != "alembic_version")
    assert tables == ["monitoring_bins", "monitoring_volume", "predictions", "training_runs"]
    if database.kind != "sqlite":
        return
    old_url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    _populate_old_release(old_url)
    upgraded_engine = storage.get_engine(old_url)
    upgraded = inspect(upgraded_engine)
    for table in tables:
        assert [c["name"] for c in upgraded.get_columns(table)] == [c["name"] for c in fresh.get_columns(table)]
        assert {i["name"] for i in upgraded.get_indexes(table)} == {i["name"] for i in fresh.get_indexes(table)}
        assert upgraded.get_pk_constraint(table)["constrained_columns"] == \
            fresh.get_pk_constraint(table)["constrained_columns"]


def test_processes_racing_to_upgrade_migrate_once(database):
    """Several starts at once (threads with an engine each, like processes): one upgrades, the rest find it done."""
    from fraud_app.storage.migrations import upgrade

    _populate_old_release(database.url)
    engines = [create_engine(database.url) for _ in range(4)]
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine) -> None:  # noqa: ANN001
        try:
            barrier.wait()
            outcomes.append(upgrade(engine))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert sorted(outcomes) == ["current"] * 3 + ["upgraded from none"]
    check = create_engine(database.url)
    try:
        with check.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one() == N_ROWS
            assert conn.execute(text("SELECT SUM(count) FROM monitoring_volume")).scalar_one() == N_ROWS
    finally:
        check.dispose()
