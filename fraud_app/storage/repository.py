"""Repository functions: everything the app reads from or writes to the database."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError

from fraud_app.monitoring.aggregates import record as record_monitoring
from fraud_app.monitoring.aggregates import warm_references
from fraud_app.storage.engine import busy_timeout_ms, get_engine
from fraud_app.storage.tables import LABELS, SOURCES, predictions, training_runs

log = logging.getLogger(__name__)

#: Columns of a stored prediction, in the order the API shows them.
PREDICTION_FIELDS = ("id", "created_at", "model", "model_version", "fraud_probability", "is_fraud",
                     "threshold", "source", "features", "label", "labeled_at", "labeled_by")
TRAINING_RUN_FIELDS = ("id", "created_at", "model", "kind", "params", "metrics", "saved", "duration_s")


class DatabaseBusyError(RuntimeError):
    """A write waited the whole busy timeout for a lock held by someone else; nothing was written."""


class DatabaseUnavailableError(RuntimeError):
    """A write failed for a passing reason of the database's own (a lost connection, a disk error);
    nothing of its transaction was written, and a retry may succeed."""


#: SQLite reports a schema mismatch as an OperationalError too: that is a bug or a broken set-up (500).
_SCHEMA_PROBLEMS = ("no such table", "no such column", "has no column")


def is_transient_error(exc: BaseException) -> bool:
    """True for a database failure a retry may cure (connection lost, I/O error), False for a schema
    problem or a constraint (a 500: the server or its set-up is wrong)."""
    from sqlalchemy.exc import DisconnectionError, InterfaceError

    if isinstance(exc, DisconnectionError):
        return True
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if getattr(exc, "connection_invalidated", False):
        return True
    message = str(exc.orig if isinstance(exc, DBAPIError) else exc).lower()
    return not any(problem in message for problem in _SCHEMA_PROBLEMS)


def is_busy_error(exc: BaseException) -> bool:
    """True for a lock/busy timeout (SQLite "database is locked", PostgreSQL lock_not_available)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    return (isinstance(exc, OperationalError) and "locked" in str(orig).lower()) \
        or getattr(orig, "sqlstate", None) == "55P03"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays become Python numbers/lists, NaN/inf become None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalar or array
        return to_jsonable(value.tolist())
    if isinstance(value, datetime):
        return _iso(value) if value.tzinfo else value.isoformat()
    return json.loads(json.dumps(value, default=str))


def _prediction_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "created_at": _iso(row["created_at"]),
        "model": row["model"],
        "model_version": row["model_version"],
        "fraud_probability": float(row["fraud_probability"]),
        "is_fraud": bool(row["is_fraud"]),
        "threshold": float(row["threshold"]),
        "source": row["source"],
        "features": dict(row["features"]),
        "label": row.get("label"),
        "labeled_at": None if row.get("labeled_at") is None else _iso(row["labeled_at"]),
        "labeled_by": row.get("labeled_by"),
    }


#: Built once: INSERT ... RETURNING id, ids in parameter order (other databases than SQLite and PostgreSQL).
_INSERT_PREDICTION = insert(predictions).returning(predictions.c.id, sort_by_parameter_order=True)
#: Built once: the plain INSERT that SQLite and PostgreSQL run as one executemany per group.
_INSERT_PLAIN = insert(predictions)
#: PostgreSQL: this many ids drawn from the table's sequence in one round trip.
_NEXTVAL = text("SELECT nextval(CAST(:seq AS regclass)) FROM generate_series(1, :n)")


def _ids_sqlite(conn: Connection, values: list[dict[str, Any]]) -> list[int]:
    """One executemany, then the ids from ``last_insert_rowid()``.

    SQLAlchemy cannot return ids in parameter order from a multi-row ``INSERT ... RETURNING`` on
    SQLite, so ``sort_by_parameter_order`` falls back to one statement per row (10,000 statements
    for a 10,000-row batch). Instead: the writer's transaction holds SQLite's write lock, and a table
    without ``AUTOINCREMENT`` gives each new row ``max(rowid) + 1``, so the rows of one executemany
    get consecutive ids ending at ``last_insert_rowid()`` of this connection.
    """
    conn.execute(_INSERT_PLAIN, values)
    last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    return list(range(last - len(values) + 1, last + 1))


_sequences: dict[tuple[int, str], str] = {}


