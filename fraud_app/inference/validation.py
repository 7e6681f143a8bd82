"""Validation of prediction requests: every error names the field at fault."""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

from fraud_app.data import MODEL_FEATURES

#: The most transactions one request may score.
MAX_BATCH = 10_000
#: The largest magnitude a model input may have: the models compute in float32 (scikit-learn's
#: trees cast to it), so a finite float64 beyond this would overflow to inf inside the model.
FEATURE_LIMIT = float(np.finfo(np.float32).max)
#: The smallest accepted ``amount``: a card payment is never negative (a refund or reversal is
#: another kind of record, which these models were not trained on).
MIN_AMOUNT = 0.0

_FEATURE_SET = frozenset(MODEL_FEATURES)
_N_FEATURES = len(MODEL_FEATURES)
_FEATURE_INDEX = {name: i for i, name in enumerate(MODEL_FEATURES)}
_AMOUNT_INDEX = _FEATURE_INDEX["amount"]
#: A clean row's 29 inputs, in MODEL_FEATURES order.
_INPUTS = operator.itemgetter(*MODEL_FEATURES)
#: The types a decoded JSON number has (``bool`` is a subclass of ``int`` but not one of these).
_NUMBER_TYPES = frozenset({float, int})


def feature_bounds(name: str) -> tuple[float, float]:
    """The accepted ``(minimum, maximum)`` of one model input (both inclusive)."""
    return (MIN_AMOUNT if name == "amount" else -FEATURE_LIMIT), FEATURE_LIMIT


def check_value(name: str, number: float, where: str = "") -> None:
    """Raise :class:`PredictionInputError` unless ``number`` is an accepted value of input ``name``."""
    if not math.isfinite(number):
        raise PredictionInputError(f"{where}{name} must be a finite number, got {number!r}", f"{where}{name}")
    low, high = feature_bounds(name)
    if not low <= number <= high:
        if name == "amount" and number < MIN_AMOUNT:
            raise PredictionInputError(
                f"{where}amount must be 0 or more (a card payment in euros), got {number!r}; refunds and "
                "reversals are not scored", f"{where}amount")
        raise PredictionInputError(
            f"{where}{name} is out of range: {number!r}; model inputs must lie within +/-{FEATURE_LIMIT!r} "
            "(the float32 range the models compute in)", f"{where}{name}")


