"""The two tables: ``predictions`` and ``training_runs`` (SQLAlchemy Core)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

#: Where a prediction came from.
SOURCES = ("ui", "api", "batch")


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC timestamp")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: SQLite only auto-increments an ``INTEGER PRIMARY KEY``.
_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
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

training_runs = Table(
    "training_runs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("model", String(128), nullable=True),
    Column("kind", String(64), nullable=False),
    Column("params", JSON(none_as_null=True), nullable=False),
    Column("metrics", JSON(none_as_null=True), nullable=False),
    Column("saved", Boolean(), nullable=False),
    Column("duration_s", Float(), nullable=True),
)


def create_tables(engine: Engine, attempts: int = 5) -> None:
    """Create missing tables; retried because several processes may race to create them."""
    for attempt in range(1, attempts + 1):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except DBAPIError as exc:  # another process created a table between check and create
            if attempt == attempts:
                raise
            log.info("create_all attempt %d failed (%s); retrying", attempt, exc.__class__.__name__)
            time.sleep(0.2 * attempt)
