"""The AggregatorModel is weighted soft voting, not 'flag only when every member agrees'."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from fraud_app.data import MODEL_FEATURES
from fraud_app.models import AggregatorModel, FraudModel, best_f1_threshold, create


class StubMember(FraudModel):
    """Returns the value of one input column as P(fraud); records the split it was fitted on."""

    kind: ClassVar[str] = "stub"
    default_params: ClassVar[dict] = {"column": 0, "random_state": 0}

    def fit_estimator(self, X_train, y_train, X_val, y_val, reporter):
        self.seen_ = (X_train.copy(), None if X_val is None else X_val.copy())

    def predict_scores(self, X):
        return X[:, self.params["column"]]

    def raw_contributions(self, X):
        out = np.zeros_like(X)
        out[:, self.params["column"]] = X[:, self.params["column"]] - 0.5
        return out, 0.5

    def save_artifacts(self, folder):  # pragma: no cover - not saved in these tests
        raise NotImplementedError

    def load_artifacts(self, folder):  # pragma: no cover
        raise NotImplementedError


def _frame(a, b) -> pd.DataFrame:
    data = {f: np.zeros(len(a)) for f in MODEL_FEATURES}
    data["feature1"], data["feature2"] = np.asarray(a, float), np.asarray(b, float)
    return pd.DataFrame(data)


@pytest.fixture
def training():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    a = np.clip(0.6 * y + rng.normal(0.2, 0.15, 400), 0, 1)
    b = np.clip(0.5 * y + rng.normal(0.25, 0.2, 400), 0, 1)
    return _frame(a, b), y


def test_probability_is_the_weighted_mean_of_the_members(training):
    X, y = training
    model = AggregatorModel(members=[StubMember(column=0), StubMember(column=1)], weights=[3, 1],
                            selection="fixed").fit(X, y)
    probe = _frame([0.9, 0.1, 0.4], [0.1, 0.9, 0.4])
    np.testing.assert_allclose(model.predict_proba(probe), [0.7, 0.3, 0.4])
    np.testing.assert_allclose(model.member_probabilities(probe), [[0.9, 0.1], [0.1, 0.9], [0.4, 0.4]])
    equal = AggregatorModel(members=[StubMember(column=0), StubMember(column=1)]).fit(X, y)
    np.testing.assert_allclose(equal.predict_proba(probe), [0.5, 0.5, 0.4])
    np.testing.assert_allclose(equal.weights, [0.5, 0.5])


def test_one_confident_member_can_flag_fraud_alone(training):
    """Not the template's ``mean(preds) == 1`` rule: members disagree, the average still flags it."""
    X, y = training
    a, b = StubMember(column=0), StubMember(column=1)
    model = AggregatorModel(members=[a, b]).fit(X, y)
    model.threshold = 0.5
    a.threshold = b.threshold = 0.5
    probe = _frame([0.95], [0.2])
    member_votes = [int(a.predict(probe)[0]), int(b.predict(probe)[0])]
    assert member_votes == [1, 0]
    all_agree_rule = int(np.mean(member_votes) == 1)
    assert all_agree_rule == 0
    assert model.predict_proba(probe)[0] == pytest.approx(0.575)
    assert model.predict(probe)[0] == 1
    # ...and two members that agree on "not fraud" with low scores are not flagged.
    assert model.predict(_frame([0.3], [0.3]))[0] == 0


def test_the_aggregator_chooses_its_own_threshold_on_the_shared_validation_split(training):
    X, y = training
    a, b = StubMember(column=0), StubMember(column=1)
    model = AggregatorModel(members=[a, b], random_state=5).fit(X, y, threshold_method="validation")
    assert 0 < model.threshold < 1
    # Both members were fitted on the same training rows; the validation rows are held out from all.
    np.testing.assert_array_equal(a.seen_[0], b.seen_[0])
    np.testing.assert_array_equal(a.seen_[1], b.seen_[1])
    assert len(a.seen_[1]) == 80 and len(a.seen_[0]) == 320
    assert a.threshold > 0 and b.threshold > 0


