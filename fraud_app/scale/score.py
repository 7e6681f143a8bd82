"""``score``: batch scoring of a Parquet or CSV file or directory, locally or on Dask.

The input is cut into parts (a Parquet file's row groups, or one CSV file). Each part is read,
checked, scored and written as ``part.NNNNN.parquet`` with the input's columns plus
``fraud_probability`` and ``is_fraud`` (an input's own ``is_fraud`` label is kept as
``is_fraud_label``), into a hidden temp folder beside the output; when every
part succeeded, the folder is renamed to the output. A part with bad rows writes nothing and
reports them by file and row (the row number counts data rows from 0 within the file); then the
temp folder is removed and nothing is left at the output. ``engine="dask"`` runs the parts on the
cluster (the model is shipped to the workers; they need the input and output paths, e.g. a
shared file system); ``engine="local"`` runs them one after another in this process.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.data.schema import KAGGLE_COLUMNS, MODEL_FEATURES

log = logging.getLogger(__name__)

ENGINES = ("local", "dask")
#: Rows written to the predictions table per transaction with ``--save-to-db``.
DB_CHUNK_ROWS = 5_000
#: An input's own ``is_fraud`` column (a known label) is kept under this name.
LABEL_COLUMN = "is_fraud_label"
#: Bad rows listed in the error (the count is always given).
MAX_REPORTED = 20


class ScoreInputError(ValueError):
    """Input rows that cannot be scored; the message names each file and row."""


@dataclass(frozen=True)
class Part:
    """One unit of work: a file, and for Parquet a range of row groups and the first row's number."""

    index: int
    path: str
    kind: str  # "parquet" or "csv"
    row_groups: tuple[int, ...] = ()
    first_row: int = 0


def list_parts(url: str, row_groups_per_part: int = 1) -> list[Part]:
    """The parts of a Parquet/CSV file or of every such file in a directory (recursively, sorted)."""
    import fsspec
    import pyarrow.parquet as pq

    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        raise FileNotFoundError(f"input not found: {url}")
    files = sorted(p for p in fs.find(root) if p.lower().endswith((".parquet", ".csv"))) if fs.isdir(root) else [root]
    if not files:
        raise ScoreInputError(f"no .parquet or .csv files in {url}")
    parts: list[Part] = []
    for path in files:
        if path.lower().endswith(".csv"):
            parts.append(Part(len(parts), path, "csv"))
            continue
        if not path.lower().endswith(".parquet"):
            raise ScoreInputError(f"{posixpath.basename(path)}: unsupported file type (use .parquet or .csv)")
        with fs.open(path, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
        first = 0
        groups = list(range(meta.num_row_groups)) or [0]
        for start in range(0, len(groups), row_groups_per_part):
            chunk = tuple(groups[start:start + row_groups_per_part])
            parts.append(Part(len(parts), path, "parquet", chunk, first))
            first += sum(meta.row_group(g).num_rows for g in chunk if g < meta.num_row_groups)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol not in ("file", "local"):
        parts = [Part(p.index, f"{protocol}://{p.path}", p.kind, p.row_groups, p.first_row) for p in parts]
    return parts


def _read(part: Part) -> pd.DataFrame:
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(part.path, "rb") as handle:
        if part.kind == "csv":
            return pd.read_csv(handle)
        return pq.ParquetFile(handle).read_row_groups(list(part.row_groups)).to_pandas()


def bad_rows(frame: pd.DataFrame) -> tuple[np.ndarray | None, list[str]]:
    """The model inputs as a float array, or None and the problems (by row number within ``frame``)."""
    renamed = frame.rename(columns={k: v for k, v in KAGGLE_COLUMNS.items() if k in frame.columns})
    missing = [c for c in MODEL_FEATURES if c not in renamed.columns]
    if missing:
        return None, [f"missing column(s): {', '.join(missing)}"]
    problems = []
    columns = []
    for name in MODEL_FEATURES:
        column = renamed[name]
        if pd.api.types.is_bool_dtype(column.dtype):
            return None, [f"column {name!r} has dtype bool, expected a numeric dtype"]
        numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64")
        columns.append(numeric)
    values = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    bad = ~np.isfinite(values)
    for row in np.flatnonzero(bad.any(axis=1))[:MAX_REPORTED]:
        names = [MODEL_FEATURES[j] for j in np.flatnonzero(bad[row])]
        problems.append(f"row {int(row)}: not a finite number in {', '.join(names)}")
    n_bad = int(bad.any(axis=1).sum())
    if n_bad > MAX_REPORTED:
        problems.append(f"... {n_bad} bad rows in all")
    return (None if problems else values), problems


def score_part(part: Part, model: Any, tmp_dir: str) -> dict[str, Any]:
    """Read, check, score and write one part; returns ``{"index", "rows", "frauds", "problems"}``."""
    import fsspec

    frame = _read(part)
    values, problems = bad_rows(frame)
    name = posixpath.basename(part.path)
    if values is None:
        located = [_shift(p, part.first_row) for p in problems]
        return {"index": part.index, "rows": len(frame), "frauds": 0, "problems": [f"{name}: {p}" for p in located]}
    proba = model.predict_proba_array(values) if len(values) else np.zeros(0)
    out = frame.rename(columns={"is_fraud": LABEL_COLUMN}) if "is_fraud" in frame.columns else frame.copy()
    out["fraud_probability"] = proba
    out["is_fraud"] = (proba >= model.threshold).astype("int8")
    with fsspec.open(f"{tmp_dir}/part.{part.index:05d}.parquet", "wb") as handle:
        out.to_parquet(handle, index=False)
    return {"index": part.index, "rows": len(out), "frauds": int(out["is_fraud"].sum()), "problems": []}


def _shift(problem: str, offset: int) -> str:
    if problem.startswith("row "):
        number, rest = problem[4:].split(":", 1)
        return f"row {int(number) + offset}:{rest}"
    return problem


def _tmp_sibling(output: str) -> tuple[Any, str, str]:
    import fsspec

    fs, target = fsspec.core.url_to_fs(output)
    parent, base = posixpath.split(target.rstrip("/"))
    tmp = posixpath.join(parent, f".{base}.tmp-{uuid.uuid4().hex[:8]}")
    return fs, target.rstrip("/"), tmp


def score(model_name: str, input_url: str, output: str, *, engine: str = "local", save_to_db: bool = False,
          overwrite: bool = False, progress: bool | Callable[[int, int], None] = True) -> dict[str, Any]:
    """Score ``input_url`` with the saved model ``model_name`` into ``output`` (see the module docs).

    Returns ``{"rows", "frauds", "parts", "seconds", "rows_per_s", "output", "engine", "saved_to_db"}``.
    Raises :class:`ScoreInputError` (bad rows, by file and row), ``FileExistsError`` (``output`` exists
    and ``overwrite`` is false), ``FileNotFoundError`` (no input) or the store's errors for the model.
    """
    from fraud_app.models import load_model

    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    model = load_model(model_name)
    parts = list_parts(input_url)
    fs, target, tmp = _tmp_sibling(output)
    if fs.exists(target) and not overwrite:
        raise FileExistsError(f"{output} already exists (choose another --output or pass --overwrite)")
    parent = posixpath.dirname(target)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.makedirs(tmp, exist_ok=True)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    tmp_url = tmp if protocol in ("file", "local") else f"{protocol}://{tmp}"
    bar = _bar(len(parts), progress)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        if engine == "local":
            for part in parts:
                results.append(score_part(part, model, tmp_url))
                bar(len(results))
        else:
            from distributed import as_completed

            from fraud_app.scale.engine import get_client

            client = get_client()
            if callable(progress) is False and progress:
                print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            started = time.perf_counter()  # rows/s measures the scoring, not the cluster's start
            shipped = client.scatter(model, broadcast=True)
            futures = [client.submit(score_part, part, shipped, tmp_url, pure=False) for part in parts]
            for future in as_completed(futures):
                results.append(future.result())
                bar(len(results))
        problems = [p for r in sorted(results, key=lambda r: r["index"]) for p in r["problems"]]
        if problems:
            shown = problems[:MAX_REPORTED]
            more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
            raise ScoreInputError("bad input rows, nothing was written:\n  " + "\n  ".join(shown) + more)
        if fs.exists(target):
            trash = f"{target}.old-{uuid.uuid4().hex[:8]}"
            fs.mv(target, trash, recursive=True)
            fs.mv(tmp, target, recursive=True)
            fs.rm(trash, recursive=True)
        else:
            fs.mv(tmp, target, recursive=True)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)
        raise
    finally:
        bar(None)
    seconds = time.perf_counter() - started
    rows = int(sum(r["rows"] for r in results))
    saved = save_predictions(model, output, progress) if save_to_db else 0
    return {"rows": rows, "frauds": int(sum(r["frauds"] for r in results)), "parts": len(parts),
            "seconds": round(seconds, 3), "rows_per_s": rows / seconds if seconds > 0 else float("nan"),
            "output": output, "engine": engine, "saved_to_db": saved}


