"""Monitoring aggregates written in the same transaction as the predictions they count.

Per model version and hour, the volume and flagged count per source, the score histogram, and each
input's count per bin of the model's training reference (``monitoring_volume`` and
``monitoring_bins``, upserted with ``count = count + new``). ``GET /api/monitoring`` then reads a
few thousand aggregate rows instead of scanning and parsing every stored prediction.

Writing them is two steps, so that the write transaction only writes:

* **counting**, before the transaction, in NumPy: :func:`count_scored` takes a scored batch as
  arrays (the REST path), :func:`count_rows` prediction rows as dicts (every other writer); both
  return :class:`Counts`, already summed per key (a 10,000-row batch of one hour is about 310 keys,
  one row about 31), and the counts of a group commit's requests are added up with :meth:`Counts.add`;
* **writing**, in the transaction that inserts the predictions: :func:`write_counts` upserts them with
  ONE driver-level executemany per table (prepared once per dialect; SQLite reuses the statement).

Keys are upserted in sorted order, so concurrent PostgreSQL transactions take the row locks in
the same order (no deadlock). A model with no reference (saved before references, or deleted)
gets volume and scores only.
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection

from fraud_app.data import MODEL_FEATURES
from fraud_app.monitoring.reference import SCORE_BINS, SCORE_FEATURE, reference_of, score_bins

log = logging.getLogger(__name__)

_cache_lock = threading.Lock()
_references: dict[tuple[str, str], dict[str, Any] | None] = {}
_MAX_CACHED = 256


def model_reference(name: str, version: str | None) -> dict[str, Any] | None:
    """The training reference of saved model ``name`` at ``version`` (cached), or None."""
    key = (name, version or "")
    if key in _references:
        return _references[key]
    from fraud_app.models.errors import ModelLoadError, ModelNotFoundError
    from fraud_app.models.store import read_metadata

    try:
        meta = read_metadata(name)
    except (ModelLoadError, ModelNotFoundError, OSError, ValueError) as exc:
        log.debug("no reference for %r: %s", name, exc)
        meta = {}
    reference = reference_of(meta) if (meta.get("version") or "") == (version or "") else None
    with _cache_lock:
        if len(_references) >= _MAX_CACHED:
            _references.clear()
        _references[key] = reference
    return reference


def warm_references(values: Sequence[Mapping[str, Any]]) -> None:
    """Look up (and cache) the references of the models of ``values`` (a file read at most once per
    model version; counting does it anyway, before any write transaction)."""
    for key in {(row["model"], row.get("model_version") or "") for row in values}:
        if key not in _references:
            model_reference(key[0], key[1] or None)


def clear_reference_cache() -> None:
    """Forget the cached references (tests)."""
    with _cache_lock:
        _references.clear()
        _BINNINGS.clear()


def hour_of(moment: datetime) -> datetime:
    """``moment`` truncated to its UTC hour."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# -- counting (before the transaction) ------------------------------------------------------------

class _Binning:
    """A reference's 29 inputs' cut points as one padded array, so that one NumPy expression bins every
    input of every row: ``bin = number of cut points <= x`` (``np.searchsorted(edges, x, "right")``)."""

    def __init__(self, reference: dict[str, Any]) -> None:
        self.reference = reference
        self.edges = [np.asarray(reference["features"][name]["edges"], dtype=np.float64) for name in MODEL_FEATURES]
        widest = max(len(e) for e in self.edges)
        self.padded = np.full((len(MODEL_FEATURES), max(widest, 1)), np.inf)
        for j, edges in enumerate(self.edges):
            self.padded[j, :len(edges)] = edges
        sizes = [len(e) + 1 for e in self.edges]
        self.offsets = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
        self.size = int(sum(sizes))
        #: ``(feature, bin)`` of each position of the flat count vector
        self.labels = [(name, b) for name, n in zip(MODEL_FEATURES, sizes, strict=True) for b in range(n)]

    def counts(self, features: np.ndarray) -> np.ndarray:
        """How many rows of ``features`` (n x 29, MODEL_FEATURES order) fall in each (feature, bin)."""
        if np.isfinite(features).all():
            bins = (features[:, :, None] >= self.padded).sum(axis=2)
        else:  # NaN/inf never reach a stored prediction; binned exactly like searchsorted all the same
            bins = np.column_stack([np.searchsorted(e, features[:, j], side="right")
                                    for j, e in enumerate(self.edges)])
        return np.bincount((bins + self.offsets).ravel(), minlength=self.size)


