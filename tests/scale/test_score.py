"""Batch scoring: local and Dask give the same partitioned output; bad rows are named by file and row."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import MODEL_FEATURES, make_synthetic
from fraud_app.models import create
from fraud_app.scale.score import LABEL_COLUMN, ScoreInputError, score
from tests.scale.conftest import ROWS


@pytest.fixture
def model(app_env: Path) -> str:
    frame = make_synthetic(5000, 0.05, 1)
    create("lightgbm", n_estimators=20).fit(frame[MODEL_FEATURES], frame["is_fraud"],
                                             threshold_method="validation").save("scorer")
    return "scorer"


def test_local_and_dask_write_the_same_scores(model: str, synth_dir: Path, cluster, tmp_path: Path) -> None:
    ticks = []
    local = score(model, str(synth_dir), str(tmp_path / "local"), engine="local",
                  progress=lambda done, total: ticks.append((done, total)))
    on_dask = score(model, str(synth_dir), str(tmp_path / "dask"), engine="dask", progress=False)
    assert local["rows"] == on_dask["rows"] == ROWS and local["frauds"] == on_dask["frauds"]
    assert ticks[-1] == (8, 8) and len(ticks) == 8
    a, b = pd.read_parquet(tmp_path / "local"), pd.read_parquet(tmp_path / "dask")
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == [f"part.{i:05d}.parquet" for i in range(8)]
    pd.testing.assert_frame_equal(a, b)
    source = pd.read_parquet(synth_dir)
    assert list(a.columns) == [*[c for c in source.columns if c != "is_fraud"], LABEL_COLUMN,
                               "fraud_probability", "is_fraud"]
    np.testing.assert_array_equal(a[LABEL_COLUMN], source["is_fraud"])
    from fraud_app.models import load_model

    m = load_model(model)
    np.testing.assert_allclose(a["fraud_probability"], m.predict_proba(source[MODEL_FEATURES]))
    np.testing.assert_array_equal(a["is_fraud"], (a["fraud_probability"] >= m.threshold).astype("int8"))


def test_bad_rows_are_named_by_file_and_row_and_nothing_is_written(model: str, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = make_synthetic(300, 0.05, 2).drop(columns=["is_fraud"])
    good.to_csv(inputs / "a.csv", index=False)
    bad = good.copy()
    bad["feature3"] = bad["feature3"].astype(object)
    bad.loc[17, "feature3"] = "n/a"
    bad.loc[250, "amount"] = np.inf
    bad.to_csv(inputs / "b.csv", index=False)
    with pytest.raises(ScoreInputError) as info:
        score(model, str(inputs), str(tmp_path / "out"), progress=False)
    message = str(info.value)
    assert "b.csv: row 17: not a finite number in feature3" in message
    assert "b.csv: row 250: not a finite number in amount" in message
    assert "a.csv" not in message
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_row_number_counts_from_the_start_of_the_file_across_row_groups(model: str, tmp_path: Path) -> None:
    frame = make_synthetic(1000, 0.05, 3)
    frame.loc[777, "feature1"] = np.nan
    frame.to_parquet(tmp_path / "groups.parquet", row_group_size=300)
    with pytest.raises(ScoreInputError, match=r"groups\.parquet: row 777: not a finite number in feature1"):
        score(model, str(tmp_path / "groups.parquet"), str(tmp_path / "out"), progress=False)


def test_an_existing_output_is_kept_unless_overwrite(model: str, synth_dir: Path, tmp_path: Path) -> None:
    one = tmp_path / "one.parquet"
    shutil.copy(synth_dir / "part.00000.parquet", one)
    out = tmp_path / "out"
    score(model, str(one), str(out), progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        score(model, str(one), str(out), progress=False)
    result = score(model, str(one), str(out), overwrite=True, progress=False)
    assert result["rows"] == len(pd.read_parquet(out))


def test_save_to_db_writes_every_prediction_in_chunks(model: str, tmp_path: Path, monkeypatch) -> None:
    from fraud_app.scale import score as score_module
    from fraud_app.storage import count_predictions, list_predictions

    monkeypatch.setattr(score_module, "DB_CHUNK_ROWS", 64)
    frame = make_synthetic(200, 0.05, 4)
    frame.to_parquet(tmp_path / "few.parquet")
    result = score(model, str(tmp_path / "few.parquet"), str(tmp_path / "out"), save_to_db=True, progress=False)
    assert result["saved_to_db"] == 200 == count_predictions()
    newest = list_predictions(limit=1)[0]
    assert newest["source"] == "batch" and newest["model"] == model
