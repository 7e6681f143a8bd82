"""Storage (SQLAlchemy 2.x, no Panel): one engine per process, the tables and the repository functions.

The database URL comes from ``FRAUD_APP_DATABASE_URL`` (default: the SQLite file
``output/fraud_app.sqlite3``); PostgreSQL works through the same setting, e.g.
``postgresql+psycopg://user:password@host:5432/fraud_app``.
"""

from fraud_app.storage.engine import database_url, dispose_engines, get_engine, init_db
from fraud_app.storage.repository import (
    PREDICTION_FIELDS,
    TRAINING_RUN_FIELDS,
    DatabaseBusyError,
    DatabaseUnavailableError,
    ScoredRows,
    StoredRows,
    count_predictions,
    get_prediction,
    insert_predictions,
    insert_scored,
    list_predictions,
    list_training_runs,
    probe_database,
    record_training_run,
    set_label,
    to_jsonable,
    write_wait_seconds,
)
from fraud_app.storage.tables import LABELS, SOURCES, metadata, predictions, training_runs

__all__ = [
    "LABELS", "PREDICTION_FIELDS", "SOURCES", "TRAINING_RUN_FIELDS", "DatabaseBusyError", "DatabaseUnavailableError",
    "ScoredRows", "StoredRows", "count_predictions", "database_url", "dispose_engines", "get_engine", "get_prediction", "init_db",
    "insert_predictions", "insert_scored", "list_predictions", "list_training_runs", "metadata", "predictions",
    "probe_database", "record_training_run", "set_label", "to_jsonable", "training_runs", "write_wait_seconds",
]