class PredictionInputError(ValueError):
    """A prediction request is malformed; ``field`` names the offending field (or None)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def message(self) -> str:
        return str(self.args[0])


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def _prefix(index: int | None) -> str:
    return "" if index is None else f"transactions[{index}]."


def row_to_array(row: Any, out: np.ndarray, index: int | None = None, *, allow_model_key: bool = False) -> None:
    """Check one transaction and write its 29 inputs, in MODEL_FEATURES order, into ``out``.

    Raises
    ------
    PredictionInputError
        for a non-object, a missing or unknown key, or a value that is not a finite number
        (strings, booleans, null, NaN and inf are refused).
    """
    if type(row) is dict and len(row) == _N_FEATURES:  # fast path: a clean JSON object
        try:
            values = [row[name] for name in MODEL_FEATURES]
        except KeyError:
            values = None
        if values is not None and all(t is float or t is int for t in map(type, values)):
            try:
                out[:] = values
            except OverflowError:
                pass
            else:
                # any NaN/inf, a value beyond float32 or a negative amount takes the slow path
                if math.isfinite(sum(values)) and out[_AMOUNT_INDEX] >= MIN_AMOUNT \
                        and float(np.abs(out).max()) <= FEATURE_LIMIT:
                    return
    where = _prefix(index)
    if not isinstance(row, Mapping):
        name = f"transactions[{index}]" if index is not None else "body"
        raise PredictionInputError(f"{name} must be a JSON object with the 29 model inputs, got {_describe(row)}",
                                   name)
    keys = row.keys()
    if len(keys) != len(_FEATURE_SET) or not _FEATURE_SET.issuperset(keys):
        unknown = [str(k) for k in keys if k not in _FEATURE_SET and not (allow_model_key and k == "model")]
        if unknown:
            raise PredictionInputError(
                f"unknown field {where}{unknown[0]}; expected exactly the 29 model inputs "
                f"feature1..feature28 and amount", f"{where}{unknown[0]}")
        missing = [name for name in MODEL_FEATURES if name not in row]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise PredictionInputError(f"missing field {where}{missing[0]}{more}", f"{where}{missing[0]}")
    for name, value in row.items():
        position = _FEATURE_INDEX.get(name)
        if position is None:  # the allowed "model" key
            continue
        if type(value) is float:
            number = value
        elif type(value) is int:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        elif isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        else:
            raise PredictionInputError(f"{where}{name} must be a number, got {_describe(value)}", f"{where}{name}")
        if not math.isfinite(number):
            raise PredictionInputError(f"{where}{name} must be a finite number, got {value!r}", f"{where}{name}")
        check_value(name, number, where)
        out[position] = number


def transactions_to_array(transactions: Sequence[Any], *, field: str = "transactions",
                          batch: bool = True) -> np.ndarray:
    """Validate a list of transactions into an ``(n, 29)`` float64 array."""
    if isinstance(transactions, (str, bytes)) or not isinstance(transactions, Sequence):
        raise PredictionInputError(f"{field} must be an array of transactions, got {_describe(transactions)}", field)
    n = len(transactions)
    if n == 0:
        raise PredictionInputError(f"{field} must hold at least one transaction", field)
    if n > MAX_BATCH:
        raise PredictionInputError(f"{field} holds {n:,} transactions; the limit is {MAX_BATCH:,} per request",
                                   field)
    fast = _clean_batch(transactions)
    if fast is not None:
        return fast
    values = np.empty((n, len(MODEL_FEATURES)), dtype=np.float64)
    for i, row in enumerate(transactions):
        row_to_array(row, values[i], i if batch else None)
    return values


def _clean_batch(transactions: Sequence[Any]) -> np.ndarray | None:
    """The ``(n, 29)`` array of a batch whose every row is clean, checked column-wise in NumPy; None
    when any row needs the row-by-row path (which names the first problem)."""
    if not all(type(row) is dict and len(row) == _N_FEATURES for row in transactions):
        return None
    try:
        matrix = list(map(_INPUTS, transactions))
    except KeyError:
        return None
    if not _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(matrix))):
        return None
    try:
        values = np.array(matrix, dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    if not np.isfinite(values).all() or not (values[:, _AMOUNT_INDEX] >= MIN_AMOUNT).all() \
            or float(np.abs(values).max()) > FEATURE_LIMIT:
        return None
    return values


def parse_request(payload: Any) -> tuple[np.ndarray, str | None, bool]:
    """Read an API request body (already JSON-decoded).

    Two shapes are accepted: one flat transaction with the 29 inputs and an optional
    ``"model"``, or a batch ``{"model"?: name, "transactions": [{...}, ...]}``.

    Returns
    -------
    (values, model, is_batch)
    """
    if not isinstance(payload, Mapping):
        raise PredictionInputError(f"the request body must be a JSON object, got {_describe(payload)}", "body")
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise PredictionInputError(f"model must be a string (a saved model's name), got {_describe(model)}",
                                   "model")
    if "model" in payload and model is None:
        raise PredictionInputError("model must be a string (a saved model's name), got null", "model")
    if "transactions" in payload:
        extra = [str(k) for k in payload if k not in ("model", "transactions")]
        if extra:
            raise PredictionInputError(f"unknown field {extra[0]}: a batch holds only 'model' and 'transactions'",
                                       extra[0])
        return transactions_to_array(payload["transactions"]), model, True
    values = np.empty((1, len(MODEL_FEATURES)), dtype=np.float64)
    row_to_array(payload, values[0], None, allow_model_key=True)
    return values, model, False


def request_schemas(ref_prefix: str = "#/components/schemas/") -> dict[str, Any]:
    """JSON Schemas of the request bodies :func:`parse_request` accepts, generated from the same
    declarations it validates with (``MODEL_FEATURES``, :func:`feature_bounds`, ``MAX_BATCH`` and the
    model-name pattern), for the OpenAPI document: ``Transaction``, ``SingleRequest``,
    ``BatchRequest`` and ``PredictionRequest`` (one of the two)."""
    from fraud_app.models.store import NAME_PATTERN

    def number(name: str) -> dict[str, Any]:
        low, high = feature_bounds(name)
        text = ("the amount in euros, 0 or more" if name == "amount"
                else "a finite number within the float32 range")
        return {"type": "number", "minimum": low, "maximum": high,
                "description": f"{text} (no strings, booleans, null, NaN or inf)"}

    inputs = {name: number(name) for name in MODEL_FEATURES}
    model_name = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$",
                  "description": "a saved model's name; default: the active model"}
    return {
        "Transaction": {"type": "object", "additionalProperties": False, "required": list(MODEL_FEATURES),
                        "properties": inputs},
        "SingleRequest": {"type": "object", "additionalProperties": False, "required": list(MODEL_FEATURES),
                          "properties": {**inputs, "model": model_name}},
        "BatchRequest": {"type": "object", "additionalProperties": False, "required": ["transactions"],
                         "properties": {"model": model_name, "transactions": {
                             "type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                             "items": {"$ref": f"{ref_prefix}Transaction"}}}},
        "PredictionRequest": {"oneOf": [{"$ref": f"{ref_prefix}SingleRequest"},
                                        {"$ref": f"{ref_prefix}BatchRequest"}]},
    }
