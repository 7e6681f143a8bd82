"""``PUT /api/predictions/<id>/label`` and ``GET /api/monitoring`` through the real handlers."""

from __future__ import annotations

import pytest


def _post_batch(api, rows, model="mon") -> list[dict]:
    resp = api.post("/api/predictions", {"model": model, "transactions": rows})
    assert resp.status == 201, resp.body
    return resp.json["predictions"]


def test_labels_through_rest_and_the_realized_precision(api, database, monitored_model, sample_rows,
                                                        monkeypatch):
    monkeypatch.setenv("FRAUD_APP_MONITOR_MIN_LABELS", "2")
    created = _post_batch(api, sample_rows)
    flagged = [row for row in created if row["is_fraud"]]
    assert len(flagged) >= 3
    ids = [row["id"] for row in flagged[:3]]

    resp = api.call("PUT", f"/api/predictions/{ids[0]}/label", {"label": "fraud"})
    assert resp.status == 200, resp.body
    row = resp.json
    assert row["id"] == ids[0] and row["label"] == "fraud" and row["labeled_by"] == "api"
    assert row["labeled_at"].endswith("Z") and set(row["features"]) == set(sample_rows[0])
    for prediction_id in ids[1:]:
        assert api.call("PUT", f"/api/predictions/{prediction_id}/label", {"label": "legitimate"}).status == 200
    assert api.get(f"/api/predictions/{ids[1]}").json["label"] == "legitimate"

    report = api.get("/api/monitoring").json
    assert report["model"] == "mon" and report["reference"] is True
    assert report["labels"] == {"fraud": 1, "legitimate": 2, "unlabeled": len(sample_rows) - 3}
    assert report["realized"]["precision"] == pytest.approx(1 / 3)
    assert report["realized"]["labeled"] == 3
    assert any(a["kind"] == "precision" and a["value"] == pytest.approx(1 / 3) for a in report["alerts"])
    assert sum(v["count"] for v in report["volume"]) == len(sample_rows)
    assert set(report["psi"]) == set(sample_rows[0])

    # clearing a label with null
    resp = api.call("PUT", f"/api/predictions/{ids[2]}/label", {"label": None})
    assert resp.status == 200 and resp.json["label"] is None and resp.json["labeled_at"] is None
    report = api.get("/api/monitoring?bucket=day").json
    assert report["realized"]["precision"] == pytest.approx(1 / 2)
    assert report["volume"][0]["bucket"].endswith("T00:00:00Z")


@pytest.mark.parametrize("body, field", [
    ({"label": "maybe"}, "label"), ({"label": 1}, "label"), ({"label": "Fraud"}, "label"),
    ({}, "label"), ({"label": "fraud", "by": "me"}, "by"), ([1], "body"), ("not json", "body"),
])
def test_a_bad_label_is_400_and_changes_nothing(api, database, monitored_model, sample_rows, body, field):
    prediction_id = _post_batch(api, sample_rows[:1])[0]["id"]
    resp = api.call("PUT", f"/api/predictions/{prediction_id}/label", body)
    assert resp.status == 400, resp.body
    assert resp.json["error"]["field"] == field
    assert api.get(f"/api/predictions/{prediction_id}").json["label"] is None


def test_unknown_ids_and_bad_ids(api, database, monitored_model):
    assert api.call("PUT", "/api/predictions/999999/label", {"label": "fraud"}).status == 404
    assert api.call("PUT", "/api/predictions/abc/label", {"label": "fraud"}).status == 400
    assert api.call("PUT", "/api/predictions/0/label", {"label": "fraud"}).status == 400
    resp = api.call("PUT", "/api/predictions/1/label", '{"label": "fraud"}', headers={"Content-Type": "text/plain"})
    assert resp.status == 415


def test_monitoring_query_errors(api, database, monitored_model):
    assert api.get("/api/monitoring?bucket=week").status == 400
    assert api.get("/api/monitoring?since=yesterday").json["error"]["field"] == "since"
    assert api.get("/api/monitoring?model=nope").status == 404
    assert api.get("/api/monitoring?model=../x").status == 400
    assert api.get("/api/monitoring?until=2026-01-01&since=2026-02-01").status == 400
    assert api.get("/api/monitoring?foo=1").status == 400
    resp = api.get("/api/monitoring?since=2026-01-01T00:00:00Z&until=2026-01-02")
    assert resp.status == 200 and resp.json["since"] == "2026-01-01T00:00:00Z" and resp.json["volume"] == []


def test_no_model_is_404(api, database):
    resp = api.get("/api/monitoring")
    assert resp.status == 404 and "train one first" in resp.json["error"]["message"]


def test_the_label_route_needs_the_token_and_is_documented(api, database, monitored_model, sample_rows,
                                                           monkeypatch):
    prediction_id = _post_batch(api, sample_rows[:1])[0]["id"]
    monkeypatch.setenv("FRAUD_APP_API_TOKEN", "s3cret-token-for-tests")
    assert api.call("PUT", f"/api/predictions/{prediction_id}/label", {"label": "fraud"}).status == 401
    assert api.get("/api/monitoring").status == 401
    auth = {"Authorization": "Bearer s3cret-token-for-tests"}
    resp = api.call("PUT", f"/api/predictions/{prediction_id}/label", {"label": "fraud"}, headers=auth)
    assert resp.status == 200 and resp.json["labeled_by"] == "api (token)"
    document = api.get("/api/openapi.json", headers=auth).json
    put = document["paths"]["/api/predictions/{id}/label"]["put"]
    assert set(put["responses"]) >= {"200", "400", "401", "404"}
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/LabelRequest"
    get = document["paths"]["/api/monitoring"]["get"]
    assert [p["name"] for p in get["parameters"]] == ["model", "since", "until", "bucket"]
    assert "MonitoringReport" in document["components"]["schemas"]