_BINNINGS: dict[int, _Binning] = {}


def _binning(reference: dict[str, Any]) -> _Binning:
    binning = _BINNINGS.get(id(reference))
    if binning is None or binning.reference is not reference:
        if len(_BINNINGS) > 64:
            _BINNINGS.clear()
        binning = _BINNINGS[id(reference)] = _Binning(reference)
    return binning


@dataclass
class _Tally:
    """The bin counts of one model version and hour, as vectors: the score histogram and, when the model
    has a reference, every (input, bin) in :attr:`_Binning.labels` order."""

    scores: np.ndarray
    binning: _Binning | None = None
    inputs: np.ndarray | None = None

    def add(self, other: _Tally) -> None:
        self.scores = self.scores + other.scores
        if other.inputs is None:
            return
        if self.inputs is None:
            self.binning, self.inputs = other.binning, other.inputs
        elif self.binning is other.binning or self.binning.labels == other.binning.labels:
            self.inputs = self.inputs + other.inputs
        else:  # pragma: no cover - one model version has one reference
            raise ValueError("two different references for one model version")

    def entries(self) -> list[tuple[str, int, int]]:
        """``(feature, bin, count)`` of every non-empty bin, sorted."""
        out = [(SCORE_FEATURE, b, n) for b, n in enumerate(self.scores.tolist()) if n]
        if self.inputs is not None:
            labels, counts = self.binning.labels, self.inputs.tolist()
            out += [(*labels[i], counts[i]) for i in np.flatnonzero(self.inputs).tolist()]
        out.sort()
        return out


@dataclass
class Counts:
    """Aggregate increments: ``volume[(model, version, hour, source)] = [count, flagged]`` and, per
    ``(model, version, hour)``, the bin counts as vectors (:meth:`bin_rows` lists the non-empty ones)."""

    volume: dict[tuple[str, str, datetime, str], list[int]] = field(default_factory=dict)
    tallies: dict[tuple[str, str, datetime], _Tally] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.volume)

    def add(self, other: Counts) -> Counts:
        """Add ``other``'s increments to these (a group commit's requests); returns self."""
        for key, (count, flagged) in other.volume.items():
            mine = self.volume.get(key)
            if mine is None:
                self.volume[key] = [count, flagged]
            else:
                mine[0] += count
                mine[1] += flagged
        for key, tally in other.tallies.items():
            mine = self.tallies.get(key)
            if mine is None:
                self.tallies[key] = _Tally(tally.scores, tally.binning, tally.inputs)
            else:
                mine.add(tally)
        return self

    def volume_rows(self) -> list[tuple]:
        """``(model, version, hour, source, count, flagged)``, sorted."""
        return [(*key, n, f) for key, (n, f) in sorted(self.volume.items())]

    def bin_rows(self) -> list[tuple]:
        """``(model, version, hour, feature, bin, count)`` of every non-empty bin, sorted."""
        return [(*key, *entry) for key in sorted(self.tallies) for entry in self.tallies[key].entries()]


def _count(counts: Counts, model: str, version: str, hour: datetime, source: str, scores: np.ndarray,
           flagged: int, features: np.ndarray | Callable[[], np.ndarray] | None) -> None:
    """Add rows of one model version, hour and source; ``features`` (or a function that builds them) is
    only read when the model has a reference."""
    key = (model, version, hour, source)
    volume = counts.volume.get(key)
    if volume is None:
        counts.volume[key] = [len(scores), flagged]
    else:
        volume[0] += len(scores)
        volume[1] += flagged
    tally = _Tally(np.bincount(score_bins(scores), minlength=SCORE_BINS))
    reference = model_reference(model, version or None)
    if reference is not None and features is not None:
        tally.binning = _binning(reference)
        tally.inputs = tally.binning.counts(features() if callable(features) else features)
    mine = counts.tallies.get(key[:3])
    if mine is None:
        counts.tallies[key[:3]] = tally
    else:
        mine.add(tally)


def count_scored(model: str, version: str | None, created_at: datetime, source: str, scores: np.ndarray,
                 flagged: np.ndarray, features: np.ndarray, counts: Counts | None = None) -> Counts:
    """The increments of a scored batch of one model version written at ``created_at``: ``scores`` and
    ``flagged`` (n), ``features`` (n x 29, MODEL_FEATURES order). Added to ``counts`` if given."""
    counts = counts if counts is not None else Counts()
    if len(scores):
        _count(counts, model, version or "", hour_of(created_at), source, np.asarray(scores, dtype=np.float64),
               int(np.count_nonzero(flagged)), features)
    return counts


