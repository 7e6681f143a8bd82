"""Data sets of any size: a Parquet/CSV file or a directory of partitioned Parquet files, local or fsspec.

:func:`open_dataset` answers a pandas frame (through :func:`~fraud_app.data.loader.load_transactions`)
up to ``FRAUD_APP_MAX_IN_MEMORY_ROWS`` rows, and above it a :class:`LazyDataset`: a Dask DataFrame
that is never loaded whole into this process. Row counts come from the Parquet footers, so deciding
costs no data read. The schema is checked on every file's footer (columns, dtypes) and on the data
of a sample of partitions (NaN/inf, labels), with the same named errors as the in-memory loader,
prefixed by the file's name.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.config import get_settings
from fraud_app.data.schema import COLUMNS, TARGET, SchemaError, validate_transactions

log = logging.getLogger(__name__)

#: Partitions whose data are read and validated when a lazy data set opens (first, last, and spread).
SAMPLE_PARTITIONS = 3


@dataclass(frozen=True)
class DatasetFiles:
    """The Parquet files of a data set, their row counts and where they live."""

    url: str
    files: list[str]
    rows: list[int]
    protocol: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return int(sum(self.rows))


@dataclass
class LazyDataset:
    """A data set opened lazily: a Dask DataFrame plus the facts known without computing it."""

    frame: Any  # dask.dataframe.DataFrame
    files: DatasetFiles
    fingerprint: str
    source: str

    @property
    def rows(self) -> int:
        return self.files.total_rows

    @property
    def partitions(self) -> int:
        return int(self.frame.npartitions)

    def read_text(self) -> str:
        """What the UI shows: ``read N rows in P partitions``."""
        return f"read {self.rows:,} rows in {self.partitions:,} partitions"


def data_url(path: str | None = None) -> str:
    """``path``, else ``FRAUD_APP_DATA_PATH``, else the real data set's Parquet file."""
    settings = get_settings()
    return str(path or settings.data_path or settings.parquet_path)


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    return fs, root


def list_files(url: str) -> DatasetFiles:
    """The Parquet files under ``url`` (a file or a directory, searched recursively) with their row counts.

    Raises :class:`~fraud_app.data.loader.DataNotFoundError` when nothing is there.
    """
    import pyarrow.parquet as pq

    from fraud_app.data.loader import DataNotFoundError

    fs, root = _fs(url)
    if not fs.exists(root):
        raise DataNotFoundError(f"data set not found at {url}; run `python -m fraud_app data fetch`, "
                                "or point FRAUD_APP_DATA_PATH (--data) at a Parquet file or directory")
    if fs.isdir(root):
        files = sorted(p for p in fs.find(root) if p.endswith(".parquet")
                       and not any(part.startswith((".", "_")) for part in p[len(root):].split("/") if part))
        if not files:
            raise DataNotFoundError(f"no .parquet files in the directory {url}")
    else:
        files = [root]
    rows = []
    for path in files:
        if not path.endswith(".parquet"):
            rows.append(-1)
            continue
        try:
            with fs.open(path, "rb") as handle:
                rows.append(int(pq.ParquetFile(handle).metadata.num_rows))
        except Exception as exc:  # pyarrow raises several types for a broken footer
            raise SchemaError(f"{posixpath.basename(path)}: not a readable Parquet file ({exc})") from None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return DatasetFiles(url=url, files=files, rows=rows, protocol=protocol)


def check_footers(files: DatasetFiles) -> None:
    """Every file holds the canonical columns, all numeric; the error names the first bad file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, _ = _fs(files.url)
    for path in files.files:
        name = posixpath.basename(path)
        with fs.open(path, "rb") as handle:
            schema = pq.ParquetFile(handle).schema_arrow
        present = set(schema.names)
        missing = [c for c in COLUMNS if c not in present]
        if missing:
            raise SchemaError(f"{name}: missing column(s): {', '.join(missing)}")
        unknown = [c for c in schema.names if c not in COLUMNS and not c.startswith("__")]
        if unknown:
            raise SchemaError(f"{name}: unknown column(s): {', '.join(unknown)}")
        for column in COLUMNS:
            dtype = schema.field(column).type
            if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
                raise SchemaError(f"{name}: column {column!r} has dtype {dtype}, expected a numeric dtype")


def sample_indices(n: int, k: int = SAMPLE_PARTITIONS) -> list[int]:
    """Positions of ``k`` partitions spread over ``n``: the first, the last and evenly between."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def read_partition(files: DatasetFiles, index: int) -> pd.DataFrame:
    """File ``index`` of ``files`` read whole and validated (NaN/inf, 0/1 labels); the error names the file."""
    fs, _ = _fs(files.url)
    path = files.files[index]
    with fs.open(path, "rb") as handle:
        part = pd.read_parquet(handle)
    try:
        return validate_transactions(part)
    except SchemaError as exc:
        raise SchemaError(f"{posixpath.basename(path)}: {exc}") from None


