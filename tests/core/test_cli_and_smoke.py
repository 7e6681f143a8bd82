"""The CLI's data commands and a smoke test of the real server."""

from __future__ import annotations

import json
import urllib.request

import pytest

from fraud_app import data as fdata
from fraud_app.cli import main


@pytest.fixture(autouse=True)
def _fresh_cache():
    fdata.clear_cache()
    yield
    fdata.clear_cache()


def test_data_info_reports_the_synthetic_set(capsys):
    assert main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert "rows         20,000" in out
    assert "frauds       200" in out
    assert "fraud rate   1.0000%" in out


def test_data_info_without_data_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("FRAUD_APP_DATASET", "real")
    assert main(["data", "info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: data set not found at ") and "data fetch" in err


def test_fetch_with_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "fetch", "--from", str(tmp_path / "missing.csv")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_real_server_serves_the_app_and_health(served_app):
    with urllib.request.urlopen(f"{served_app.url}/app", timeout=30) as resp:
        assert resp.status == 200
        assert b"Fraud Detection Studio" in resp.read()
    with urllib.request.urlopen(f"{served_app.url}/api/health", timeout=30) as resp:
        assert resp.status == 200
        payload = json.loads(resp.read())
    assert payload["status"] == "ok"
    assert payload["rows"] == 20_000
    assert payload["version"]
