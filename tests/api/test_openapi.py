"""The OpenAPI request schemas and the validation that answers requests agree (they cannot drift)."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from fraud_app.api.base import ERROR_TABLE, endpoint
from fraud_app.api.handlers import ROUTE_TABLE, APIHandler
from fraud_app.api.openapi import openapi_document
from fraud_app.data import MODEL_FEATURES
from fraud_app.inference import MAX_BATCH, PredictionInputError, parse_request


def _validator() -> jsonschema.Validator:
    document = openapi_document()
    schema = {"$ref": "#/components/schemas/PredictionRequest", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def _row(sample_rows, **changes):
    row = dict(sample_rows[0])
    row.update(changes)
    return row


def _cases(sample_rows):
    row = sample_rows[0]
    without = {k: v for k, v in row.items() if k != "feature7"}
    return {
        "single": row,
        "single with model": {**row, "model": "tree"},
        "batch": {"transactions": sample_rows[:3]},
        "batch with model": {"model": "lgbm_1", "transactions": sample_rows[:2]},
        "missing field": without,
        "unknown field": {**row, "feature29": 1.0},
        "string value": _row(sample_rows, feature3="1.0"),
        "boolean value": _row(sample_rows, feature3=True),
        "null value": _row(sample_rows, amount=None),
        "negative amount": _row(sample_rows, amount=-0.01),
        "beyond float32": _row(sample_rows, feature1=1e39),
        "model not a string": {**row, "model": 3},
        "model null": {**row, "model": None},
        "bad model name": {**row, "model": "../etc"},
        "empty batch": {"transactions": []},
        "batch with a bad row": {"transactions": [row, {**row, "feature2": "x"}]},
        "batch with an extra key": {"transactions": [row], "note": "hi"},
        "not an object": [row],
        "transactions not a list": {"transactions": row},
        "a number": 3,
    }


def _accepted_by_validation(payload) -> bool:
    from fraud_app.models import InvalidModelNameError, validate_model_name

    try:
        _, model, _ = parse_request(payload)
        if model is not None:
            validate_model_name(model)
    except (PredictionInputError, InvalidModelNameError):
        return False
    return True


def test_request_schemas_accept_exactly_what_validation_accepts(sample_rows):
    validator = _validator()
    for name, payload in _cases(sample_rows).items():
        assert validator.is_valid(payload) == _accepted_by_validation(payload), name


def test_batch_size_limit_is_the_same(sample_rows):
    schema = openapi_document()["components"]["schemas"]["BatchRequest"]
    assert schema["properties"]["transactions"]["maxItems"] == MAX_BATCH
    assert schema["properties"]["transactions"]["minItems"] == 1
    transaction = openapi_document()["components"]["schemas"]["Transaction"]
    assert transaction["required"] == list(MODEL_FEATURES)


def test_every_method_is_declared_with_the_preamble():
    """Each API method goes through @endpoint (refusal, unknown query, credential) exactly once."""
    for route in ROUTE_TABLE:
        for method in route.handler.allowed_methods():
            fn = getattr(route.handler, method.lower())
            assert hasattr(fn, "query_parameters"), f"{route.handler.__name__}.{method.lower()} lacks @endpoint"
    documented = {p["name"] for p in openapi_document()["paths"]["/api/predictions"]["get"]["parameters"]}
    assert set(ROUTE_TABLE[2].handler.get.query_parameters) == documented


def test_the_error_table_names_real_classes():
    import importlib

    for dotted, rule in ERROR_TABLE.items():
        module, _, name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, BaseException) and 400 <= rule.status < 600
        assert f"{cls.__module__}.{cls.__qualname__}" == dotted, "the table is matched on the defining module"


def test_adding_a_route_is_one_line(monkeypatch):
    """A handler defined elsewhere subclasses the base and is documented once appended to ROUTE_TABLE."""
    from fraud_app.api import handlers

    class PingHandler(APIHandler):
        openapi = {"get": {"summary": "ping", "responses": {"200": {"description": "pong", "schema": None}}}}

        @endpoint()
        async def get(self) -> None:
            self.write_json({"pong": True})

    table = copy.copy(handlers.ROUTE_TABLE)
    table.append(handlers.Route(r"/api/ping", PingHandler, "/api/ping"))
    monkeypatch.setattr(handlers, "ROUTE_TABLE", table)
    assert "/api/ping" in openapi_document()["paths"]


@pytest.mark.parametrize("payload", [b'{"a": 1, "a": 2}', b'{"feature1": 1, "x": {"b": 1, "b": 2}}',
                                     b'{"a": 1, "a" : 2}', b'{"t": [{"a": 1}, {"a": 1, "a": 1}]}',
                                     b'{"transactions":[{"a":1},{"a":1,"a":1}]}',
                                     b'{"transactions":[{"a":{"b":1,"b":2}}]}',
                                     b'{"transactions":[{"a":1}],"transactions":[{"a":1}]}',
                                     b'{"transactions":[{"a":1,"b":"x\\":"}],"a":1,"a":2}'])
def test_duplicate_keys_are_caught_on_the_fast_path(payload):
    from fraud_app.api.base import APIError
    from fraud_app.api.handlers import parse_json_body

    with pytest.raises(APIError) as caught:
        parse_json_body(payload)
    assert "twice" in caught.value.message


@pytest.mark.parametrize("spacing", [b" ", b"\n", b"\t", b"\r"])
def test_a_large_body_with_a_spaced_duplicate_key_is_caught(spacing):
    """Above 64 KB the quote-then-whitespace scan is vectorised: it must still catch a key written with
    whitespace before its colon (where the compact key count cannot see a duplicate), and pass a clean body."""
    from fraud_app.api.base import APIError
    from fraud_app.api.handlers import parse_json_body

    rows = [f'{{"a":{i},"b":{i}}}'.encode() for i in range(8000)]
    clean = b'{"transactions":[' + b",".join(rows) + b"]}"
    assert len(clean) > 64 * 1024
    assert len(parse_json_body(clean)["transactions"]) == 8000
    rows[4321] = b'{"a":1,"b"' + spacing + b':2,"b":3}'
    with pytest.raises(APIError) as caught:
        parse_json_body(b'{"transactions":[' + b",".join(rows) + b"]}")
    assert "twice" in caught.value.message and caught.value.field == "b"


@pytest.mark.parametrize("depth", [900, 1000, 1020, 5000])
def test_deep_nesting_is_a_400_on_either_path(depth):
    from fraud_app.api.base import APIError
    from fraud_app.api.handlers import parse_json_body

    body = b'{"x":' + b"[" * depth + b"]" * depth + b"}"  # valid JSON, nested deep
    try:
        payload = parse_json_body(body)  # decoded (later refused: "x" is no model input) ...
    except APIError as exc:  # ... or a 400 "nested too deeply", never a RecursionError (a 500)
        assert exc.status_code == 400 and "deeply" in exc.message
    else:
        assert set(payload) == {"x"}
