"""One SQLAlchemy engine per process, created lazily.

The engine is keyed by ``(os.getpid(), url)``. A process forked by
``panel serve --num-procs N`` after an engine was created finds no engine for
its own pid, disposes the inherited ones without closing their sockets (they
belong to the parent) and creates its own.

SQLite gets write-ahead logging, a bounded busy timeout (PostgreSQL a ``lock_timeout``) and foreign keys,
set on every new connection, and ``PRAGMA synchronous`` from ``FRAUD_APP_SQLITE_SYNCHRONOUS``:

* ``NORMAL`` (default): in WAL mode a commit is written to the WAL file but not fsynced; the WAL is
  fsynced at each checkpoint. A committed row survives a crash (``kill -9``) of the server process,
  because the operating system holds the write; a power loss or an OS crash can lose the last
  transactions (never corrupt the database).
* ``FULL``: the WAL is fsynced at every commit, so a commit also survives a power loss, at the cost of
  one fsync per transaction (group commit shares it among the requests of one batch).

JSON columns are encoded with orjson (NaN/inf become null; other values as the stdlib would). The folder of the SQLite file is
created on first use.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fraud_app.config import get_settings

log = logging.getLogger(__name__)

def busy_timeout_ms() -> int:
    """Milliseconds a write waits for a lock held by another writer (``FRAUD_APP_DB_BUSY_TIMEOUT``, default 5 s).

    Past it the write fails (nothing is written) and the API answers 503 with ``Retry-After``.
    """
    return int(round(get_settings().db_busy_timeout_s * 1000))

_lock = threading.RLock()
_engines: dict[tuple[int, str], Engine] = {}
_initialised: set[tuple[int, str]] = set()


def database_url() -> str:
    """The database URL in force (``FRAUD_APP_DATABASE_URL`` or the SQLite file under ``output/``)."""
    return get_settings().database_url


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def json_serializer(value: Any) -> str:
    """JSON text of a column value: orjson (about 10x the stdlib), the stdlib for what orjson refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return json.dumps(value, default=str)


def json_deserializer(text: str | bytes) -> Any:
    """A JSON column value: orjson, the stdlib for what it refuses (NaN written by older versions)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def execute_driver(conn: Connection, sql: str, params: Sequence | None = None, many: bool = False) -> Any:  # noqa: ANN401
    """Run driver SQL on a cursor of ``conn``'s driver connection, inside ``conn``'s transaction; return the
    cursor (its ``lastrowid``, ``fetchone()``...).

    The write path's few statements per transaction skip SQLAlchemy's per-statement execution context
    (about 50 µs a statement on this machine; engine events do not see them). A driver error is raised
    as SQLAlchemy raises it (``OperationalError`` and the rest, the driver's exception in ``.orig``), and
    a lost connection is invalidated first, so that the pool never hands it out again.
    """
    fairy = conn.connection
    cursor = fairy.dbapi_connection.cursor()
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        if many:
            cursor.executemany(sql, params)
        elif params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
    except dbapi_error as exc:
        lost = bool(conn.dialect.is_disconnect(exc, fairy.dbapi_connection, cursor))
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, dbapi_error, connection_invalidated=lost,
                                  dialect=conn.dialect, ismulti=many) from exc
    return cursor


def _on_sqlite_connect(dbapi_connection, _record, timeout_ms: int,  # noqa: ANN001 - DB-API objects
                       synchronous: str = "NORMAL") -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_postgres_connect(dbapi_connection, _record, timeout_ms: int) -> None:  # noqa: ANN001
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {int(timeout_ms)}")
    dbapi_connection.commit()


def _create(url: str) -> Engine:
    parsed = make_url(url)
    timeout_ms = busy_timeout_ms()
    backend = parsed.get_backend_name()
    kwargs: dict = {"future": True, "json_serializer": json_serializer, "json_deserializer": json_deserializer}
    if backend == "sqlite":
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": timeout_ms / 1000, "check_same_thread": False}
        kwargs["pool_size"] = 8
        kwargs["max_overflow"] = 16
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 8
        kwargs["max_overflow"] = 8
    engine = create_engine(url, **kwargs)
    if backend == "sqlite":
        synchronous = get_settings().sqlite_synchronous
        event.listen(engine, "connect",
                     lambda conn, record: _on_sqlite_connect(conn, record, timeout_ms, synchronous))
    elif backend == "postgresql":
        event.listen(engine, "connect", lambda conn, record: _on_postgres_connect(conn, record, timeout_ms))
    log.debug("created engine for %s in pid %s", engine.url.render_as_string(hide_password=True), os.getpid())
    return engine


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for ``url`` (default: the configured database), with its tables created."""
    url = url or database_url()
    pid = os.getpid()
    key = (pid, url)
    engine = _engines.get(key)
    if engine is not None and key in _initialised:
        return engine
    with _lock:
        inherited = [k for k in _engines if k[0] != pid]
        if inherited:
            from fraud_app.storage.writer import close_writers

            close_writers()  # forgets the parent's writers without touching their connections
        for stale in inherited:
            # Forked child: drop the parent's pool without closing its connections.
            _engines.pop(stale).dispose(close=False)
            _initialised.discard(stale)
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create(url)
        if key not in _initialised:
            from fraud_app.storage.tables import create_tables

            create_tables(engine)
            _initialised.add(key)
        return engine


def init_db(url: str | None = None) -> Engine:
    """Create the tables if they do not exist yet and return the engine."""
    return get_engine(url)


def dispose_engines() -> None:
    """Close every engine of this process (tests, shutdown)."""
    from fraud_app.storage.writer import close_writers

    close_writers()
    with _lock:
        pid = os.getpid()
        for key in list(_engines):
            engine = _engines.pop(key)
            engine.dispose(close=key[0] == pid)
        _initialised.clear()
