"""Labels on predictions (``label``, ``labeled_at``, ``labeled_by``) and the monitoring aggregates.

Existing predictions stay as they are (unlabeled). Their volume and score histogram are
backfilled into the aggregates with one SQL ``GROUP BY`` each; their inputs are not binned
(no training reference is at hand here), so PSI covers predictions made after the upgrade.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from fraud_app.storage.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: Score histogram bins (must match fraud_app.monitoring.reference.SCORE_BINS).
SCORE_BINS = 20


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column("predictions", sa.Column("label", sa.String(16), nullable=True))
    op.add_column("predictions", sa.Column("labeled_at", UTCDateTime(), nullable=True))
    op.add_column("predictions", sa.Column("labeled_by", sa.String(128), nullable=True))
    if not sqlite:  # SQLite cannot add a constraint without copying the table; the app checks labels too
        op.create_check_constraint("ck_predictions_label", "predictions",
                                   "label IS NULL OR label IN ('fraud', 'legitimate')")
    op.create_index("ix_predictions_labeled", "predictions", ["model", "created_at"],
                    postgresql_where=sa.text("label IS NOT NULL"), sqlite_where=sa.text("label IS NOT NULL"))
    op.create_index("ix_predictions_review", "predictions", ["model", "fraud_probability"],
                    postgresql_where=sa.text("label IS NULL"), sqlite_where=sa.text("label IS NULL"))
    op.create_table(
        "monitoring_volume",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("source", sa.String(8), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("flagged", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "monitoring_bins",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("feature", sa.String(32), primary_key=True),
        sa.Column("bin", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    if sqlite:
        hour = "strftime('%Y-%m-%d %H:00:00.000000', created_at)"
        score_bin = f"MIN({SCORE_BINS - 1}, CAST(fraud_probability * {SCORE_BINS} AS INTEGER))"
        flagged = "SUM(CASE WHEN is_fraud THEN 1 ELSE 0 END)"
    else:
        hour = "(date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
        score_bin = f"LEAST({SCORE_BINS - 1}, CAST(FLOOR(fraud_probability * {SCORE_BINS}) AS INTEGER))"
        flagged = "SUM(CASE WHEN is_fraud THEN 1 ELSE 0 END)"
    version = "COALESCE(model_version, '')"
    op.execute(
        f"INSERT INTO monitoring_volume (model, model_version, hour, source, count, flagged) "
        f"SELECT model, {version}, {hour}, source, COUNT(*), {flagged} FROM predictions "
        f"GROUP BY model, {version}, {hour}, source")
    op.execute(
        f"INSERT INTO monitoring_bins (model, model_version, hour, feature, bin, count) "
        f"SELECT model, {version}, {hour}, 'fraud_probability', {score_bin}, COUNT(*) FROM predictions "
        f"GROUP BY model, {version}, {hour}, {score_bin}")


def downgrade() -> None:
    op.drop_table("monitoring_bins")
    op.drop_table("monitoring_volume")
    op.drop_index("ix_predictions_review", table_name="predictions")
    op.drop_index("ix_predictions_labeled", table_name="predictions")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("ck_predictions_label", "predictions", type_="check")
    for column in ("labeled_by", "labeled_at", "label"):
        op.drop_column("predictions", column)