def _ids_postgres(conn: Connection, values: list[dict[str, Any]]) -> list[int]:
    """Draw the ids from the table's sequence (one round trip), then one executemany with them.

    psycopg spends most of a multi-row ``INSERT ... VALUES ... RETURNING`` (SQLAlchemy's
    insertmanyvalues) splitting the long query text; a plain executemany is pipelined instead.
    """
    key = (id(conn.engine), str(conn.engine.url))
    seq = _sequences.get(key)
    if seq is None:
        seq = conn.execute(text("SELECT pg_get_serial_sequence('predictions', 'id')")).scalar_one()
        if seq is None:
            raise RuntimeError("predictions.id has no sequence")
        _sequences[key] = seq
    ids = sorted(int(i) for i in conn.execute(_NEXTVAL, {"seq": seq, "n": len(values)}).scalars())
    conn.execute(_INSERT_PLAIN, [{**value, "id": id_} for value, id_ in zip(values, ids, strict=True)])
    return ids


@dataclass
class _WriteJob:
    values: list[dict[str, Any]]
    #: ``time.monotonic()`` by which the write must be done or given up (nothing written).
    deadline: float = 0.0
    ids: list[int] | None = None
    error: BaseException | None = None
    done: bool = False


#: A SQLite write's lock wait may overrun its callers' deadline by at most this much (ms).
_TIMEOUT_SLACK_MS = 200


class _GroupWriter:
    """Group commit for one engine: concurrent callers share one transaction, each keeps all-or-none.

    A caller queues its rows; if no write is in progress it becomes the leader, takes every
    queued job and writes them in ONE transaction, while callers arriving meanwhile wait and
    are written together by the next leader. Under load this replaces many small commits
    (each a lock round trip and a WAL append for SQLite) by a few larger ones, and threads of
    one process never wait on each other inside SQLite's busy handler (which sleeps in
    1-100 ms steps). The rows of a group go in with one executemany (SQLAlchemy Core
    ``insert()``, batched as multi-row ``INSERT ... RETURNING`` by insertmanyvalues).

    Every row is checked by :func:`insert_predictions` before it joins a group, so a group can only
    fail for a reason of the database's own (a lock held too long, a lost connection, a full disk):
    then every job of the group fails with that error and nothing of the group is written; the
    next group starts afresh on a new connection.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cv = threading.Condition()
        self._pending: list[_WriteJob] = []
        self._busy = False
        # Only the current leader writes, so one connection is kept for writing: no pool
        # checkout/checkin per transaction. Dropped after any error, reopened on the next write.
        self._conn: Connection | None = None
        #: ``time.monotonic()`` when the write in progress started, or None.
        self.writing_since: float | None = None
        #: The busy timeout last set on the write connection (SQLite), keyed by the connection's id.
        self._busy_timeout_set: dict[int, int] = {}

    def close(self) -> None:
        """Return the write connection to the pool (tests, shutdown)."""
        with self._cv:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def write(self, values: list[dict[str, Any]], deadline: float | None = None) -> list[int]:
        """Write ``values`` in one transaction (maybe shared); give up at ``deadline`` (default: now + the
        busy timeout) whether the time went on waiting for this process's other writes or for a lock."""
        now = time.monotonic()
        job = _WriteJob(values, deadline if deadline is not None else now + busy_timeout_ms() / 1000)
        group: list[_WriteJob] = []
        with self._cv:
            self._pending.append(job)
            while not job.done:
                if not self._busy:
                    self._busy = True
                    group, self._pending = self._pending, []
                    break
                remaining = job.deadline - time.monotonic()
                if remaining <= 0:
                    if job in self._pending:  # not taken by a leader yet: give up, nothing written
                        self._pending.remove(job)
                        raise DatabaseBusyError(
                            f"the database stayed busy for {busy_timeout_ms() / 1000:g} s (another writer holds "
                            "its lock); nothing was written")
                    remaining = 0.05  # a leader is writing it: that write ends by this job's deadline
                self._cv.wait(remaining)
        if group:
            self.writing_since = time.monotonic()
            try:
                self._flush(group)
            finally:
                self.writing_since = None
                with self._cv:
                    for member in group:
                        if member.ids is None and member.error is None:
                            member.error = RuntimeError("the write was interrupted")
                        member.done = True
                    self._busy = False
                    self._cv.notify_all()
        if job.error is not None:
            raise job.error
        assert job.ids is not None
        return job.ids

    def _insert(self, values: list[dict[str, Any]], timeout_ms: int | None = None) -> list[int]:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self.engine.connect()
        dialect = self.engine.dialect.name
        try:
            if timeout_ms is not None and dialect == "sqlite" \
                    and abs(timeout_ms - self._busy_timeout_set.get(id(conn), -10**9)) > _TIMEOUT_SLACK_MS:
                # what is left of the callers' deadlines (re-set only when it moved by more than the slack:
                # two statements less per write on the hot path)
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(timeout_ms)}")
                conn.commit()  # ends the autobegun (empty) transaction; the pragma stays on the connection
                self._busy_timeout_set = {id(conn): timeout_ms}
            with conn.begin():
                if timeout_ms is not None and dialect == "postgresql":
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(timeout_ms)}")
                if dialect == "sqlite":
                    ids = _ids_sqlite(conn, values)
                elif dialect == "postgresql":
                    ids = _ids_postgres(conn, values)
                elif len(values) == 1:
                    ids = [conn.execute(_INSERT_PREDICTION, values[0]).scalar_one()]
                else:
                    ids = list(conn.execute(_INSERT_PREDICTION, values).scalars().all())
                record_monitoring(conn, values)  # the monitoring aggregates, in the same transaction
                return ids
        except BaseException as exc:
            self._conn = None
            self._busy_timeout_set = {}
            conn.close()
            if is_busy_error(exc):
                raise DatabaseBusyError(f"the database is locked by another writer (waited up to "
                                        f"{busy_timeout_ms() / 1000:g} s); nothing was written") from exc
            if isinstance(exc, Exception) and is_transient_error(exc):
                raise DatabaseUnavailableError(
                    f"the database failed while saving ({type(exc).__name__}: {str(getattr(exc, 'orig', exc))[:200]}); "
                    "nothing of this transaction was written") from exc
            raise

    def _flush(self, group: list[_WriteJob]) -> None:
        now = time.monotonic()
        late = [member for member in group if member.deadline <= now]
        for member in late:
            member.error = DatabaseBusyError(
                f"the database stayed busy for {busy_timeout_ms() / 1000:g} s (another writer holds its lock); "
                "nothing was written")
        group = [member for member in group if member.deadline > now]
        if not group:
            return
        timeout_ms = max(1, int((min(member.deadline for member in group) - now) * 1000))
        if len(group) == 1:
            try:
                group[0].ids = self._insert(group[0].values, timeout_ms)
            except Exception as exc:
                group[0].error = exc
            return
        try:
            ids = self._insert([v for member in group for v in member.values], timeout_ms)
        except Exception as exc:  # the whole group failed together: nothing of it was written
            log.warning("group commit of %d writes failed: %s", len(group), exc)
            for member in group:
                member.error = exc
            return
        start = 0
        for member in group:
            member.ids = ids[start:start + len(member.values)]
            start += len(member.values)


