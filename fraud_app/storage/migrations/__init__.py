"""Alembic migrations of the database schema, shipped inside the package and run programmatically.

:func:`upgrade` is what :func:`fraud_app.storage.tables.create_tables` calls when a process first
opens a database:

* an empty database gets the current schema (``metadata.create_all``) and is stamped at :data:`HEAD`;
* a database of the release before migrations (tables made by ``create_all``, no
  ``alembic_version`` table) is upgraded in place from ``0001`` (whose tables it already has),
  with every row kept;
* a database at an older revision is upgraded; one at :data:`HEAD` is left alone (one cheap query).

Several processes may start at once (``--num-procs``, several hosts): the upgrade runs under a
lock, a PostgreSQL advisory lock or, for a SQLite file, an ``flock`` on ``<file>.migrate.lock``,
and whoever gets it second finds the work done.

Writing a migration: add ``versions/NNNN_what.py`` (``revision``/``down_revision``,
``upgrade()``/``downgrade()``), change :mod:`fraud_app.storage.tables` to match, and move
:data:`HEAD` to the new revision (a test checks that both agree).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

#: The latest revision; the schema in :mod:`fraud_app.storage.tables` is this revision's.
HEAD = "0002"
#: The schema of the release before migrations (``predictions`` and ``training_runs``).
BASE = "0001"

MIGRATIONS_DIR = Path(__file__).resolve().parent
_thread_lock = threading.Lock()


def _config(conn: Connection):  # noqa: ANN202 - alembic.config.Config
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def current_revision(conn: Connection) -> str | None:
    """The revision stamped in the database, or None (no ``alembic_version`` table or no row)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextlib.contextmanager
def _migration_lock(conn: Connection) -> Iterator[None]:
    """One migrator at a time, across processes."""
    dialect = conn.dialect.name
    with _thread_lock:
        if dialect == "postgresql":
            schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
            key = zlib.crc32(f"fraud_app.migrate.{schema}".encode()) & 0x7FFFFFFF
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
            return
        database = conn.engine.url.database if dialect == "sqlite" else None
        if not database or database == ":memory:" or database.startswith("file:"):
            yield
            return
        with open(f"{database}.migrate.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> str:
    """Bring the database of ``engine`` to :data:`HEAD`; return what was done
    (``"current"``, ``"created"`` or ``"upgraded from <revision>"``)."""
    with engine.connect() as conn:
        try:
            if current_revision(conn) == HEAD:
                return "current"
        except DBAPIError:  # e.g. the table is being created by another process right now
            conn.rollback()
        conn.rollback()
        with _migration_lock(conn):
            return _upgrade_locked(conn)


def _upgrade_locked(conn: Connection) -> str:
    from alembic import command

    from fraud_app.storage.tables import metadata

    revision = current_revision(conn)
    if revision == HEAD:
        conn.rollback()
        return "current"
    tables = set(inspect(conn).get_table_names())
    if revision is None and not tables & {"predictions", "training_runs"}:
        metadata.create_all(conn)
        command.stamp(_config(conn), HEAD)
        conn.commit()
        log.info("created the database schema at revision %s", HEAD)
        return "created"
    start = revision or f"the release before migrations ({BASE})"
    command.upgrade(_config(conn), "head")
    conn.commit()
    log.warning("upgraded the database schema from %s to %s", start, HEAD)
    return f"upgraded from {revision or 'none'}"
