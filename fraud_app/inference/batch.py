"""Batch scoring of an uploaded CSV file (no Panel).

The CSV format
--------------
* A header row, then one transaction per row. UTF-8 (a byte-order mark is fine), comma-separated.
* Required columns: the 29 model inputs ``feature1`` ... ``feature28`` and ``amount``, in any order.
  The Kaggle names (``V1`` ... ``V28``, ``Amount``) are accepted too and mapped.
* Optional columns, accepted and **ignored**: ``time`` and ``is_fraud`` (Kaggle ``Time`` and
  ``Class``), so that a slice of the data set itself can be uploaded as is. The label is not
  used for scoring and not stored.
* Any other column is refused, as are duplicated columns, empty or non-numeric cells
  (``NaN``/``inf`` included), a negative ``amount``, a value beyond the float32 range the
  models compute in, an empty file, and more than :data:`MAX_BATCH_ROWS` rows.

Every problem is reported at once in a :class:`BatchFileError` whose message names the
columns and the row numbers (row 1 is the first transaction below the header; blank lines
are skipped). Nothing is saved unless the whole file is valid; a valid file is scored and
saved in one database transaction by :func:`fraud_app.inference.score_and_save` with
``source="batch"``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fraud_app.data import KAGGLE_COLUMNS, MODEL_FEATURES, TARGET
from fraud_app.data.schema import TIME
from fraud_app.inference.service import score_and_save
from fraud_app.inference.validation import FEATURE_LIMIT, MAX_BATCH, MIN_AMOUNT, PredictionInputError, feature_bounds

log = logging.getLogger(__name__)

#: The most transactions one uploaded file may hold (the service's per-call limit).
MAX_BATCH_ROWS = MAX_BATCH
#: The largest file accepted, in bytes (10,000 rows of full-precision floats take about 6 MB).
MAX_BATCH_BYTES = 16 * 1024 * 1024
#: Columns a file may carry that are not model inputs; they are ignored.
OPTIONAL_COLUMNS: tuple[str, ...] = (TIME, TARGET)
#: How many offending rows are listed per column before "and N more".
MAX_ROWS_LISTED = 5
#: How many columns with non-numeric cells are described in detail.
MAX_COLUMNS_LISTED = 8
#: Columns of :func:`predictions_frame` before the model inputs.
RESULT_COLUMNS: tuple[str, ...] = ("id", "created_at", "source", "model", "model_version",
                                   "fraud_probability", "threshold", "is_fraud")


class BatchFileError(PredictionInputError):
    """An uploaded batch file is invalid; ``problems`` lists every problem found.

    The message joins the problems; ``field`` names the first offending column (or
    ``"file"`` for a problem with the file as a whole).
    """

    def __init__(self, problems: Sequence[str], field: str | None = "file") -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("; ".join(self.problems), field)


def _rows_text(rows: Sequence[int], values: Sequence[str] | None = None) -> str:
    shown = []
    for i, row in enumerate(rows[:MAX_ROWS_LISTED]):
        if values is None:
            shown.append(str(row))
        else:
            value = values[i]
            shown.append(f"{row} (empty)" if value == "" else f"{row} ({value[:20]!r})")
    more = f" and {len(rows) - MAX_ROWS_LISTED} more" if len(rows) > MAX_ROWS_LISTED else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{noun} {', '.join(shown)}{more}"


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BatchFileError([f"expected the file's bytes, got {type(data).__name__}"])
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchFileError([f"the file is not UTF-8 text (undecodable byte at offset {exc.start}); "
                              "save it as a UTF-8 CSV"]) from None


def _records(text: str) -> list[list[str]]:
    """The CSV's non-blank records (cells stripped)."""
    try:
        return [[cell.strip() for cell in record] for record in csv.reader(io.StringIO(text), skipinitialspace=True)
                if any(cell.strip() for cell in record)]
    except csv.Error as exc:
        raise BatchFileError([f"the file is not a well-formed CSV: {exc}"]) from None


