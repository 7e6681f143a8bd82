"""The REST handlers, served in-process against a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from fraud_app import storage
from fraud_app.api.handlers import DOCS_ROUTES, FALLBACK_ROUTE, MAX_BODY_BYTES, ROUTE_TABLE, ROUTES, openapi_document
from fraud_app.data import MODEL_FEATURES
from tests.api.conftest import raw_request

pytestmark = pytest.mark.usefixtures("database")

#: What a successful POST returns for each row.
CREATED_KEYS = {"id", "created_at", "model", "model_version", "fraud_probability", "is_fraud", "threshold", "source"}


def assert_error(resp, status: int, field: str | None = None) -> dict:
    """The response is a JSON error of ``status`` shaped ``{"error": {"code", "message"}}``, no traceback."""
    assert resp.status == status, resp.body[:500]
    assert resp.headers["content-type"].startswith("application/json")
    if resp.body == b"":  # HEAD
        return {}
    payload = resp.json
    assert set(payload) == {"error"}
    error = payload["error"]
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "field"}
    text = resp.body.decode()
    assert "Traceback" not in text and 'File "' not in text
    if field is not None:
        assert error.get("field") == field, error
        assert field.split(".")[-1].split("[")[0] in error["message"], error
    return error


def test_single_prediction_roundtrip(api, saved_model, fitted_tree, sample_rows):
    resp = api.post("/api/predictions", sample_rows[0])
    assert resp.status == 201, resp.body
    created = resp.json
    assert set(created) == CREATED_KEYS
    assert created["source"] == "api" and created["model"] == "tree"
    assert resp.headers["location"] == f"/api/predictions/{created['id']}"
    import pandas as pd

    expected = fitted_tree.predict_proba(pd.DataFrame([sample_rows[0]])[MODEL_FEATURES])[0]
    assert created["fraud_probability"] == pytest.approx(expected, abs=1e-12)

    got = api.get(created["location"] if "location" in created else resp.headers["location"])
    assert got.status == 200
    assert got.json == {**created, "features": sample_rows[0], "label": None, "labeled_at": None, "labeled_by": None}
    assert storage.count_predictions() == 1


def test_batch_roundtrip_and_listing(api, saved_model, sample_rows):
    resp = api.post("/api/predictions", {"model": "tree", "transactions": sample_rows[:30]})
    assert resp.status == 201, resp.body
    body = resp.json
    assert body["count"] == 30 and body["model"] == "tree" and len(body["predictions"]) == 30
    ids = [p["id"] for p in body["predictions"]]
    assert ids == sorted(ids)
    assert any(p["is_fraud"] for p in body["predictions"])

    page = api.get("/api/predictions?limit=10&offset=5").json
    assert page["total"] == 30 and page["limit"] == 10 and page["offset"] == 5
    assert [p["id"] for p in page["predictions"]] == ids[::-1][5:15]
    assert page["predictions"][0]["features"] == sample_rows[24]
    default = api.get("/api/predictions").json
    assert default["limit"] == 50 and len(default["predictions"]) == 30


def test_health_and_models(api, saved_model):
    assert api.get("/api/health").status == 200
    health = api.settled_health()
    assert health["status"] == "ok" and health["model"]["name"] == "tree"
    models = api.get("/api/models").json
    assert models["active"] == "tree"
    assert [m["name"] for m in models["models"]] == ["tree"]
    assert {"kind", "version", "threshold", "metrics", "params"} <= set(models["models"][0])


def test_no_model_yet_is_503_and_writes_nothing(api, sample_rows):
    error = assert_error(api.post("/api/predictions", sample_rows[0]), 503)
    assert "train" in error["message"]
    assert api.get("/api/models").json == {"active": None, "models": [], "invalid": []}
    assert storage.count_predictions() == 0


def _body(kind, rows):
    """Build the raw body for one case of the table below (only that one: some are megabytes)."""
    good = rows[0]
    text = json.dumps(good)
    return {
        "not_json": lambda: b"{this is not json",
        "empty": lambda: b"",
        "array": lambda: b"[1, 2, 3]",
        "string": lambda: b'"hello"',
        "null": lambda: b"null",
        "number": lambda: b"42",
        "invalid_utf8": lambda: b'{"feature1": "\xff\xfe"}',
        "deeply_nested": lambda: b"[" * 100_000 + b"]" * 100_000,
        "missing": lambda: json.dumps({k: v for k, v in good.items() if k != "feature7"}),
        "unknown": lambda: json.dumps({**good, "feature29": 1.0}),
        "string_value": lambda: json.dumps({**good, "feature3": "1.5"}),
        "bool_value": lambda: json.dumps({**good, "amount": True}),
        "null_value": lambda: json.dumps({**good, "feature1": None}),
        "nan": lambda: text.replace(f'"feature2": {json.dumps(good["feature2"])}', '"feature2": NaN'),
        "inf": lambda: text.replace(f'"feature2": {json.dumps(good["feature2"])}', '"feature2": Infinity'),
        "minus_inf": lambda: text.replace(f'"amount": {json.dumps(good["amount"])}', '"amount": -Infinity'),
        "huge_int": lambda: text.replace(f'"amount": {json.dumps(good["amount"])}', '"amount": ' + "9" * 400),
        "object_value": lambda: json.dumps({**good, "feature4": {"v": 1}}),
        "list_value": lambda: json.dumps({**good, "feature5": [1.0]}),
        "unknown_model": lambda: json.dumps({**good, "model": "no_such_model"}),
        "bad_model_name": lambda: json.dumps({**good, "model": "../../etc/passwd"}),
        "model_not_string": lambda: json.dumps({**good, "model": 7}),
        "model_null": lambda: json.dumps({**good, "model": None}),
        "batch_empty": lambda: json.dumps({"transactions": []}),
        "batch_not_list": lambda: json.dumps({"transactions": {"a": 1}}),
        "batch_row_not_object": lambda: json.dumps({"transactions": [good, 5]}),
        "batch_bad_row": lambda: json.dumps({"transactions": [good, good, {**good, "feature5": "x"}, good]}),
        "batch_extra_key": lambda: json.dumps({"transactions": [good], "threshold": 0.1}),
        "batch_too_many": lambda: json.dumps({"transactions": [good] * 10_001}),
        "batch_unknown_model": lambda: json.dumps({"model": "nope", "transactions": [good, good]}),
    }[kind]()


BAD_POSTS = [
    # (case, status, field)
    ("not_json", 400, "body"),
    ("empty", 400, "body"),
    ("array", 400, "body"),
    ("string", 400, "body"),
    ("null", 400, "body"),
    ("number", 400, "body"),
    ("invalid_utf8", 400, "body"),
    ("deeply_nested", 400, "body"),
    ("missing", 400, "feature7"),
    ("unknown", 400, "feature29"),
    ("string_value", 400, "feature3"),
    ("bool_value", 400, "amount"),
    ("null_value", 400, "feature1"),
    ("nan", 400, "feature2"),
    ("inf", 400, "feature2"),
    ("minus_inf", 400, "amount"),
    ("huge_int", 400, "amount"),
    ("object_value", 400, "feature4"),
    ("list_value", 400, "feature5"),
    ("unknown_model", 404, "model"),
    ("bad_model_name", 400, "model"),
    ("model_not_string", 400, "model"),
    ("model_null", 400, "model"),
    ("batch_empty", 400, "transactions"),
    ("batch_not_list", 400, "transactions"),
    ("batch_row_not_object", 400, "transactions[1]"),
    ("batch_bad_row", 400, "transactions[2].feature5"),
    ("batch_extra_key", 400, "threshold"),
    ("batch_too_many", 400, "transactions"),
    ("batch_unknown_model", 404, "model"),
]

BAD_OTHER = [
    # (method, path, status, field)
    ("PUT", "/api/predictions", 405, None),
    ("DELETE", "/api/predictions", 405, None),
    ("PATCH", "/api/predictions/1", 405, None),
    ("POST", "/api/models", 405, None),
    ("POST", "/api/health", 405, None),
    ("DELETE", "/api/openapi.json", 405, None),
    ("HEAD", "/api/predictions", 405, None),
    ("GET", "/api/predictions?limit=abc", 400, "limit"),
    ("GET", "/api/predictions?limit=0", 400, "limit"),
    ("GET", "/api/predictions?limit=1001", 400, "limit"),
    ("GET", "/api/predictions?limit=-3", 400, "limit"),
    ("GET", "/api/predictions?limit=1.5", 400, "limit"),
    ("GET", "/api/predictions?offset=-1", 400, "offset"),
    ("GET", "/api/predictions?offset=x", 400, "offset"),
    ("GET", "/api/predictions?limit=1&limit=2", 400, "limit"),
    ("GET", "/api/predictions?limt=5", 400, "limt"),
    ("GET", "/api/predictions/abc", 400, "id"),
    ("GET", "/api/predictions/0", 400, "id"),
    ("GET", "/api/predictions/999999", 404, "id"),
    ("GET", "/api/no_such_route", 404, None),
    ("POST", "/api/predictions?model=tree", 400, "model"),
]


@pytest.mark.parametrize(("case", "status", "field"), BAD_POSTS, ids=[c[0] for c in BAD_POSTS])
def test_bad_post_is_rejected_and_writes_nothing(api, saved_model, sample_rows, case, status, field):
    seeded = api.post("/api/predictions", sample_rows[1])
    assert seeded.status == 201
    before = [p["id"] for p in storage.list_predictions(limit=1000)]

    assert_error(api.post("/api/predictions", _body(case, sample_rows)), status, field)

    assert [p["id"] for p in storage.list_predictions(limit=1000)] == before
    assert storage.count_predictions() == 1


@pytest.mark.parametrize(("method", "path", "status", "field"), BAD_OTHER, ids=[f"{m} {p}" for m, p, *_ in BAD_OTHER])
def test_bad_request_is_rejected_and_writes_nothing(api, saved_model, sample_rows, method, path, status, field):
    assert api.post("/api/predictions", sample_rows[1]).status == 201
    body = json.dumps(sample_rows[0]) if method in ("POST", "PUT", "PATCH") else None
    resp = api.call(method, path, body)
    assert_error(resp, status, field)
    if status == 405:
        assert resp.headers["allow"]
    assert storage.count_predictions() == 1


def test_a_declared_too_large_body_is_refused_before_it_is_sent(api, saved_model):
    status, _, body = raw_request(api, "POST", "/api/predictions", {"Content-Length": str(MAX_BODY_BYTES + 1),
                                                                    "Content-Type": "application/json"})
    assert status == 413 and json.loads(body)["error"]["field"] == "body"
    assert storage.count_predictions() == 0


def test_server_error_has_no_traceback_and_writes_nothing(api, saved_model, sample_rows, monkeypatch):
    from fraud_app.inference import service

    def broken(model, values):
        raise RuntimeError("secret internal detail /etc/shadow")

    monkeypatch.setattr(service, "_predict", broken)
    resp = api.post("/api/predictions", sample_rows[0])
    error = assert_error(resp, 500)
    assert "secret" not in resp.body.decode() and "RuntimeError" not in resp.body.decode()
    assert error["message"].startswith("internal server error")
    assert storage.count_predictions() == 0


def test_scoring_and_saving_run_off_the_event_loop(api, saved_model, sample_rows, monkeypatch):
    """A small body is decoded and queued from the event loop, a large one in a worker; either way the model
    scores and the database writes in an API worker thread, never on the loop."""
    from fraud_app.api import handlers
    from fraud_app.inference import service
    from fraud_app.storage import writer

    seen: dict[str, list[str]] = {"predict": [], "write": [], "worker_decode": []}
    real_predict, real_write, real_create = service._predict, writer.GroupWriter.write, handlers._create_predictions

    def predict(model, values):
        seen["predict"].append(threading.current_thread().name)
        return real_predict(model, values)

    def write(self, *args, **kwargs):
        seen["write"].append(threading.current_thread().name)
        return real_write(self, *args, **kwargs)

    def create(*args):
        seen["worker_decode"].append(threading.current_thread().name)
        return real_create(*args)

    monkeypatch.setattr(service, "_predict", predict)
    monkeypatch.setattr(writer.GroupWriter, "write", write)
    monkeypatch.setattr(handlers, "_create_predictions", create)
    # the first request may go through a worker (it imports the scoring modules off the loop)
    assert api.post("/api/predictions", sample_rows[0]).status == 201
    assert "fraud_app.inference.batching" in sys.modules
    for values in seen.values():
        values.clear()
    assert api.post("/api/predictions", sample_rows[1]).status == 201
    assert seen["worker_decode"] == [], "a one-row body is decoded on the loop and queued from there"
    big = {"transactions": sample_rows[:40]}
    assert len(json.dumps(big)) > handlers.INLINE_BODY_BYTES
    assert api.post("/api/predictions", big).status == 201
    assert [name[:9] for name in seen["worker_decode"]] == ["fraud-api"], "a large body is decoded in a worker"
    assert len(seen["predict"]) == len(seen["write"]) == 2
    assert all(name.startswith("fraud-api") for name in seen["predict"] + seen["write"]), seen


class TestToken:
    TOKEN = "s3cr3t-token-value"

    @pytest.fixture(autouse=True)
    def _token(self, monkeypatch):
        monkeypatch.setenv("FRAUD_APP_API_TOKEN", self.TOKEN)

    @pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}",
                                        f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"])
    def test_post_without_the_right_token_is_401(self, api, saved_model, sample_rows, header):
        headers = {} if header is None else {"Authorization": header}
        resp = api.post("/api/predictions", sample_rows[0], headers=headers)
        assert_error(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert storage.count_predictions() == 0

    def test_post_with_the_token_works_and_reads_need_it_too(self, api, saved_model, sample_rows):
        auth = {"Authorization": f"Bearer {self.TOKEN}"}
        resp = api.post("/api/predictions", sample_rows[0], headers=auth)
        assert resp.status == 201
        lower = api.post("/api/predictions", sample_rows[0], headers={"Authorization": f"bearer {self.TOKEN}"})
        assert lower.status == 201
        assert api.get("/api/predictions", headers=auth).json["total"] == 2
        assert api.get(f"/api/predictions/{resp.json['id']}", headers=auth).status == 200
        for path in ("/api/predictions", f"/api/predictions/{resp.json['id']}", "/api/models"):
            assert_error(api.get(path), 401)
        assert api.get("/api/health").json == {"status": "ok", "version": api.get("/api/health").json["version"]}

    def test_token_checked_before_the_body(self, api, saved_model):
        assert_error(api.post("/api/predictions", b"not json"), 401)


def test_many_concurrent_clients_lose_no_rows(api, saved_model, sample_rows):
    def worker(i):
        ids = []
        for j in range(15):
            resp = api.post("/api/predictions", sample_rows[(i + j) % len(sample_rows)])
            assert resp.status == 201, resp.body
            ids.append(resp.json["id"])
        return ids

    with ThreadPoolExecutor(16) as pool:
        returned = [i for ids in pool.map(worker, range(16)) for i in ids]
    assert len(returned) == len(set(returned)) == 240
    stored = {p["id"] for p in storage.list_predictions(limit=1000)}
    assert stored == set(returned)


def test_ui_and_api_write_the_same_row_shape(api, saved_model, sample_rows):
    from fraud_app.inference import score_and_save

    (from_ui,) = score_and_save(sample_rows[0], source="ui")
    resp = api.post("/api/predictions", sample_rows[0])
    from_api = storage.get_prediction(resp.json["id"])
    ui_row = storage.get_prediction(from_ui["id"])
    assert ui_row == from_ui
    assert set(ui_row) == set(from_api) == set(storage.PREDICTION_FIELDS)
    for key in storage.PREDICTION_FIELDS:
        assert type(ui_row[key]) is type(from_api[key]), key
    same = {k for k in ui_row if k not in ("id", "created_at", "source")}
    assert {k: ui_row[k] for k in same} == {k: from_api[k] for k in same}
    assert (ui_row["source"], from_api["source"]) == ("ui", "api")
    assert {k: from_api[k] for k in CREATED_KEYS} == resp.json


def test_openapi_documents_every_route_and_method(api):
    served = api.get("/api/openapi.json")
    assert served.status == 200
    document = served.json
    assert document == json.loads(json.dumps(openapi_document()))
    assert document["openapi"].startswith("3.")
    by_pattern = {route.pattern: route for route in ROUTE_TABLE}
    for pattern, handler, _ in ROUTES:
        if (pattern, handler, {}) == FALLBACK_ROUTE or any(pattern == docs[0] for docs in DOCS_ROUTES):
            continue
        route = by_pattern[pattern]
        assert route.path in document["paths"], f"{pattern} is not documented"
        documented = {m.upper() for m in document["paths"][route.path]}
        assert documented == set(handler.allowed_methods()), route.path
        for method, operation in document["paths"][route.path].items():
            assert operation["summary"] and "200" in operation["responses"] or "201" in operation["responses"]
            for status, response in operation["responses"].items():
                assert response["description"], (route.path, method, status)
    expected_paths = {"/api/health", "/api/models", "/api/predictions", "/api/predictions/{id}",
                      "/api/predictions/{id}/label", "/api/monitoring", "/api/openapi.json"}
    assert set(document["paths"]) == expected_paths
    post = document["paths"]["/api/predictions"]["post"]
    assert {"201", "400", "401", "404", "405", "413"} <= set(post["responses"])
    schema = document["components"]["schemas"]["Transaction"]
    assert schema["required"] == MODEL_FEATURES
