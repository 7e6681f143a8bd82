"""Issue #10, items 14-15: one model that cannot be loaded never breaks the others."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import stop_app
from tests.security.conftest import error_of, save_tree, start_server

pytestmark = pytest.mark.slow


def test_14_a_folder_linking_outside_is_listed_as_invalid_and_skipped(tmp_path, fitted_tree, sample_rows):
    server = start_server(tmp_path / "home", fitted_tree, None)
    try:
        models = server.home / "output" / "models"
        outside = tmp_path / "elsewhere" / "evil"
        outside.parent.mkdir()
        shutil.copytree(models / "tree", outside)
        os.symlink(outside, models / "zz_link")
        listing = server.call("GET", "/api/models")
        assert listing.status == 200, listing.body
        assert [m["name"] for m in listing.json["models"]] == ["tree"]
        (invalid,) = listing.json["invalid"]
        assert invalid["name"] == "zz_link" and "outside the models folder" in invalid["reason"]
        created = server.call("POST", "/api/predictions", sample_rows[0])
        assert created.status == 201 and created.json["model"] == "tree"
        named = server.call("POST", "/api/predictions", {**sample_rows[0], "model": "zz_link"})
        assert named.status == 400 and error_of(named)["field"] == "model"
        assert server.client.settled_health()["model"]["name"] == "tree"
        for _ in range(3):
            server.call("GET", "/api/models")
        assert server.log().count("zz_link cannot be used") == 1
    finally:
        stop_app(server.app)


def test_15_an_unloadable_model_is_a_json_error_naming_it_warned_once(tmp_path, fitted_tree, sample_rows):
    server = start_server(tmp_path / "home", fitted_tree, None)
    try:
        save_tree(fitted_tree, server.env, "broken")
        folder = server.home / "output" / "models" / "broken"
        model_file = next(p for p in folder.iterdir() if p.name != "metadata.json")
        model_file.write_bytes(model_file.read_bytes()[:-10] + b"tampered!!")
        for _ in range(4):
            resp = server.call("POST", "/api/predictions", {**sample_rows[0], "model": "broken"})
            error = error_of(resp)
            assert resp.status == 503 and error["field"] == "model", resp.body
            assert "'broken' cannot be loaded" in error["message"] and "checksum" in error["message"]
        assert server.call("POST", "/api/predictions", {**sample_rows[0], "model": "tree"}).status == 201
        log = server.log()
        assert log.count("cannot be used: model 'broken'") == 1, log[-3000:]
    finally:
        stop_app(server.app)
