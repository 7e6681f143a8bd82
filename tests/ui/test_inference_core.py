"""The Inference tab's core helpers (no Panel): the reference transaction and batch CSV files."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import KAGGLE_COLUMNS, MODEL_FEATURES, TARGET, load_transactions, make_synthetic
from fraud_app.inference import reference
from fraud_app.inference import score
from fraud_app.inference.batch import (
    MAX_BATCH_ROWS,
    MAX_PROBLEMS_LISTED,
    BatchFileError,
    parse_batch_csv,
    predictions_frame,
    rank_by_risk,
    results_to_csv,
    score_batch_csv,
    sniff_delimiter,
    template_csv,
)
from fraud_app.inference.reference import (
    FROZEN_FEATURES,
    KAGGLE_NAMES,
    SLIDER_FEATURES,
    TransactionPicker,
    random_transaction,
    reference_data,
    reference_transaction,
    slider_ranges,
)
from fraud_app.models import create
from fraud_app.storage import count_predictions, list_predictions
from tests.conftest import ROOT


def test_the_core_helpers_import_no_panel() -> None:
    code = ("import sys, fraud_app.inference.reference, fraud_app.inference.batch; "
            "sys.exit(1 if any(m == 'panel' or m.startswith('panel.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# -- reference ------------------------------------------------------------------------------------

def test_the_reference_transaction_is_the_median_of_the_clear_transactions() -> None:
    frame = load_transactions()
    expected = frame.loc[frame[TARGET] == 0, MODEL_FEATURES].median()
    got = reference_transaction()
    assert list(got) == MODEL_FEATURES
    assert got == pytest.approx(expected.to_dict(), abs=1e-12)
    # Not the overall median: the frauds are left out.
    overall = frame[MODEL_FEATURES].median()
    assert any(got[c] != pytest.approx(overall[c], abs=1e-9) for c in MODEL_FEATURES)


def test_the_reference_is_computed_once_per_data_set_fingerprint() -> None:
    frame = load_transactions()
    first = reference_data(frame)
    count = reference.compute_count
    assert reference_data() is first and reference_data(frame) is first
    assert reference.compute_count == count
    other = make_synthetic(500, 0.05, 3)
    assert reference_data(other).fingerprint != first.fingerprint
    assert reference.compute_count == count + 1
    reference_transaction()["amount"] = -1.0  # callers get a copy
    assert reference_data(frame).reference["amount"] != -1.0


def test_slider_ranges_come_from_the_05th_and_995th_percentiles() -> None:
    frame = load_transactions()
    ranges = slider_ranges()
    assert list(ranges) == list(SLIDER_FEATURES) == ["feature11", "feature13", "feature15", "amount"]
    for column, bounds in ranges.items():
        low, high = np.percentile(frame[column], [0.5, 99.5])
        assert bounds.start <= low and high <= bounds.end
        assert low - bounds.start <= bounds.step + 1e-9 and bounds.end - high <= bounds.step + 1e-9
        assert bounds.start <= bounds.reference <= bounds.end
        assert (bounds.end - bounds.start) / bounds.step >= 100  # fine enough to be useful


def test_the_sliders_and_the_frozen_inputs_cover_every_model_input_once() -> None:
    assert sorted([*SLIDER_FEATURES, *FROZEN_FEATURES]) == sorted(MODEL_FEATURES)
    assert len(FROZEN_FEATURES) == 25
    assert [KAGGLE_NAMES[c] for c in SLIDER_FEATURES] == ["V11", "V13", "V15", "Amount"]
    assert all(KAGGLE_COLUMNS[KAGGLE_NAMES[c]] == c for c in MODEL_FEATURES)


def test_random_transactions_are_real_rows_of_the_asked_class_and_seedable() -> None:
    frame = load_transactions()
    for label, expected in (("fraud", 1), ("clear", 0)):
        sample = random_transaction(label, rng=1)
        assert sample.is_fraud == bool(expected) and sample.label == label
        assert int(frame[TARGET].iat[sample.row]) == expected
        assert sample.values == frame.loc[sample.row, MODEL_FEATURES].astype(float).to_dict()
        assert sample.time == float(frame["time"].iat[sample.row])
    a, b = TransactionPicker(seed=5), TransactionPicker(seed=5)
    assert [a.pick("fraud").row for _ in range(5)] == [b.pick("fraud").row for _ in range(5)]
    rows = {TransactionPicker(seed=5).pick("clear").row for _ in range(3)} | {a.pick("clear").row for _ in range(20)}
    assert len(rows) > 5  # it does move
    with pytest.raises(ValueError, match="'clear' or 'fraud'"):
        random_transaction("maybe")


# -- batch files ----------------------------------------------------------------------------------

def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _frame(n: int = 6) -> pd.DataFrame:
    return load_transactions().iloc[:n].copy()


def test_a_valid_file_parses_to_the_29_inputs_in_file_order() -> None:
    source = _frame()
    parsed = parse_batch_csv(_csv(source))
    assert list(parsed.columns) == MODEL_FEATURES
    assert parsed.to_numpy().tolist() == source[MODEL_FEATURES].to_numpy().tolist()  # exact round trip
    # Column order is free; time and is_fraud are optional and ignored; Kaggle names are mapped.
    shuffled = source[[*MODEL_FEATURES[::-1]]]
    assert parse_batch_csv(_csv(shuffled)).equals(parsed)
    kaggle = source.rename(columns={v: k for k, v in KAGGLE_COLUMNS.items()})
    assert parse_batch_csv(_csv(kaggle)).equals(parsed)
    # A byte-order mark, blank lines and padded cells are fine.
    text = _csv(source[MODEL_FEATURES]).decode().replace("\n", "\n\n").replace(",", ", ")
    assert parse_batch_csv(b"\xef\xbb\xbf" + text.encode()).equals(parsed)


@pytest.mark.parametrize(("make", "messages"), [
    (lambda f: f.drop(columns=["feature3", "amount"]), ["missing columns: feature3, amount"]),
    (lambda f: f.assign(merchant="x", city="y"), ["unknown columns: merchant, city"]),
    (lambda f: f.drop(columns=["feature9"]).assign(feature99=1.0),
     ["missing column: feature9", "unknown column: feature99"]),
    (lambda f: f.assign(V2=1.0), ["duplicated column: V2 (= feature2)"]),
    (lambda f: f.astype({"feature5": str, "amount": str}).assign(
        feature5=["1", "one", "2", "", "3", "x"], amount=["1", "2", "3", "4", "nan", "inf"]),
     ["column feature5 has non-numeric value(s) in rows 2 ('one'), 4 (empty), 6 ('x')",
      "column amount has non-numeric value(s) in rows 5 ('nan'), 6 ('inf')"]),
    (lambda f: f.iloc[:0], ["the file has a header but no transactions"]),
])
def test_invalid_files_name_every_problem(make, messages: list[str]) -> None:
    with pytest.raises(BatchFileError) as info:
        parse_batch_csv(_csv(make(_frame())))
    for message in messages:
        assert message in str(info.value)
    assert len(info.value.problems) == len(messages)


def test_unusable_files_are_refused_with_a_clear_message() -> None:
    for data, needle in ((b"", "the file is empty"), (b" \n\n", "the file is empty"),
                         (b"\xff\xfe\x00", "not UTF-8"), (None, "the file is empty")):
        with pytest.raises(BatchFileError, match=needle):
            parse_batch_csv(data)
    ragged = _csv(_frame(3)) + b"1,2,3\n"
    with pytest.raises(BatchFileError, match=r"row 4 has a different number of fields than the header \(31\)"):
        parse_batch_csv(ragged)
    with pytest.raises(BatchFileError, match="4 transactions; the limit is 3"):
        parse_batch_csv(_csv(_frame(4)), max_rows=3)
    with pytest.raises(BatchFileError, match="the limit is"):
        parse_batch_csv(_csv(_frame(4)), max_bytes=100)
    assert MAX_BATCH_ROWS == 10_000


def test_many_bad_cells_are_summarised() -> None:
    frame = _frame(20).astype(str)
    frame[MODEL_FEATURES] = "?"
    with pytest.raises(BatchFileError) as info:
        parse_batch_csv(_csv(frame))
    text = str(info.value)
    assert "column feature1 has non-numeric value(s) in rows 1 ('?'), 2 ('?'), 3 ('?'), 4 ('?'), 5 ('?') " \
           "and 15 more" in text
    assert "and 21 more column(s) with bad values" in text
    assert info.value.field == "feature1"


def test_score_batch_csv_saves_all_rows_as_batch_or_nothing(app_env) -> None:
    frame = make_synthetic(2_000, 0.05, 1)
    model = create("decision_tree").fit(frame[MODEL_FEATURES], frame[TARGET])
    model.save("tree")
    with pytest.raises(BatchFileError):
        score_batch_csv(_csv(_frame(5).drop(columns=["amount"])))
    assert count_predictions() == 0
    rows = score_batch_csv(_csv(_frame(7)), model="tree")
    assert len(rows) == 7 and {r["source"] for r in rows} == {"batch"} and count_predictions() == 7
    out = pd.read_csv(io.BytesIO(results_to_csv(rows)))
    assert out["id"].tolist() == [r["id"] for r in rows]
    assert out[MODEL_FEATURES].to_numpy().tolist() == _frame(7)[MODEL_FEATURES].to_numpy().tolist()
    assert out["is_fraud"].tolist() == [int(r["is_fraud"]) for r in rows]
    stored = predictions_frame(list_predictions(limit=10), ["amount"])
    assert list(stored.columns)[-1] == "amount" and len(stored) == 7
    assert predictions_frame([]).empty


def test_header_problems_and_bad_cells_are_reported_in_one_pass() -> None:
    """Issue 16 item 7: the bad cells used to appear only after the columns were fixed."""
    frame = _frame().drop(columns=["feature7"]).astype({"amount": str, "feature2": str})
    frame["amount"] = ["1", "abc", "2", "3", "", "4"]
    frame["feature2"] = ["x", "1", "1", "1", "1", "1"]
    with pytest.raises(BatchFileError) as info:
        parse_batch_csv(_csv(frame.assign(merchant=1)))
    problems = info.value.problems
    assert "missing column: feature7" in problems
    assert any(p.startswith("unknown column: merchant") for p in problems)
    assert "column feature2 has non-numeric value(s) in row 1 ('x')" in problems
    assert "column amount has non-numeric value(s) in rows 2 ('abc'), 5 (empty)" in problems
    assert info.value.total == 4 and info.value.bad_cells == 3
    assert info.value.field == "feature7"


def test_a_ragged_row_does_not_hide_the_bad_cells_of_the_other_rows() -> None:
    frame = _frame(4).astype({"amount": str})
    frame["amount"] = ["1", "2", "zz", "4"]
    data = _csv(frame) + b"1,2,3\n"
    with pytest.raises(BatchFileError) as info:
        parse_batch_csv(data)
    text = str(info.value)
    assert "row 5 has a different number of fields than the header (31)" in text
    assert "column amount has non-numeric value(s) in row 3 ('zz')" in text


def test_the_list_of_problems_is_capped_with_the_total_count() -> None:
    frame = _frame(3).drop(columns=["feature1", "feature2"]).astype(str)
    frame[[c for c in MODEL_FEATURES if c in frame.columns]] = "?"
    for i in range(6):
        frame[f"extra{i}"] = 1
    with pytest.raises(BatchFileError) as info:
        parse_batch_csv(_csv(frame))
    error = info.value
    assert len(error.problems) <= MAX_PROBLEMS_LISTED
    assert error.total == 2 + 27  # missing + unknown columns, then 27 columns with bad cells
    assert error.bad_cells == 27 * 3
    assert f"and {error.total - len(error.problems)} more problems" in str(error)


def test_a_semicolon_separated_file_with_decimal_commas_is_read() -> None:
    """Issue 16 item 7: European Excel exports gave 29 'missing' columns and one long unknown one."""
    source = _frame().rename(columns={v: k for k, v in KAGGLE_COLUMNS.items()})
    text = source.to_csv(index=False, sep=";", decimal=",")
    assert sniff_delimiter(text) == ";"
    parsed = parse_batch_csv(text.encode())
    assert parsed.attrs["delimiter"] == ";"
    assert np.allclose(parsed.to_numpy(), _frame()[MODEL_FEATURES].to_numpy(), rtol=1e-15, atol=0)
    tabbed = _frame().to_csv(index=False, sep="\t")
    assert parse_batch_csv(tabbed.encode()).equals(parse_batch_csv(_csv(_frame())))
    assert sniff_delimiter("feature1\n1\n") == ","


def test_a_header_that_is_one_long_column_is_shortened_and_explained() -> None:
    header = ";".join(KAGGLE_NAMES[c] for c in MODEL_FEATURES)  # quoted as one cell: no delimiter to sniff
    with pytest.raises(BatchFileError) as info:
        parse_batch_csv(f'"{header}"\n"1;2"\n'.encode())
    text = str(info.value)
    assert "semicolon-separated" in text
    assert header not in text and "…" in text


def test_the_template_csv_is_a_valid_batch_of_one_row() -> None:
    parsed = parse_batch_csv(template_csv())
    assert list(parsed.columns) == MODEL_FEATURES and len(parsed) == 1
    assert (parsed.to_numpy() == 0).all()
    example = reference_transaction()
    parsed = parse_batch_csv(template_csv(example))
    assert parsed.iloc[0].to_dict() == example  # full precision


def test_rank_by_risk_puts_the_highest_probability_first() -> None:
    rows = [{"id": i, "fraud_probability": p} for i, p in enumerate([0.1, 0.9, 0.0, 0.5, 0.9])]
    assert [r["id"] for r in rank_by_risk(rows)] == [1, 4, 3, 0, 2]


def test_score_scores_like_score_and_save_but_saves_nothing(app_env) -> None:
    frame = make_synthetic(2_000, 0.05, 1)
    model = create("decision_tree").fit(frame[MODEL_FEATURES], frame[TARGET])
    model.save("tree")
    rows = _frame(3)[MODEL_FEATURES].to_dict("records")
    (what_if,) = score(rows[0], model="tree")
    assert count_predictions() == 0
    assert what_if["fraud_probability"] == pytest.approx(model.predict_proba(_frame(1)[MODEL_FEATURES])[0])
    assert what_if["is_fraud"] == (what_if["fraud_probability"] >= model.threshold)
    assert what_if["model"] == "tree" and what_if["features"] == pytest.approx(rows[0])
    assert "id" not in what_if
    assert len(score(rows)) == 3 and count_predictions() == 0  # the active model by default
    from fraud_app.inference import PredictionInputError

    with pytest.raises(PredictionInputError, match="amount"):
        score({**rows[0], "amount": "x"})
