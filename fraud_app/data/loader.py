"""Load the transactions once per process."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fraud_app.config import get_settings
from fraud_app.data.schema import COLUMNS, SchemaError, to_canonical, validate_transactions
from fraud_app.data.synthetic import make_synthetic

log = logging.getLogger(__name__)


class DataNotFoundError(FileNotFoundError):
    """The real data set has not been fetched yet."""


class DatasetTooLargeError(ValueError):
    """The data set has more rows than ``FRAUD_APP_MAX_IN_MEMORY_ROWS``: open it lazily instead."""


def _too_large(target: str, rows: int) -> DatasetTooLargeError:
    limit = get_settings().max_in_memory_rows
    return DatasetTooLargeError(
        f"{target} has {rows:,} rows, above FRAUD_APP_MAX_IN_MEMORY_ROWS={limit:,}: it is not loaded into "
        "memory; it opens lazily on Dask (fraud_app.data.open_dataset, `train --engine dask`, `score`)")


@dataclass(frozen=True)
class DatasetInfo:
    """Headline facts about a transactions frame."""

    rows: int
    frauds: int
    fraud_rate: float
    time_span_hours: float
    memory_mb: float
    source: str
    fingerprint: str
    partitions: int = 1
    lazy: bool = False
    """True when the set is above ``FRAUD_APP_MAX_IN_MEMORY_ROWS``: opened lazily on Dask, never loaded whole."""

    @property
    def read_text(self) -> str:
        """What the UI says it read: ``read N rows in P partition(s)``."""
        return f"read {self.rows:,} rows in {self.partitions:,} partition{'s' if self.partitions != 1 else ''}"

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "frauds": self.frauds,
            "fraud_rate": self.fraud_rate,
            "time_span_hours": self.time_span_hours,
            "memory_mb": self.memory_mb,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "partitions": self.partitions,
            "lazy": self.lazy,
        }


_lock = threading.Lock()
_cache: dict[tuple, pd.DataFrame] = {}
#: How many times a frame was actually read or generated (tests use it).
load_count = 0


def _cache_key(path: Path | None) -> tuple:
    settings = get_settings()
    if path is None and settings.data_path is None and settings.dataset == "synthetic":
        return ("synthetic", settings.synthetic_rows, settings.synthetic_fraud_rate, settings.seed)
    raw = str(path) if path is not None else settings.data_path
    if raw is not None and ("://" in raw or Path(raw).is_dir()):
        from fraud_app.data.partitioned import files_fingerprint, list_files

        files = list_files(raw)
        if all(r >= 0 for r in files.rows) and files.total_rows > settings.max_in_memory_rows:
            raise _too_large(raw, files.total_rows)
        return ("files", raw, files_fingerprint(files))
    target = Path(raw) if raw is not None else settings.parquet_path
    try:
        stat = target.stat()
    except FileNotFoundError:
        raise DataNotFoundError(
            f"data set not found at {target}; run `python -m fraud_app data fetch` "
            "(or set FRAUD_APP_DATASET=synthetic for the demo mode)"
        ) from None
    if target.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.ParquetFile(target).metadata.num_rows
        except Exception:  # a broken footer is reported by the reader, with the file's name
            rows = 0
        if rows > settings.max_in_memory_rows:
            raise _too_large(str(target), rows)
    return ("file", str(target.resolve()), stat.st_mtime_ns, stat.st_size)


def _read_files(url: str) -> pd.DataFrame:
    """Every file of a directory or URL, validated one by one (the error names the file), concatenated."""
    import posixpath

    import fsspec

    from fraud_app.data.partitioned import list_files

    files = list_files(url)
    fs, _ = fsspec.core.url_to_fs(url)
    parts = []
    for path in files.files:
        with fs.open(path, "rb") as handle:
            part = pd.read_parquet(handle) if path.endswith(".parquet") else pd.read_csv(handle)
        try:
            parts.append(validate_transactions(to_canonical(part)))
        except SchemaError as exc:
            raise SchemaError(f"{posixpath.basename(path)}: {exc}") from None
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    frame.attrs["_files"] = len(parts)
    return frame


def read_transactions_file(path: Path) -> pd.DataFrame:
    """Read a Parquet or CSV file, map Kaggle names and validate it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in {".csv", ".gz", ".zip"}:
        frame = pd.read_csv(path)
    else:
        raise SchemaError(f"{path.name}: unsupported file type {suffix!r} (use .parquet or .csv)")
    try:
        return validate_transactions(to_canonical(frame))
    except SchemaError as exc:
        raise SchemaError(f"{path.name}: {exc}") from None


