"""Labeled predictions flow back into training: deduplicated, never into the test split, counted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import COLUMNS, MODEL_FEATURES, make_synthetic


def _store_and_label(model: str, frame: pd.DataFrame, label: str) -> list[int]:
    from fraud_app.inference import score_and_save
    from fraud_app.storage import set_label

    rows = score_and_save(frame[MODEL_FEATURES], model=model, source="ui")
    for row in rows:
        set_label(row["id"], label, "test")
    return [row["id"] for row in rows]


@pytest.fixture
def labeled(database, monitored_model, synthetic_frame):
    """Five labeled rows already in the data set, 12 new ones (one labeled twice: 11 distinct)."""
    from fraud_app.storage import set_label

    _store_and_label(monitored_model, synthetic_frame.iloc[:5], "fraud")  # duplicates of data-set rows
    new = make_synthetic(200, 0.1, 123).iloc[:11]
    ids = _store_and_label(monitored_model, new, "legitimate")
    again = _store_and_label(monitored_model, new.iloc[:1], "fraud")  # the same transaction, labeled later
    set_label(ids[1], None)  # cleared: not feedback any more
    return {"new": new, "ids": ids, "again": again}


def test_feedback_is_deduplicated_and_never_in_the_test_split(labeled, synthetic_frame):
    from fraud_app.models.store import read_metadata
    from fraud_app.monitoring.feedback import labeled_predictions
    from fraud_app.training.pipeline import TrainingPipeline

    feedback = labeled_predictions()
    assert list(feedback.columns) == COLUMNS
    assert len(feedback) == 5 + 10 + 1
    plain = TrainingPipeline("decision_tree", {"max_depth": 4}, seed=0).run(synthetic_frame)
    with_fb = TrainingPipeline("decision_tree", {"max_depth": 4}, name="fb", save=True, seed=0,
                               feedback=feedback).run(synthetic_frame)
    # 10 distinct new transactions survive: the 5 data-set rows and the repeated one are dropped
    assert with_fb.feedback_rows == 10
    assert with_fb.n_train == plain.n_train + 10
    assert with_fb.metrics["n_test"] == plain.metrics["n_test"]
    assert with_fb.y_test == plain.y_test  # the very same test rows
    assert with_fb.to_dict()["feedback_rows"] == 10
    assert read_metadata("fb")["fit_info"]["feedback_rows"] == 10
    assert read_metadata("fb")["reference"]["rows"] == with_fb.n_train


def test_the_latest_label_of_a_repeated_transaction_wins(labeled, synthetic_frame):
    from fraud_app.monitoring.feedback import add_feedback, labeled_predictions

    train = synthetic_frame.iloc[:100]
    out, added = add_feedback(train, labeled_predictions(), synthetic_frame)
    assert added == 10
    first = labeled["new"].iloc[0]
    match = out[np.isclose(out["feature1"], first["feature1"]) & np.isclose(out["amount"], first["amount"])]
    assert match["is_fraud"].tolist() == [1]  # labeled legitimate, then fraud
    assert out["time"].iloc[100:].eq(train["time"].max()).all()
    with pytest.raises(ValueError, match="is_fraud"):
        add_feedback(train, labeled_predictions().drop(columns=["is_fraud"]), synthetic_frame)


def test_cli_export_and_train_with_feedback(labeled, tmp_path, capsys):
    from fraud_app.cli import main

    out = tmp_path / "feedback.parquet"
    assert main(["feedback", "export", "--out", str(out)]) == 0
    exported = pd.read_parquet(out)
    assert list(exported.columns) == [*COLUMNS, "prediction_id", "labeled_at"]
    assert len(exported) == 16 and set(exported["is_fraud"]) == {0, 1}
    assert "wrote 16 labeled prediction(s)" in capsys.readouterr().out
    assert main(["feedback", "export", "--out", str(tmp_path / "x.csv")]) == 1
    assert "Parquet" in capsys.readouterr().err
    assert main(["feedback", "export", "--out", str(tmp_path / "missing" / "x.parquet")]) == 1
    assert not (tmp_path / "missing").exists()

    assert main(["train", "--model", "decision_tree", "--no-save", "--json", "--with-feedback",
                 "--threshold", "validation"]) == 0
    result = json.loads(capsys.readouterr().out)
    # 16 labeled rows, none in the 20,000-row data set; the transaction labeled twice counts once
    assert result["feedback_rows"] == 15