def _check_header(header: list[str]) -> tuple[list[str], dict[str, str], str]:
    """Problems with the header, a mapping from the file's names to ours, and the first column at fault."""
    problems: list[str] = []
    culprits: list[str] = []
    mapping = {name: KAGGLE_COLUMNS.get(name, name) for name in header}
    canonical = [mapping[name] for name in header]
    seen: set[str] = set()
    duplicated = []
    for original, name in zip(header, canonical, strict=True):
        if name in seen and original not in duplicated:
            duplicated.append(original if original == name else f"{original} (= {name})")
        seen.add(name)
    if any(name == "" for name in header):
        problems.append(f"empty column name(s) at position(s) "
                        f"{', '.join(str(i + 1) for i, n in enumerate(header) if n == '')}")
    missing = [c for c in MODEL_FEATURES if c not in seen]
    if missing:
        problems.append(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        culprits.append(missing[0])
    allowed = set(MODEL_FEATURES) | set(OPTIONAL_COLUMNS)
    unknown = [orig for orig, name in zip(header, canonical, strict=True) if name and name not in allowed]
    if unknown:
        problems.append(f"unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} (expected "
                        "feature1..feature28 and amount; time and is_fraud are optional and ignored)")
        culprits.append(unknown[0])
    if duplicated:
        problems.append(f"duplicated column{'s' if len(duplicated) > 1 else ''}: {', '.join(duplicated)}")
        culprits.append(duplicated[0].split(" ")[0])
    return problems, mapping, (culprits[0] if culprits else "file")


def parse_batch_csv(data: bytes | str, *, max_rows: int = MAX_BATCH_ROWS,
                    max_bytes: int = MAX_BATCH_BYTES) -> pd.DataFrame:
    """Read and validate an uploaded CSV into a frame of the 29 model inputs.

    Parameters
    ----------
    data : the file's content (bytes, UTF-8), or already decoded text.
    max_rows : the most transactions accepted.
    max_bytes : the largest file accepted.

    Returns
    -------
    pandas.DataFrame
        one row per transaction, in file order, with exactly the columns of
        :data:`~fraud_app.data.MODEL_FEATURES` (float64) and a 0-based ``RangeIndex``.

    Raises
    ------
    BatchFileError
        listing every problem: empty file, not UTF-8, malformed CSV, missing, unknown or
        duplicated columns, no rows, too many rows, empty or non-numeric cells (with the
        column and the row numbers).
    """
    data = b"" if data is None else data
    size = len(data.encode()) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise BatchFileError([f"the file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB "
                              f"({max_rows:,} transactions)"])
    text = _decode(data)
    records = _records(text)
    if not records:
        raise BatchFileError(["the file is empty: expected a header row with feature1..feature28 and amount, "
                              "then one transaction per row"])
    header, body = records[0], records[1:]
    problems, mapping, culprit = _check_header(header)
    if problems:
        raise BatchFileError(problems, culprit)
    if not body:
        raise BatchFileError(["the file has a header but no transactions"], "transactions")
    if len(body) > max_rows:
        raise BatchFileError([f"the file holds {len(body):,} transactions; the limit is {max_rows:,} per file"],
                             "transactions")
    ragged = [i + 1 for i, record in enumerate(body) if len(record) != len(header)]
    if ragged:
        raise BatchFileError([f"{_rows_text(ragged)} {'has' if len(ragged) == 1 else 'have'} a different number "
                              f"of fields than the header ({len(header)})"], "transactions")
    position = {mapping[name]: i for i, name in enumerate(header)}
    columns: dict[str, np.ndarray] = {}
    bad_columns: list[str] = []
    for column in MODEL_FEATURES:
        j = position[column]
        cells = pd.Series([record[j] for record in body], dtype=str)
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            bad_columns.append(column)
            if len(bad_columns) <= MAX_COLUMNS_LISTED:
                positions = np.flatnonzero(bad)
                values = [str(cells.iat[int(p)]) for p in positions[:MAX_ROWS_LISTED]]
                problems.append(f"column {column} has non-numeric value(s) in "
                                f"{_rows_text([int(p) + 1 for p in positions], values)}")
        else:
            low, high = feature_bounds(column)
            out = (numbers < low) | (numbers > high)
            if out.any():
                bad_columns.append(column)
                positions = np.flatnonzero(out)
                values = [str(cells.iat[int(p)]) for p in positions[:MAX_ROWS_LISTED]]
                rule = (f"amounts must be {MIN_AMOUNT:g} or more (refunds and reversals are not scored)"
                        if column == "amount" and (numbers < low).any()
                        else f"values must lie within +/-{FEATURE_LIMIT!r}")
                problems.append(f"column {column} is out of range in "
                                f"{_rows_text([int(p) + 1 for p in positions], values)}: {rule}")
        columns[column] = numbers
    if len(bad_columns) > MAX_COLUMNS_LISTED:
        problems.append(f"and {len(bad_columns) - MAX_COLUMNS_LISTED} more column(s) with non-numeric values: "
                        f"{', '.join(bad_columns[MAX_COLUMNS_LISTED:])}")
    if problems:
        raise BatchFileError(problems, bad_columns[0])
    return pd.DataFrame(columns, columns=list(MODEL_FEATURES))


def score_batch(frame: pd.DataFrame, model: str | None = None) -> list[dict[str, Any]]:
    """Score and save a validated batch atomically with ``source="batch"``; return the stored rows."""
    rows = score_and_save(frame, model=model, source="batch")
    log.info("batch of %d transactions scored with %r and saved (ids %s..%s)", len(rows),
             rows[0]["model"] if rows else model, rows[0]["id"] if rows else "-", rows[-1]["id"] if rows else "-")
    return rows


def score_batch_csv(data: bytes | str, model: str | None = None) -> list[dict[str, Any]]:
    """Parse, validate, score and save an uploaded CSV (all rows or none); return the stored rows.

    Raises
    ------
    BatchFileError : the file is invalid (nothing is saved).
    fraud_app.inference.NoModelError, fraud_app.models.ModelNotFoundError : no such model.
    """
    return score_batch(parse_batch_csv(data), model=model)


def predictions_frame(rows: Sequence[dict[str, Any]], features: Sequence[str] = MODEL_FEATURES) -> pd.DataFrame:
    """Stored prediction rows as a flat frame: :data:`RESULT_COLUMNS`, then ``features``.

    ``is_fraud`` is 0/1; the model inputs come out of each row's ``features`` mapping.
    """
    features = list(features)
    records = []
    for row in rows:
        record = {name: row.get(name) for name in RESULT_COLUMNS}
        record["is_fraud"] = int(bool(row.get("is_fraud")))
        stored = row.get("features") or {}
        record.update({name: stored.get(name) for name in features})
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[*RESULT_COLUMNS, *features])
    # The same dtypes with or without rows, so an empty table has the schema of a full one.
    types = {"id": "int64", "is_fraud": "int8", "created_at": "str", "source": "str", "model": "str",
             "model_version": "str", "fraud_probability": "float64", "threshold": "float64"}
    types.update({name: "float64" for name in features})
    return frame.astype(types)


def results_to_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """Stored prediction rows as CSV bytes (UTF-8): :data:`RESULT_COLUMNS` then the 29 inputs."""
    return predictions_frame(rows).to_csv(index=False).encode("utf-8")


__all__ = [
    "MAX_BATCH_BYTES", "MAX_BATCH_ROWS", "OPTIONAL_COLUMNS", "RESULT_COLUMNS", "BatchFileError",
    "parse_batch_csv", "predictions_frame", "results_to_csv", "score_batch", "score_batch_csv",
]