def test_out_of_fold_the_aggregator_averages_its_members_out_of_fold_scores(training):
    """Each member scores every row with a fold model that never saw it; the aggregator's threshold is
    the F1-best on the weighted mean of those scores; then every member fits on all rows."""
    X, y = training
    a, b = StubMember(column=0), StubMember(column=1)
    model = AggregatorModel(members=[a, b], weights=[3, 1], selection="fixed").fit(X, y, folds=4)
    labels, scores = model.threshold_scores
    values = X.to_numpy()
    np.testing.assert_allclose(scores, 0.75 * values[:, 0] + 0.25 * values[:, 1])
    assert model.threshold == pytest.approx(best_f1_threshold(labels, scores))
    assert model.fit_info["threshold_method"] == "oof" and model.fit_info["folds"] == 4
    assert len(a.seen_[0]) == len(X) and a.seen_[1] is None  # the final fit: all rows, no held-out part


def test_contributions_are_the_weighted_mean_of_the_members(training):
    X, y = training
    model = AggregatorModel(members=[StubMember(column=0), StubMember(column=1)], weights=[1, 3],
                            selection="fixed").fit(X, y)
    contrib = model.contributions(_frame([0.9], [0.1]))
    assert contrib.shape == (1, 29)
    assert contrib.loc[0, "feature1"] == pytest.approx(0.25 * 0.4)
    assert contrib.loc[0, "feature2"] == pytest.approx(0.75 * -0.4)
    assert model.expected_value() == pytest.approx(0.5)


def test_members_as_kinds_and_dicts_and_bad_settings():
    model = create("aggregator", members=["decision_tree", {"kind": "lightgbm", "params": {"num_leaves": 7}}])
    assert [m.kind for m in model.members] == ["decision_tree", "lightgbm"]
    assert model.members[1].params["num_leaves"] == 7
    # Members named by kind are seeded from the aggregator's random_state (+ their position).
    assert model.params["members"][1] == {"kind": "lightgbm", "params": {"num_leaves": 7, "random_state": 1}}
    seeded = create("aggregator", members=["lightgbm", "lightgbm"], random_state=7)
    assert [m.params["random_state"] for m in seeded.members] == [7, 8]
    with pytest.raises(ValueError, match="one value per member"):
        create("aggregator", members=["decision_tree", "lightgbm"], weights=[1])
    with pytest.raises(ValueError, match="non-negative"):
        create("aggregator", members=["decision_tree", "lightgbm"], weights=[1, -1])
    with pytest.raises(ValueError, match="non-empty"):
        create("aggregator", members=[])
    with pytest.raises(ValueError, match="another aggregator"):
        create("aggregator", members=["aggregator"])
    with pytest.raises(ValueError, match="unknown model kind"):
        create("aggregator", members=["svm"])


def test_selection_keeps_the_best_of_the_mix_and_each_member_on_out_of_fold_scores(training):
    """A useless member cannot drag the mix below its best member: the choice is made on training rows."""
    X, y = training
    noise = np.random.default_rng(1).random(len(y))
    X = X.assign(feature3=noise)
    good, bad = StubMember(column=0), StubMember(column=2)
    model = AggregatorModel(members=[good, bad]).fit(X, y, folds=4)
    assert model.fit_info["selection"]["chosen"] == "member 0 (stub)"
    np.testing.assert_allclose(model.weights, [1.0, 0.0])
    np.testing.assert_allclose(model.predict_proba(X), X["feature1"].to_numpy())
    fixed = AggregatorModel(members=[StubMember(column=0), StubMember(column=2)], selection="fixed").fit(X, y)
    np.testing.assert_allclose(fixed.weights, [0.5, 0.5])
    assert "chosen_weights" not in fixed.fit_info
    # The validation path chooses too, on the validation rows: the best-scoring candidate is kept.
    both = AggregatorModel(members=[StubMember(column=0), StubMember(column=2)]).fit(
        X, y, threshold_method="validation")
    selection = both.fit_info["selection"]
    assert set(selection["scores"]) == {"mix", "member 0 (stub)", "member 1 (stub)"}
    assert selection["scores"][selection["chosen"]] == max(selection["scores"].values())
    assert selection["chosen"] == "member 0 (stub)"
