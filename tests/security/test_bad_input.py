"""Issue #10, items 9-13: bad input gets a 400 naming the problem, never a 500, never silently stored."""

from __future__ import annotations

import json

import pytest

from fraud_app.data import MODEL_FEATURES
from tests.security.conftest import error_of

pytestmark = pytest.mark.slow


def _post(server, body):
    return server.call("POST", "/api/predictions", body if isinstance(body, (bytes, str)) else json.dumps(body))


def test_9_values_beyond_float32_are_refused_naming_the_field(locked, sample_rows):
    before = locked.count()
    for field, value in [("feature14", 4.3e39), ("feature2", -1.79e308), ("amount", 3.5e38)]:
        resp = _post(locked, {**sample_rows[0], field: value})
        error = error_of(resp)
        assert resp.status == 400 and error["field"] == field, resp.body
        assert "range" in error["message"]
    batch = _post(locked, {"transactions": [sample_rows[0], {**sample_rows[1], "feature3": 1e300}]})
    assert batch.status == 400 and error_of(batch)["field"] == "transactions[1].feature3"
    limit = float(__import__("numpy").finfo("float32").max)
    assert _post(locked, {**sample_rows[0], "feature14": limit}).status == 201  # the edge itself is fine
    document = locked.call("GET", "/api/openapi.json").json
    feature = document["components"]["schemas"]["Transaction"]["properties"]["feature14"]
    assert feature["maximum"] == limit and feature["minimum"] == -limit
    assert locked.count() == before + 1


@pytest.mark.parametrize("query", ["limit=--5", "offset=--0", "limit=+-1", "limit=5-", "offset=0x10",
                                   "limit=%D9%A1%D9%A2", "limit=9" * 30, "offset=-", "limit="])
def test_10_malformed_integers_are_400(locked, query):
    resp = locked.call("GET", f"/api/predictions?{query}")
    name = query.split("=")[0]
    assert resp.status == 400, (query, resp.body)
    assert error_of(resp)["field"] == name


def test_11_duplicate_json_keys_are_refused_naming_the_key(locked, sample_rows):
    before = locked.count()
    body = json.dumps(sample_rows[0])[:-1] + ', "feature7": 1.0}'
    resp = _post(locked, body)
    error = error_of(resp)
    assert resp.status == 400 and error["field"] == "feature7" and "twice" in error["message"]
    nested = json.dumps({"transactions": [sample_rows[0]]})[:-1] + ', "transactions": []}'
    assert error_of(_post(locked, nested))["field"] == "transactions"
    assert locked.count() == before


def test_12_a_negative_amount_is_refused_everywhere(locked, sample_rows, app_env, fitted_tree):
    before = locked.count()
    resp = _post(locked, {**sample_rows[0], "amount": -0.01})
    error = error_of(resp)
    assert resp.status == 400 and error["field"] == "amount" and "0 or more" in error["message"]
    batch = _post(locked, {"transactions": [sample_rows[0], {**sample_rows[1], "amount": -5}]})
    assert error_of(batch)["field"] == "transactions[1].amount"
    assert _post(locked, {**sample_rows[0], "amount": 0}).status == 201  # a zero amount is a real payment
    assert locked.count() == before + 1
    schema = locked.call("GET", "/api/openapi.json").json["components"]["schemas"]["Transaction"]
    assert schema["properties"]["amount"]["minimum"] == 0

    # the same rule in the UI's and the CSV batch's path (the shared core)
    from fraud_app import storage
    from fraud_app.inference import PredictionInputError, score_and_save
    from fraud_app.inference.batch import BatchFileError, score_batch_csv

    fitted_tree.save("tree", overwrite=True)
    with pytest.raises(PredictionInputError, match="amount must be 0 or more") as caught:
        score_and_save({**sample_rows[0], "amount": -1.0}, source="ui")
    assert caught.value.field == "amount"
    header = ",".join(MODEL_FEATURES)
    rows = [",".join(str(sample_rows[i][c]) for c in MODEL_FEATURES) for i in range(3)]
    rows[1] = ",".join(str(sample_rows[1][c]) if c != "amount" else "-3.5" for c in MODEL_FEATURES)
    with pytest.raises(BatchFileError, match=r"column amount is out of range in row 2 \('-3.5'\)") as caught:
        score_batch_csv("\n".join([header, *rows]) + "\n")
    assert caught.value.field == "amount"
    assert storage.count_predictions() == 0


def test_13_a_huge_integer_names_the_real_cause(locked, sample_rows):
    body = json.dumps(sample_rows[0])[:-1] + ', "feature9": ' + "9" * 5000 + "}"
    body = body.replace(f'"feature9": {json.dumps(sample_rows[0]["feature9"])}, ', "", 1)
    resp = _post(locked, body)
    error = error_of(resp)
    assert resp.status == 400 and error["field"] == "body"
    assert "too many digits" in error["message"] and "nested" not in error["message"]
    deep = _post(locked, "[" * 100_000 + "]" * 100_000)
    assert deep.status == 400 and "nested too deeply" in error_of(deep)["message"]
