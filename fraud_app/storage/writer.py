"""The write path of predictions (no Panel): rows bound for the driver, group commit, one executemany.

A caller hands :meth:`GroupWriter.write` its rows already bound for the database driver (tuples,
:func:`bind_rows` / :func:`bind_scored`) and its monitoring increments already counted
(:class:`~fraud_app.monitoring.aggregates.Counts`): the transaction itself only runs one
``executemany`` of the ``INSERT`` (SQL text built once per dialect from the table, SQLAlchemy's own
bind processors applied once per value that needs one), the aggregate upserts and the commit.
These statements go straight to a cursor of the driver connection
(:func:`~fraud_app.storage.engine.execute_driver`), inside the SQLAlchemy transaction.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from fraud_app.data import MODEL_FEATURES
from fraud_app.monitoring.aggregates import Counts
from fraud_app.storage.engine import busy_timeout_ms, execute_driver, json_serializer
from fraud_app.storage.tables import predictions

log = logging.getLogger(__name__)


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


# -- rows bound for the driver --------------------------------------------------------------------

#: The columns a new prediction is inserted with, in the order of the bound tuples.
INSERT_COLUMNS = ("created_at", "model", "model_version", "features", "fraud_probability", "is_fraud",
                  "threshold", "source")


@dataclass(frozen=True)
class InsertStatement:
    """``INSERT INTO predictions`` as driver SQL for one dialect, and how it binds a timestamp.

    The inputs are bound as JSON text (:func:`~fraud_app.storage.engine.json_serializer`, what the
    engine's JSON type writes; PostgreSQL casts it), booleans and floats as they are.
    """

    sql: str
    #: PostgreSQL: the same with ``id`` first (ids are drawn from the sequence before the insert).
    sql_with_id: str
    bind_time: Callable[[datetime], Any]


_STATEMENTS: dict[str, InsertStatement] = {}


def insert_statement(dialect: Any) -> InsertStatement:  # noqa: ANN401 - a SQLAlchemy dialect
    """The prediction INSERT of ``dialect`` (built once per dialect)."""
    statement = _STATEMENTS.get(dialect.name)
    if statement is None:
        if dialect.name not in ("sqlite", "postgresql"):
            raise RuntimeError(f"predictions are stored in SQLite or PostgreSQL, not {dialect.name}")
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        marks = {name: mark for name in INSERT_COLUMNS}
        if dialect.name == "postgresql":
            marks["features"] = f"CAST({mark} AS JSON)"

        def sql(columns: Sequence[str]) -> str:
            return (f"INSERT INTO {quote(predictions.name)} ({', '.join(map(quote, columns))}) "
                    f"VALUES ({', '.join(marks.get(c, mark) for c in columns)})")

        bind_time = predictions.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        statement = _STATEMENTS[dialect.name] = InsertStatement(
            sql(INSERT_COLUMNS), sql(("id", *INSERT_COLUMNS)), bind_time or (lambda value: value))
    return statement


def bind_rows(dialect: Any, values: Sequence[Mapping[str, Any]]) -> list[tuple]:  # noqa: ANN401
    """Prediction rows (dicts with every :data:`INSERT_COLUMNS` key) as tuples for the driver."""
    at = insert_statement(dialect).bind_time
    stamps: dict[datetime, Any] = {}
    out = []
    for v in values:
        created = v["created_at"]
        stamp = stamps.get(created)
        if stamp is None:
            stamp = stamps[created] = at(created)
        out.append((stamp, v["model"], v["model_version"], json_serializer(v["features"]), v["fraud_probability"],
                    bool(v["is_fraud"]), v["threshold"], v["source"]))
    return out


@dataclass
class ScoredRows:
    """Rows scored by one model version for one source, columnar (what the micro-batcher writes)."""

    model: str
    model_version: str | None
    threshold: float
    source: str
    #: ``(n, 29)`` float64, MODEL_FEATURES order.
    features: np.ndarray
    #: ``(n,)`` P(fraud), within [0, 1].
    scores: np.ndarray
    #: The rows' inputs as JSON text (:func:`inputs_json`), if already made (e.g. while the model scored).
    texts: list[str] | None = None
    flagged: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.threshold = float(self.threshold)
        self.flagged = self.scores >= self.threshold

    def __len__(self) -> int:
        return len(self.scores)


def inputs_json(features: np.ndarray) -> list[str]:
    """Each row's inputs as the JSON text stored with it: what :func:`~fraud_app.storage.engine.json_serializer`
    writes for ``dict(zip(MODEL_FEATURES, row))``."""
    names, dumps = MODEL_FEATURES, orjson.dumps
    return [dumps(dict(zip(names, row))).decode() for row in features.tolist()]


def bind_scored(dialect: Any, part: ScoredRows, created_at: datetime) -> list[tuple]:  # noqa: ANN401
    """The rows of ``part`` as tuples for the driver, all written at ``created_at``."""
    texts = part.texts if part.texts is not None else inputs_json(part.features)
    scores, flagged = part.scores.tolist(), part.flagged.tolist()
    if not len(texts) == len(scores) == len(flagged):
        raise ValueError(f"{len(texts)} input texts for {len(scores)} scores")
    # the columns zipped in C (a 10,000-row batch: about 10 ms, against 55 for a tuple built per row in Python)
    return list(zip(repeat(insert_statement(dialect).bind_time(created_at)), repeat(part.model),
                    repeat(part.model_version), texts, scores, flagged, repeat(part.threshold), repeat(part.source)))


# -- group commit ---------------------------------------------------------------------------------

@dataclass
class _WriteJob:
    params: list[tuple]
    counts: Counts
    #: ``time.monotonic()`` by which the write must be done or given up (nothing written).
    deadline: float = 0.0
    ids: list[int] | None = None
    error: BaseException | None = None
    done: bool = False


#: A SQLite write's lock wait may overrun its callers' deadline by at most this much (ms).
_TIMEOUT_SLACK_MS = 200
#: PostgreSQL: this many ids drawn from the table's sequence in one round trip.
_NEXTVAL = "SELECT nextval(CAST(%s AS regclass)) FROM generate_series(1, %s)"
_sequences: dict[tuple[int, str], str] = {}


class GroupWriter:
    """Group commit for one engine: concurrent callers share one transaction, each keeps all-or-none.

    A caller queues its rows; if no write is in progress it becomes the leader, takes every
    queued job and writes them in ONE transaction, while callers arriving meanwhile wait and
    are written together by the next leader. Under load this replaces many small commits
    (each a lock round trip and a WAL append for SQLite) by a few larger ones, and threads of
    one process never wait on each other inside SQLite's busy handler (which sleeps in
    1-100 ms steps).

    Every row is checked before it joins a group, so a group can only fail for a reason of the
    database's own (a lock held too long, a lost connection, a full disk): then every job of the
    group fails with that error and nothing of the group is written; the next group starts afresh
    on a new connection.

    ``record(conn, counts)`` writes the group's monitoring increments in the same transaction.
    """

    def __init__(self, engine: Engine, record: Callable[[Connection, Counts], None]) -> None:
        self.engine = engine
        self._record = record
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

    def write(self, params: list[tuple], counts: Counts, deadline: float | None = None) -> list[int]:
        """Insert the bound rows ``params`` and add ``counts`` in one transaction (maybe shared); return
        their ids in order. Give up at ``deadline`` (default: now + the busy timeout) whether the time
        went on waiting for this process's other writes or for a lock."""
        now = time.monotonic()
        job = _WriteJob(params, counts, deadline if deadline is not None else now + busy_timeout_ms() / 1000)
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

    def _insert(self, params: list[tuple], counts: Counts, timeout_ms: int | None = None) -> list[int]:
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
            statement = insert_statement(conn.dialect)
            with conn.begin():
                if dialect == "postgresql":
                    if timeout_ms is not None and timeout_ms < busy_timeout_ms() - _TIMEOUT_SLACK_MS:
                        # less than the connection's own lock_timeout is left of the callers' deadlines
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(timeout_ms)}")
                    ids = self._ids_postgres(conn, statement, params)
                else:
                    ids = self._ids_sqlite(conn, statement, params)
                self._record(conn, counts)  # the monitoring aggregates, in the same transaction
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

    @staticmethod
    def _ids_sqlite(conn: Connection, statement: InsertStatement, params: list[tuple]) -> list[int]:
        """One executemany, then the ids from ``last_insert_rowid()`` (one row: the cursor's ``lastrowid``).

        ``INSERT ... RETURNING`` cannot run as one executemany on SQLite. Instead: the writer's
        transaction holds SQLite's write lock, and a table without ``AUTOINCREMENT`` gives each new row
        ``max(rowid) + 1``, so the rows of one executemany get consecutive ids ending at
        ``last_insert_rowid()`` of this connection.
        """
        if len(params) == 1:
            return [int(execute_driver(conn, statement.sql, params[0]).lastrowid)]
        execute_driver(conn, statement.sql, params, many=True)
        last = int(execute_driver(conn, "SELECT last_insert_rowid()").fetchone()[0])
        return list(range(last - len(params) + 1, last + 1))

    @staticmethod
    def _ids_postgres(conn: Connection, statement: InsertStatement, params: list[tuple]) -> list[int]:
        """One row: ``INSERT ... RETURNING id``. More: their ids drawn from the table's sequence in one round
        trip, then the rows with them in one pipelined executemany (psycopg spends most of a long multi-row
        ``INSERT ... RETURNING`` splitting its text)."""
        if len(params) == 1:
            return [int(execute_driver(conn, statement.sql + " RETURNING id", params[0]).fetchone()[0])]
        key = (id(conn.engine), str(conn.engine.url))
        seq = _sequences.get(key)
        if seq is None:
            seq = execute_driver(conn, "SELECT pg_get_serial_sequence('predictions', 'id')").fetchone()[0]
            if seq is None:
                raise RuntimeError("predictions.id has no sequence")
            _sequences[key] = seq
        ids = sorted(int(row[0]) for row in execute_driver(conn, _NEXTVAL, (seq, len(params))).fetchall())
        execute_driver(conn, statement.sql_with_id, [(i, *p) for i, p in zip(ids, params, strict=True)], many=True)
        return ids

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
                group[0].ids = self._insert(group[0].params, group[0].counts, timeout_ms)
            except Exception as exc:
                group[0].error = exc
            return
        counts = Counts()
        for member in group:
            counts.add(member.counts)
        try:
            ids = self._insert([p for member in group for p in member.params], counts, timeout_ms)
        except Exception as exc:  # the whole group failed together: nothing of it was written
            log.warning("group commit of %d writes failed: %s", len(group), exc)
            for member in group:
                member.error = exc
            return
        start = 0
        for member in group:
            member.ids = ids[start:start + len(member.params)]
            start += len(member.params)


_writers: dict[tuple[int, int], GroupWriter] = {}
_writers_lock = threading.Lock()


def writer_of(engine: Engine, record: Callable[[Connection, Counts], None]) -> GroupWriter:
    """This process's writer of ``engine`` (created with ``record`` on first use)."""
    key = (os.getpid(), id(engine))
    writer = _writers.get(key)
    if writer is None or writer.engine is not engine:
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None or writer.engine is not engine:
                writer = _writers[key] = GroupWriter(engine, record)
    return writer


def write_wait_seconds() -> float:
    """How long this process's oldest write in progress has been running (0 when none is)."""
    now = time.monotonic()
    pid = os.getpid()
    waits = [now - w.writing_since for (p, _), w in list(_writers.items())
             if p == pid and w.writing_since is not None]
    return max(waits, default=0.0)


def close_writers() -> None:
    """Release this process's write connections; forget writers inherited through a fork."""
    with _writers_lock:
        writers = list(_writers.items())
        _writers.clear()
    for (pid, _), writer in writers:
        if pid == os.getpid():
            writer.close()