_writers: dict[tuple[int, int], _GroupWriter] = {}
_writers_lock = threading.Lock()


def _writer(engine: Engine) -> _GroupWriter:
    key = (os.getpid(), id(engine))
    writer = _writers.get(key)
    if writer is None or writer.engine is not engine:
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None or writer.engine is not engine:
                writer = _writers[key] = _GroupWriter(engine)
    return writer


def write_wait_seconds() -> float:
    """How long this process's oldest write in progress has been running (0 when none is)."""
    now = time.monotonic()
    pid = os.getpid()
    waits = [now - w.writing_since for (p, _), w in list(_writers.items())
             if p == pid and w.writing_since is not None]
    return max(waits, default=0.0)


def probe_database() -> None:
    """Run a trivial query (raises when the database cannot be reached)."""
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


def close_writers() -> None:
    """Release this process's write connections; forget writers inherited through a fork."""
    with _writers_lock:
        writers = list(_writers.items())
        _writers.clear()
    for (pid, _), writer in writers:
        if pid == os.getpid():
            writer.close()


def insert_predictions(rows: Sequence[Mapping[str, Any]], deadline: float | None = None) -> list[dict[str, Any]]:
    """Insert prediction rows in ONE transaction (all or none) and return them as stored.

    Each row needs ``model``, ``model_version``, ``features`` (dict), ``fraud_probability``,
    ``is_fraud``, ``threshold`` and ``source``; ``created_at`` defaults to now (UTC).
    Concurrent calls may share a transaction (group commit) but each call's rows are
    saved all together or not at all. The call waits for database locks (and for this process's
    other writes) until ``deadline`` (a ``time.monotonic()`` value; default: now plus
    ``FRAUD_APP_DB_BUSY_TIMEOUT``), then raises :class:`DatabaseBusyError`, having written nothing.
    """
    if not rows:
        return []
    now = utcnow()
    values = []
    for row in rows:
        source = row["source"]
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        probability = float(row["fraud_probability"])
        if not 0.0 <= probability <= 1.0:  # checked here, so that no row can fail a whole group commit
            raise ValueError(f"fraud_probability must lie in [0, 1], got {probability!r}")
        if not isinstance(row["features"], Mapping) or not row["model"]:
            raise ValueError("a prediction row needs a model name and its features as a mapping")
        values.append({
            "created_at": row.get("created_at") or now,
            "model": row["model"],
            "model_version": row.get("model_version"),
            "features": row["features"],
            "fraud_probability": probability,
            "is_fraud": bool(row["is_fraud"]),
            "threshold": float(row["threshold"]),
            "source": source,
        })
    warm_references(values)  # the monitoring's model references, read before the write transaction
    ids = _writer(get_engine()).write(values, deadline)
    stamps: dict[datetime, str] = {}
    out = []
    for value, id_ in zip(values, ids, strict=True):
        created = value["created_at"]
        stamp = stamps.get(created)
        if stamp is None:
            stamp = stamps[created] = _iso(created)
        out.append({"id": id_, "created_at": stamp, "model": value["model"], "model_version": value["model_version"],
                    "fraud_probability": value["fraud_probability"], "is_fraud": value["is_fraud"],
                    "threshold": value["threshold"], "source": value["source"], "features": dict(value["features"]),
                    "label": None, "labeled_at": None, "labeled_by": None})  # a new row has no analyst label yet
    return out


