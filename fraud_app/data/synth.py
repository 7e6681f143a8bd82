"""``data synth``: a large synthetic data set written as partitioned Parquet, streaming.

One partition is generated, written and freed at a time, so memory is bounded by one
partition (about ``rows / partitions × 31 × 8`` bytes, plus the generator's temporaries),
whatever the total. Times increase across partitions, so a time-ordered split holds out
the last partitions' range. Output goes to a hidden temp folder beside ``out`` and is
renamed into place when every partition is written: nothing half-written is left at ``out``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fraud_app.data.synthetic import synthetic_columns

#: Seconds spanned by the real data set's 284,807 rows; a larger set spans proportionally more.
REAL_SPAN_S = 172_792.0
REAL_ROWS = 284_807


def partition_sizes(rows: int, partitions: int) -> list[int]:
    """Rows per partition, as even as possible."""
    base, extra = divmod(rows, partitions)
    return [base + (1 if i < extra else 0) for i in range(partitions)]


def write_synthetic(rows: int, partitions: int, out: str | Path, *, fraud_rate: float = 0.01, seed: int = 0,
                    dtype: str = "float64", overwrite: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``rows`` synthetic transactions as ``partitions`` Parquet files ``part.00000.parquet``... in ``out``.

    Returns ``{"rows", "frauds", "partitions", "out", "bytes"}``. Raises ``ValueError`` for bad
    arguments, ``FileExistsError`` when ``out`` exists and ``overwrite`` is false.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if int(rows) != rows or rows < 100:
        raise ValueError(f"--rows must be an integer of at least 100, got {rows!r}")
    if int(partitions) != partitions or not 1 <= partitions <= rows:
        raise ValueError(f"--partitions must be an integer from 1 to the row count, got {partitions!r}")
    if not 0.0 < fraud_rate < 0.5:
        raise ValueError(f"--fraud-rate must be in (0, 0.5), got {fraud_rate!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"--dtype must be float64 or float32, got {dtype!r}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (choose another --out or pass --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    sizes = partition_sizes(int(rows), int(partitions))
    span = REAL_SPAN_S * max(1.0, rows / REAL_ROWS)
    frauds = 0
    try:
        start = 0
        for i, size in enumerate(sizes):
            rng = np.random.default_rng([seed, i])
            labels = (rng.random(size) < fraud_rate).astype("int8")
            t0, t1 = span * start / rows, span * (start + size) / rows
            table = pa.table(synthetic_columns(rng, labels, t0, t1, dtype))
            pq.write_table(table, tmp / f"part.{i:05d}.parquet", row_group_size=min(size, 1_000_000))
            frauds += int(labels.sum())
            start += size
            del table, labels
            if progress is not None:
                progress(i + 1, len(sizes))
        written = sum(f.stat().st_size for f in tmp.iterdir())
        if out.exists():
            trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, trash)
            os.rename(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"rows": int(rows), "frauds": frauds, "partitions": len(sizes), "out": str(out), "bytes": written}


__all__ = ["partition_sizes", "write_synthetic"]