def check_sample(files: DatasetFiles, k: int = SAMPLE_PARTITIONS) -> None:
    """Read ``k`` files whole and validate their data (NaN/inf, 0/1 labels), naming the bad file."""
    for i in sample_indices(len(files.files), k):
        read_partition(files, i)


def files_fingerprint(files: DatasetFiles) -> str:
    """A short hash of the files' names, sizes and row counts (no data read): the data set's identity."""
    fs, root = _fs(files.url)
    digest = hashlib.sha256(",".join(COLUMNS).encode())
    for path, rows in zip(files.files, files.rows, strict=True):
        digest.update(f"{path[len(root):]}|{fs.size(path)}|{rows}\n".encode())
    return digest.hexdigest()[:16]


def open_lazy(url: str | None = None, *, validate: bool = True) -> LazyDataset:
    """Open a Parquet file or directory as a Dask DataFrame, after checking footers and sample partitions."""
    import dask.dataframe as dd

    url = data_url(url)
    files = list_files(url)
    if any(r < 0 for r in files.rows):
        raise SchemaError(f"{url}: a lazy data set must be Parquet (CSV files are read whole or by `score`)")
    if validate:
        check_footers(files)
        check_sample(files)
    protocol = files.protocol
    paths = files.files if protocol in ("file", "local") else [f"{protocol}://{p}" for p in files.files]
    frame = dd.read_parquet(paths, columns=list(COLUMNS))
    return LazyDataset(frame=frame, files=files, fingerprint=files_fingerprint(files), source=url)


def is_lazy_size(url: str | None = None) -> bool:
    """True when the data set at ``url`` has more rows than ``FRAUD_APP_MAX_IN_MEMORY_ROWS`` (footers only)."""
    files = list_files(data_url(url))
    return all(r >= 0 for r in files.rows) and files.total_rows > get_settings().max_in_memory_rows


def open_dataset(url: str | None = None) -> pd.DataFrame | LazyDataset:
    """The data set: a pandas frame up to ``FRAUD_APP_MAX_IN_MEMORY_ROWS`` rows, else a :class:`LazyDataset`.

    The synthetic demo mode (``FRAUD_APP_DATASET=synthetic`` with no path) is always in memory.
    """
    from fraud_app.data.loader import load_transactions

    settings = get_settings()
    if url is None and settings.data_path is None and settings.dataset == "synthetic":
        return load_transactions()
    if is_lazy_size(url):
        return open_lazy(url)
    return load_transactions(url)


def stratified_sample(dataset: LazyDataset, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """A stratified sample of at most ``max_rows`` rows (the same fraction of each class), in memory."""
    fraction = min(1.0, max_rows / max(dataset.rows, 1))

    def take(part: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
        number = (partition_info or {}).get("number", 0)
        if fraction >= 1.0:
            return part
        return part.groupby(TARGET, group_keys=False).sample(frac=fraction, random_state=seed * 100_003 + number)

    sample = dataset.frame.map_partitions(take, meta=dataset.frame._meta).compute()
    sample = validate_transactions(sample)
    sample.attrs["source"] = f"{dataset.source} (stratified sample, {fraction:.4%})"
    sample.attrs["fingerprint"] = f"{dataset.fingerprint}-s{seed}-{len(sample)}"
    return sample


__all__ = ["SAMPLE_PARTITIONS", "DatasetFiles", "LazyDataset", "check_footers", "check_sample", "data_url",
           "files_fingerprint", "is_lazy_size", "list_files", "open_dataset", "open_lazy", "read_partition", "sample_indices",
           "stratified_sample"]