def save_predictions(model: Any, output: str, progress: bool | Callable[[int, int], None] = True) -> int:
    """Write the scored rows of ``output`` to the predictions table, ``DB_CHUNK_ROWS`` per transaction."""
    import fsspec
    import pyarrow.parquet as pq

    from fraud_app.storage import init_db, insert_predictions

    init_db()
    fs, root = fsspec.core.url_to_fs(output)
    files = sorted(p for p in fs.find(root) if p.endswith(".parquet"))
    saved = 0
    for path in files:
        with fs.open(path, "rb") as handle:
            table = pq.ParquetFile(handle)
            for batch in table.iter_batches(batch_size=DB_CHUNK_ROWS):
                frame = batch.to_pandas().rename(columns={k: v for k, v in KAGGLE_COLUMNS.items()})
                features = frame[MODEL_FEATURES].to_dict(orient="records")
                rows = [{"model": model.name, "model_version": model.version, "features": f,
                         "fraud_probability": float(p), "is_fraud": bool(flag), "threshold": float(model.threshold),
                         "source": "batch"}
                        for f, p, flag in zip(features, frame["fraud_probability"], frame["is_fraud"], strict=True)]
                insert_predictions(rows, deadline=time.monotonic() + 60)
                saved += len(rows)
    return saved


def _bar(total: int, progress: bool | Callable[[int, int], None]) -> Callable[[int | None], None]:
    """A progress callback: ``bar(done)``; ``bar(None)`` closes it."""
    if callable(progress):
        return lambda done: progress(done, total) if done is not None else None
    if not progress:
        return lambda done: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="part", desc="scoring", file=None, dynamic_ncols=True)
    state = {"n": 0}

    def update(done: int | None) -> None:
        if done is None:
            bar.close()
            return
        bar.update(done - state["n"])
        state["n"] = done

    return update


__all__ = ["DB_CHUNK_ROWS", "ENGINES", "Part", "ScoreInputError", "bad_rows", "list_parts", "save_predictions",
           "score", "score_part"]
