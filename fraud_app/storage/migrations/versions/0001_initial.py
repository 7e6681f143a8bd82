"""The schema of the release before migrations: ``predictions`` and ``training_runs``.

A database of that release already has these tables (made by ``metadata.create_all``): only
missing ones are created, so the upgrade keeps every row.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from fraud_app.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "predictions" not in existing:
        op.create_table(
            "predictions",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("model", sa.String(128), nullable=False),
            sa.Column("model_version", sa.String(128), nullable=True),
            sa.Column("features", sa.JSON(none_as_null=True), nullable=False),
            sa.Column("fraud_probability", sa.Float(), nullable=False),
            sa.Column("is_fraud", sa.Boolean(), nullable=False),
            sa.Column("threshold", sa.Float(), nullable=False),
            sa.Column("source", sa.String(8), nullable=False),
            sa.CheckConstraint("source IN ('ui', 'api', 'batch')", name="ck_predictions_source"),
            sa.CheckConstraint("fraud_probability >= 0 AND fraud_probability <= 1",
                               name="ck_predictions_probability"),
        )
    if "training_runs" not in existing:
        op.create_table(
            "training_runs",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("model", sa.String(128), nullable=True),
            sa.Column("kind", sa.String(64), nullable=False),
            sa.Column("params", sa.JSON(none_as_null=True), nullable=False),
            sa.Column("metrics", sa.JSON(none_as_null=True), nullable=False),
            sa.Column("saved", sa.Boolean(), nullable=False),
            sa.Column("duration_s", sa.Float(), nullable=True),
        )


def downgrade() -> None:
    op.drop_table("training_runs")
    op.drop_table("predictions")
