"""Batch scoring of an uploaded CSV file (no Panel).

The CSV format
--------------
* A header row, then one transaction per row. UTF-8 (a byte-order mark is fine). The delimiter
  is sniffed from the header row: comma, semicolon (European spreadsheet exports, where a decimal
  comma such as ``-1,3598`` is read as ``-1.3598``), tab or ``|``.
* Required columns: the 29 model inputs ``feature1`` ... ``feature28`` and ``amount``, in any order.
  The Kaggle names (``V1`` ... ``V28``, ``Amount``) are accepted too and mapped.
* Optional columns, accepted and **ignored**: ``time`` and ``is_fraud`` (Kaggle ``Time`` and
  ``Class``), so that a slice of the data set itself can be uploaded as is. The label is not
  used for scoring and not stored.
* Any other column is refused, as are duplicated columns, empty or non-numeric cells
  (``NaN``/``inf`` included), a negative ``amount``, a value beyond the float32 range the
  models compute in, an empty file, and more than :data:`MAX_BATCH_ROWS` rows.

Every problem is reported in one pass in a :class:`BatchFileError`: header problems *and* bad
cells, naming the columns and the row numbers (row 1 is the first transaction below the header;
blank lines are skipped), at most :data:`MAX_PROBLEMS_LISTED` of them with the total count.
:func:`template_csv` gives a file to start from. Nothing is saved unless the whole file is valid; a valid file is scored and
saved in one database transaction by :func:`fraud_app.inference.score_and_save` with
``source="batch"``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
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
#: How many problems one error lists (the total is counted on top).
MAX_PROBLEMS_LISTED = 12
#: Delimiters the header row is sniffed for, with the name a message uses.
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
#: Longest column name quoted in a message.
MAX_NAME_SHOWN = 40
#: Columns of :func:`predictions_frame` before the model inputs.
RESULT_COLUMNS: tuple[str, ...] = ("id", "created_at", "source", "model", "model_version",
                                   "fraud_probability", "threshold", "is_fraud")


class BatchFileError(PredictionInputError):
    """An uploaded batch file is invalid.

    Attributes
    ----------
    problems : the problems listed (at most :data:`MAX_PROBLEMS_LISTED`).
    total : how many problems were found in all (``>= len(problems)``).
    bad_cells : how many cells are empty or not a finite number.
    field : the first offending column (or ``"file"`` for a problem with the file as a whole).

    The message joins the listed problems and says how many more there are.
    """

    def __init__(self, problems: Sequence[str], field: str | None = "file", *, total: int | None = None,
                 bad_cells: int = 0) -> None:
        self.total = max(len(problems), total or 0)
        self.problems: tuple[str, ...] = tuple(problems[:MAX_PROBLEMS_LISTED])
        self.bad_cells = int(bad_cells)
        hidden = self.total - len(self.problems)
        text = "; ".join(self.problems) + (f"; and {hidden} more problem{'s' if hidden > 1 else ''}" if hidden else "")
        super().__init__(text, field)


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


def sniff_delimiter(text: str) -> str:
    """The delimiter of the header row: the one of :data:`DELIMITERS` that splits it into most fields.

    A tie (a one-column header) means a comma.
    """
    first = next((line for line in text.splitlines() if line.strip()), "")
    best, fields = ",", 1
    for delimiter in DELIMITERS:
        try:
            count = len(next(csv.reader([first], delimiter=delimiter)))
        except (csv.Error, StopIteration):
            continue
        if count > fields:
            best, fields = delimiter, count
    return best


def _records(text: str, delimiter: str = ",") -> list[list[str]]:
    """The CSV's non-blank records (cells stripped)."""
    try:
        return [[cell.strip() for cell in record]
                for record in csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
                if any(cell.strip() for cell in record)]
    except csv.Error as exc:
        raise BatchFileError([f"the file is not a well-formed CSV: {exc}"]) from None


