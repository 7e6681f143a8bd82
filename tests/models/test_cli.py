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
    assert main(["evaluate", "--seeds", "0-1", "--models", "decision_tree", "--split", "both", "--folds", "3",
                 "--json-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| decision_tree |" in text and "split: time" in text and "Brier" in text
    report = json.loads(out.read_text())
    assert report["seeds"] == [0, 1] and len(report["runs"]) == 2 and report["split"] == "random"
    assert report["time_split"]["split"] == "time" and len(report["time_split"]["runs"]) == 2
    assert report["threshold_method"] == "oof" and report["folds"] == 3
    run = report["runs"][0]
    assert run["brier"] is not None and sum(run["reliability"]["count"]) == run["n_test"]
    assert set(report["summary"]["decision_tree"]) >= {"f1", "precision", "recall", "pr_auc", "fit_seconds"}
    assert main(["evaluate", "--models", "svm"]) == 1
    assert main(["evaluate", "--seeds", "a-b"]) == 1


def test_train_with_a_time_split_and_out_of_fold_threshold(capsys):
    assert main(["train", "--model", "decision_tree", "--name", "timed", "--split", "time", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "time (earlier rows train, later rows test)" in out and "3-fold out-of-fold" in out
    assert "Brier" in out and "reliability" in out
    model = load_model("timed")
    assert model.metrics["split"] == "time" and model.fit_info["threshold_method"] == "oof"


def test_train_help_lists_every_declared_hyperparameter(capsys):
    from fraud_app.models import MODEL_KINDS, model_class

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for kind in MODEL_KINDS:
        for name in model_class(kind).Params.names():
            assert " ".join(model_class(kind).Params.describe(name).split()) in out


def test_models_activate_status_list_and_compare(capsys):
    assert main(["train", "--model", "decision_tree", "--name", "first", "--folds", "3"]) == 0
    assert main(["train", "--model", "decision_tree", "--name", "second", "--folds", "3",
                 "--param", "max_depth=3"]) == 0
    capsys.readouterr()
    assert main(["models", "status"]) == 0
    assert "first (pinned when it was saved" in capsys.readouterr().out
    assert main(["models", "activate", "second"]) == 0
    assert "second (made active explicitly)" in capsys.readouterr().out
    from fraud_app.models import get_active_model_name

    assert get_active_model_name() == "second"
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("* second") and lines[1].startswith("  first")
    assert main(["models", "compare", "first", "second"]) == 0
    out = capsys.readouterr().out
    assert "random split, seed 0" in out and "first" in out and "second" in out
    assert main(["models", "activate", "ghost"]) == 1
    assert "no saved model named 'ghost'" in capsys.readouterr().err
