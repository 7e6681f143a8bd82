"""The tables (SQLAlchemy Core): ``predictions``, ``training_runs`` and the monitoring aggregates.

The schema changes through Alembic migrations (``fraud_app/storage/migrations``), run by
:func:`create_tables` when the process first opens the database.
"""

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
    Index,
    Integer,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

#: Where a prediction came from.
SOURCES = ("ui", "api", "batch")
#: An analyst's verdict on a stored prediction (or NULL: not reviewed).
LABELS = ("fraud", "legitimate")


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
    Column("label", String(16), nullable=True),
    Column("labeled_at", UTCDateTime(), nullable=True),
    Column("labeled_by", String(128), nullable=True),
    CheckConstraint("source IN ('ui', 'api', 'batch')", name="ck_predictions_source"),
    CheckConstraint("fraud_probability >= 0 AND fraud_probability <= 1", name="ck_predictions_probability"),
    CheckConstraint("label IS NULL OR label IN ('fraud', 'legitimate')", name="ck_predictions_label"),
)

#: Labeled rows of a model in a time window (the monitoring's realized precision/recall), kept small:
#: only labeled rows are indexed.
Index("ix_predictions_labeled", predictions.c.model, predictions.c.created_at,
      postgresql_where=text("label IS NOT NULL"), sqlite_where=text("label IS NOT NULL"))
#: The review queue: a model's unlabeled rows, highest fraud probability first.
Index("ix_predictions_review", predictions.c.model, predictions.c.fraud_probability,
      postgresql_where=text("label IS NULL"), sqlite_where=text("label IS NULL"))

#: Monitoring aggregates, written in the same transaction as the predictions they count
#: (:func:`fraud_app.monitoring.aggregates.record`): per model version, hour and source.
monitoring_volume = Table(
    "monitoring_volume",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("model_version", String(128), primary_key=True),  # '' when the prediction had none
    Column("hour", UTCDateTime(), primary_key=True),
    Column("source", String(8), primary_key=True),
    Column("count", BigInteger(), nullable=False),
    Column("flagged", BigInteger(), nullable=False),
)

#: Per model version, hour, input (or ``fraud_probability``) and bin of the model's training reference.
monitoring_bins = Table(
    "monitoring_bins",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("model_version", String(128), primary_key=True),
    Column("hour", UTCDateTime(), primary_key=True),
    Column("feature", String(32), primary_key=True),
    Column("bin", Integer(), primary_key=True, autoincrement=False),
    Column("count", BigInteger(), nullable=False),
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
    """Bring the schema to the latest migration (create it when empty); retried because several
    processes may race to start (see :func:`fraud_app.storage.migrations.upgrade`)."""
    from fraud_app.storage.migrations import upgrade

    for attempt in range(1, attempts + 1):
        try:
            upgrade(engine)
            return
        except DBAPIError as exc:  # another process created a table between check and create
            if attempt == attempts:
                raise
            log.info("create_all attempt %d failed (%s); retrying", attempt, exc.__class__.__name__)
            time.sleep(0.2 * attempt)