#: The 29 inputs of a row's ``features`` mapping, in MODEL_FEATURES order.
_INPUTS = operator.itemgetter(*MODEL_FEATURES)


def count_rows(values: Sequence[Mapping[str, Any]], counts: Counts | None = None) -> Counts:
    """The increments of prediction rows as inserted (``model``, ``model_version``, ``created_at``,
    ``source``, ``fraud_probability``, ``is_fraud``, ``features``). Added to ``counts`` if given."""
    counts = counts if counts is not None else Counts()
    groups: dict[tuple[str, str, datetime, str], list[int]] = {}
    hours: dict[datetime, datetime] = {}
    for i, row in enumerate(values):
        created = row["created_at"]
        hour = hours.get(created)
        if hour is None:
            hour = hours[created] = hour_of(created)
        groups.setdefault((row["model"], row.get("model_version") or "", hour, row["source"]), []).append(i)
    for (model, version, hour, source), rows in groups.items():
        scores = np.fromiter((float(values[i]["fraud_probability"]) for i in rows), np.float64, len(rows))
        flagged = sum(bool(values[i]["is_fraud"]) for i in rows)

        def features(rows: list[int] = rows) -> np.ndarray:
            return np.array([_INPUTS(values[i]["features"]) for i in rows],
                            dtype=np.float64).reshape(len(rows), len(MODEL_FEATURES))

        _count(counts, model, version, hour, source, scores, flagged, features)
    return counts


# -- writing (in the transaction) -----------------------------------------------------------------

@dataclass(frozen=True)
class _Upserts:
    """The two upserts as driver SQL for one dialect, and how that dialect binds an hour."""

    volume: str
    bins: str
    bind_hour: Callable[[datetime], Any]


_UPSERTS: dict[str, _Upserts] = {}


def _upsert_sql(dialect: Any, table: Any, keys: Sequence[str], counters: Sequence[str]) -> str:  # noqa: ANN401
    if dialect.name not in ("sqlite", "postgresql"):  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"monitoring aggregates need SQLite or PostgreSQL, not {dialect.name}")
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
    names = [*keys, *counters]
    updates = ", ".join(f"{quote(c)} = {quote(table.name)}.{quote(c)} + excluded.{quote(c)}" for c in counters)
    return (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) "
            f"VALUES ({', '.join([mark] * len(names))}) "
            f"ON CONFLICT ({', '.join(map(quote, keys))}) DO UPDATE SET {updates}")


def _upserts(dialect: Any) -> _Upserts:  # noqa: ANN401 - a SQLAlchemy dialect
    statements = _UPSERTS.get(dialect.name)
    if statements is None:
        # imported here: fraud_app.storage's writer imports this module while fraud_app.storage initialises
        from fraud_app.storage.tables import monitoring_bins, monitoring_volume

        process = monitoring_volume.c.hour.type.dialect_impl(dialect).bind_processor(dialect)
        statements = _UPSERTS[dialect.name] = _Upserts(
            _upsert_sql(dialect, monitoring_volume, ("model", "model_version", "hour", "source"),
                        ("count", "flagged")),
            _upsert_sql(dialect, monitoring_bins, ("model", "model_version", "hour", "feature", "bin"), ("count",)),
            process if process is not None else (lambda value: value))
    return statements


def write_counts(conn: Connection, counts: Counts) -> None:
    """Upsert ``counts`` on ``conn``'s transaction: one executemany per table (on the driver's cursor), keys in
    sorted order."""
    if not counts:
        return
    statements = _upserts(conn.dialect)
    bound: dict[datetime, Any] = {}

    def hour(value: datetime) -> Any:  # noqa: ANN401
        out = bound.get(value)
        if out is None:
            out = bound[value] = statements.bind_hour(value)
        return out

    from fraud_app.storage.engine import execute_driver

    execute_driver(conn, statements.volume, [(m, v, hour(h), *rest) for m, v, h, *rest in counts.volume_rows()],
                   many=True)
    bins = counts.bin_rows()
    if bins:
        execute_driver(conn, statements.bins, [(m, v, hour(h), *rest) for m, v, h, *rest in bins], many=True)


def record(conn: Connection, values: Sequence[Mapping[str, Any]]) -> None:
    """Count the prediction rows ``values`` (as inserted) and add them to the aggregates, on ``conn``'s
    transaction (writers that count first call :func:`count_rows` and :func:`write_counts` themselves)."""
    if values:
        write_counts(conn, count_rows(values))