def _shown(name: str) -> str:
    return name if len(name) <= MAX_NAME_SHOWN else name[: MAX_NAME_SHOWN - 1] + "…"


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
        hint = ""
        for delimiter, word in DELIMITERS.items():
            if delimiter != "," and any(delimiter in name for name in unknown):
                hint = f"; this looks like a {word}-separated file with a header that does not match"
                break
        problems.append(f"unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(map(_shown, unknown))} "
                        f"(expected feature1..feature28 and amount; time and is_fraud are optional and ignored{hint})")
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
        :data:`~fraud_app.data.MODEL_FEATURES` (float64) and a 0-based ``RangeIndex``;
        ``frame.attrs["delimiter"]`` is the delimiter the file was read with.

    Raises
    ------
    BatchFileError
        listing every problem in one pass: missing, unknown or duplicated columns, too many
        rows, rows with a different number of fields, and empty or non-numeric cells (with the
        column and the row numbers) of every column that could be identified. A file that
        cannot be read at all (too big, not UTF-8, malformed, empty) is refused with that one
        problem.
    """
    data = b"" if data is None else data
    size = len(data.encode()) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise BatchFileError([f"the file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB "
                              f"({max_rows:,} transactions)"])
    text = _decode(data)
    delimiter = sniff_delimiter(text)
    records = _records(text, delimiter)
    if not records:
        raise BatchFileError(["the file is empty: expected a header row with feature1..feature28 and amount, "
                              "then one transaction per row"])
    header, body = records[0], records[1:]
    problems, mapping, culprit = _check_header(header)
    culprits = [] if culprit == "file" else [culprit]
    if not body:
        problems.append("the file has a header but no transactions")
        culprits.append("transactions")
    if len(body) > max_rows:
        problems.append(f"the file holds {len(body):,} transactions; the limit is {max_rows:,} per file")
        culprits.append("transactions")
    ragged = [i + 1 for i, record in enumerate(body) if len(record) != len(header)]
    if ragged:
        problems.append(f"{_rows_text(ragged)} {'has' if len(ragged) == 1 else 'have'} a different number "
                        f"of fields than the header ({len(header)})")
        culprits.append("transactions")
    # Cells are checked in the same pass, in every model input the header names (first occurrence).
    position: dict[str, int] = {}
    for i, name in enumerate(header):
        position.setdefault(mapping[name], i)
    even = [record for record in body if len(record) == len(header)]
    rows = [i + 1 for i, record in enumerate(body) if len(record) == len(header)]
    columns: dict[str, np.ndarray] = {}
    bad_columns: list[str] = []
    bad_cells = 0
    cell_problems: list[str] = []
    for column in MODEL_FEATURES:
        if column not in position:
            continue
        j = position[column]
        cells = pd.Series([record[j] for record in even], dtype=str)
        if delimiter != ",":  # a decimal comma (European exports): -1,3598 is -1.3598
            decimal_comma = cells.str.fullmatch(r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?")
            cells = cells.where(~decimal_comma, cells.str.replace(",", ".", regex=False))
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            bad_columns.append(column)
            bad_cells += int(bad.sum())
            positions = np.flatnonzero(bad)
            values = [str(cells.iat[int(p)]) for p in positions[:MAX_ROWS_LISTED]]
            cell_problems.append(f"column {column} has non-numeric value(s) in "
                                 f"{_rows_text([rows[int(p)] for p in positions], values)}")
        else:
            low, high = feature_bounds(column)
            out = (numbers < low) | (numbers > high)
            if out.any():
                bad_columns.append(column)
                bad_cells += int(out.sum())
                positions = np.flatnonzero(out)
                values = [str(cells.iat[int(p)]) for p in positions[:MAX_ROWS_LISTED]]
                rule = (f"amounts must be {MIN_AMOUNT:g} or more (refunds and reversals are not scored)"
                        if column == "amount" and (numbers < low).any()
                        else f"values must lie within +/-{FEATURE_LIMIT!r}")
                cell_problems.append(f"column {column} is out of range in "
                                     f"{_rows_text([rows[int(p)] for p in positions], values)}: {rule}")
        columns[column] = numbers
    if cell_problems:
        culprits.append(bad_columns[0])
        if len(cell_problems) > MAX_COLUMNS_LISTED:
            rest = bad_columns[MAX_COLUMNS_LISTED:]
            cell_problems = [*cell_problems[:MAX_COLUMNS_LISTED],
                             f"and {len(rest)} more column(s) with bad values: {', '.join(rest)}"]
        problems.extend(cell_problems)
    if problems:
        total = len(problems) - (1 if len(bad_columns) > MAX_COLUMNS_LISTED else 0) \
            + max(0, len(bad_columns) - MAX_COLUMNS_LISTED)
        raise BatchFileError(problems, culprits[0] if culprits else "file", total=total, bad_cells=bad_cells)
    frame = pd.DataFrame(columns, columns=list(MODEL_FEATURES))
    frame.attrs["delimiter"] = delimiter
    return frame


def template_csv(example: Mapping[str, float] | None = None) -> bytes:
    """A CSV to start a batch from: the header of the 29 model inputs and one example row.

    ``example`` gives the row's values (e.g. the reference transaction); default: all zeros.
    """
    values = [float((example or {}).get(name, 0.0)) for name in MODEL_FEATURES]
    lines = [",".join(MODEL_FEATURES), ",".join(repr(v) for v in values)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def rank_by_risk(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scored rows, highest P(fraud) first (ties keep their order)."""
    return sorted(rows, key=lambda row: -float(row["fraud_probability"]))


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
    "DELIMITERS", "MAX_BATCH_BYTES", "MAX_BATCH_ROWS", "MAX_PROBLEMS_LISTED", "OPTIONAL_COLUMNS", "RESULT_COLUMNS",
    "BatchFileError", "parse_batch_csv", "predictions_frame", "rank_by_risk", "results_to_csv", "score_batch",
    "score_batch_csv", "sniff_delimiter", "template_csv",
]