def list_predictions(limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Saved predictions, newest first."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be >= 0")
    query = select(predictions).order_by(predictions.c.id.desc()).limit(limit).offset(offset)
    with get_engine().connect() as conn:
        return [_prediction_dict(row) for row in conn.execute(query).mappings()]


def count_predictions() -> int:
    """How many predictions are stored."""
    with get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(predictions)).scalar_one())


def get_prediction(prediction_id: int) -> dict[str, Any] | None:
    """One saved prediction, or None."""
    with get_engine().connect() as conn:
        row = conn.execute(select(predictions).where(predictions.c.id == int(prediction_id))).mappings().first()
    return None if row is None else _prediction_dict(row)


def set_label(prediction_id: int, label: str | None, labeled_by: str | None = None) -> dict[str, Any] | None:
    """Set (or clear, with None) the analyst's label of one prediction; return the updated row, or None
    when there is no such prediction. One short transaction (``UPDATE ... WHERE id``).

    Raises ValueError for a label other than ``"fraud"``, ``"legitimate"`` or None.
    """
    if label is not None and label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)} or null, got {label!r}")
    if labeled_by is not None:
        labeled_by = str(labeled_by)[:128]
    values = {"label": label, "labeled_at": utcnow() if label is not None else None,
              "labeled_by": labeled_by if label is not None else None}
    with get_engine().begin() as conn:
        row = conn.execute(update(predictions).where(predictions.c.id == int(prediction_id)).values(**values)
                           .returning(*predictions.c)).mappings().first()
    return None if row is None else _prediction_dict(row)


def _training_run_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "created_at": _iso(row["created_at"]),
        "model": row["model"],
        "kind": row["kind"],
        "params": row["params"],
        "metrics": row["metrics"],
        "saved": bool(row["saved"]),
        "duration_s": None if row["duration_s"] is None else float(row["duration_s"]),
    }


def record_training_run(result: Any) -> int:
    """Save one training run (a ``TrainingResult`` or its ``to_dict()``) and return its id."""
    if hasattr(result, "to_dict"):
        data = result.to_dict(include_scores=False)
    elif isinstance(result, Mapping):
        data = dict(result)
    else:
        raise TypeError(f"expected a TrainingResult or a dict, got {type(result).__name__}")
    if not data.get("kind"):
        raise ValueError("a training run needs a 'kind'")
    duration = data.get("duration_s")
    values = {
        "created_at": utcnow(),
        "model": data.get("name"),
        "kind": str(data["kind"]),
        "params": to_jsonable(data.get("params") or {}),
        "metrics": to_jsonable(data.get("metrics") or {}),
        "saved": bool(data.get("saved", False)),
        "duration_s": None if duration is None else float(duration),
    }
    with get_engine().begin() as conn:
        return int(conn.execute(insert(training_runs).returning(training_runs.c.id), values).scalar_one())


def list_training_runs(limit: int = 100) -> list[dict[str, Any]]:
    """Recorded training runs, newest first."""
    if limit < 0:
        raise ValueError("limit must be >= 0")
    query = select(training_runs).order_by(training_runs.c.id.desc()).limit(limit)
    with get_engine().connect() as conn:
        return [_training_run_dict(row) for row in conn.execute(query).mappings()]