def load_transactions(path: str | Path | None = None) -> pd.DataFrame:
    """Return the canonical transactions frame, loaded once per process.

    With no ``path``: ``FRAUD_APP_DATA_PATH`` (a file, a directory of Parquet files or an
    fsspec URL), else the real data set at ``<data_dir>/creditcard.parquet``, or the
    seeded synthetic set when ``FRAUD_APP_DATASET=synthetic``. Above
    ``FRAUD_APP_MAX_IN_MEMORY_ROWS`` rows it raises :class:`DatasetTooLargeError`
    (use :func:`fraud_app.data.open_dataset`, which opens such a set lazily). The real data is never
    replaced by synthetic data silently: a missing file raises :class:`DataNotFoundError`.
    The returned frame is shared; treat it as read-only.
    """
    global load_count
    key = _cache_key(Path(path) if path is not None else None)
    with _lock:
        frame = _cache.get(key)
        if frame is None:
            if key[0] == "synthetic":
                _, rows, rate, seed = key
                frame = validate_transactions(make_synthetic(rows, rate, seed))
                log.info("generated synthetic data set: %d rows, seed %d", rows, seed)
            elif key[0] == "files":
                frame = _read_files(key[1])
                log.info("loaded %s: %d rows", key[1], len(frame))
            else:
                frame = read_transactions_file(Path(key[1]))
                log.info("loaded %s: %d rows", key[1], len(frame))
            frame.attrs["source"] = key[0] if key[0] == "synthetic" else key[1]
            frame.attrs["fingerprint"] = key[2] if key[0] == "files" else fingerprint(frame)
            frame.attrs["partitions"] = frame.attrs.pop("_files", 1)
            load_count += 1
            _cache.clear()
            _cache[key] = frame
    return frame


def is_loaded(path: str | Path | None = None) -> bool:
    """True when :func:`load_transactions` would answer from memory (no file read, no generation)."""
    key = _cache_key(Path(path) if path is not None else None)
    with _lock:
        return key in _cache


def clear_cache() -> None:
    """Forget the loaded frame (tests)."""
    with _lock:
        _cache.clear()


def fingerprint(frame: pd.DataFrame) -> str:
    """A short, stable hash of a frame's contents."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def dataset_info(frame: pd.DataFrame) -> DatasetInfo:
    """Rows, frauds, fraud rate, time span and memory of a frame."""
    rows = len(frame)
    frauds = int(frame["is_fraud"].sum())
    span = float(frame["time"].max() - frame["time"].min()) / 3600 if rows else 0.0
    return DatasetInfo(
        rows=rows,
        frauds=frauds,
        fraud_rate=frauds / rows if rows else 0.0,
        time_span_hours=span,
        memory_mb=float(frame.memory_usage(deep=True).sum()) / 1e6,
        source=str(frame.attrs.get("source", "memory")),
        fingerprint=str(frame.attrs.get("fingerprint") or fingerprint(frame)),
        partitions=int(frame.attrs.get("partitions", 1)),
    )


__all__ = ["COLUMNS", "DataNotFoundError", "DatasetInfo", "DatasetTooLargeError", "clear_cache", "dataset_info", "is_loaded",
           "fingerprint", "load_transactions", "read_transactions_file"]
