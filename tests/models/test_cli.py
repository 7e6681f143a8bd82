"""The ``train`` and ``evaluate`` commands, in process, on the synthetic data."""

from __future__ import annotations

import json

import pytest

from fraud_app.cli import main
from fraud_app.models import load_model, model_exists


def test_train_prints_a_metrics_table_and_saves(capsys):
    assert main(["train", "--model", "decision_tree", "--name", "cli_tree", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for label in ("F1", "precision", "recall", "PR-AUC", "ROC-AUC", "threshold", "saved as 'cli_tree'"):
        assert label in out
    model = load_model("cli_tree")
    assert model.kind == "decision_tree" and model.metrics["seed"] == 3
    f1_line = next(line for line in out.splitlines() if line.startswith("F1"))
    assert float(f1_line.split()[-1]) == pytest.approx(model.metrics["f1"], abs=1e-4)


def test_train_json_no_save_with_params(capsys):
    code = main(["train", "--model", "lightgbm", "--no-save", "--json", "--param", "n_estimators=30",
                 "--param", "n_jobs=1"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "lightgbm" and data["saved"] is False
    assert data["params"]["n_estimators"] == 30
    assert 0 <= data["metrics"]["f1"] <= 1


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "svm", "--name", "x"], "unknown model kind 'svm'"),
    (["train", "--model", "lightgbm", "--name", "../x"], "invalid model name"),
    (["train", "--model", "lightgbm"], "--name is required"),
    (["train", "--model", "lightgbm", "--name", "ok", "--param", "num_leafs=3"], "num_leafs"),
])
def test_train_bad_input_is_one_clear_line_and_exit_1(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not model_exists("x") and not model_exists("ok")


def test_train_refuses_to_overwrite_without_the_flag(capsys):
    assert main(["train", "--model", "decision_tree", "--name", "twice"]) == 0
    version = load_model("twice").version
    assert main(["train", "--model", "decision_tree", "--name", "twice"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert load_model("twice").version == version
    assert main(["train", "--model", "decision_tree", "--name", "twice", "--overwrite"]) == 0
    assert load_model("twice").version != version


def test_evaluate_runs_the_benchmark_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["evaluate", "--seeds", "0-1", "--models", "decision_tree", "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| decision_tree |" in text
    report = json.loads(out.read_text())
    assert report["seeds"] == [0, 1] and len(report["runs"]) == 2
    assert set(report["summary"]["decision_tree"]) >= {"f1", "precision", "recall", "pr_auc", "fit_seconds"}
    assert main(["evaluate", "--models", "svm"]) == 1
    assert main(["evaluate", "--seeds", "a-b"]) == 1
