"""The AggregatorModel: soft voting over member models.

P(fraud) is the weighted mean of the members' (calibrated) probabilities, and the aggregator has
its own threshold (chosen like every other kind's, on out-of-fold or validation scores). It does **not** flag a
transaction only when every member agrees (the original template's rule): one confident member
can outweigh a hesitant one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import param

from fraud_app.models.base import FraudModel, ModelParams, Reporter, calibration_param, create, register_kind
from fraud_app.models.errors import ModelLoadError
from fraud_app.models.jsonutil import read_json, write_json_atomic

MEMBERS_DIR = "members"
MEMBER_META = "member.json"


def _member_spec(member: Any) -> dict[str, Any]:
    """Normalise a member given as a kind name, a ``{"kind", "params"}`` dict or a FraudModel."""
    if isinstance(member, FraudModel):
        return {"kind": member.kind, "params": dict(member.params)}
    if isinstance(member, str):
        return {"kind": member, "params": {}}
    if isinstance(member, dict) and isinstance(member.get("kind"), str):
        extra = set(member) - {"kind", "params"}
        if extra:
            raise ValueError(f"a member dict has only 'kind' and 'params', got also {', '.join(sorted(extra))}")
        return {"kind": member["kind"], "params": dict(member.get("params") or {})}
    raise ValueError(f"a member must be a kind name, a {{'kind', 'params'}} dict or a FraudModel, got {member!r}")


class _MemberList(param.List):
    """A list of member kinds (or ``{"kind", "params"}`` dicts); ``objects_hint`` lists the kinds a UI offers."""

    __slots__ = ["objects_hint"]

    def __init__(self, default: Any = None, objects_hint: Any = None, **params: Any) -> None:
        self.objects_hint = objects_hint
        super().__init__(default=default, **params)


@register_kind
class AggregatorModel(FraudModel):
    """Weighted soft voting over member models.

    Default: two LightGBM copies (seeds ``random_state`` and +1), equal weights, from
    ``bench/tune_aggregator.py`` (out-of-fold scores on training rows only). Every mix with the
    decision tree or the random forest scored below the same LightGBM member(s) alone; among
    LightGBM-only mixes two copies had the best mean over seed rotations (by a margin within
    seed noise, with a slightly better PR-AUC and Brier score). Members given by kind are seeded
    with the aggregator's ``random_state`` plus their position, so copies of one kind differ.

    With out-of-fold thresholds every member computes its own out-of-fold scores on the
    aggregator's folds (so no member saw the rows it scores), the aggregator averages them,
    calibrates and chooses its threshold on that average, and each member then fits on all rows.

    ``selection="oof"`` (default): before the threshold, the aggregator compares, on those same
    out-of-fold (or validation) scores, the declared mix with each member alone and keeps the best
    ((PR-AUC + best F1) / 2; a tie keeps the mix). The chosen weights are in
    ``fit_info["chosen_weights"]`` and saved with the model; a member of weight 0 is not run when
    scoring. Aggregators saved before this parameter existed load as ``"fixed"``.
    """

    kind: ClassVar[str] = "aggregator"
    file_format: ClassVar[str] = "members"
    contribution_space: ClassVar[str] = "probability"
    #: Aggregators saved before ``selection`` existed always used their declared mix.
    legacy_params: ClassVar[dict[str, Any]] = {**FraudModel.legacy_params, "selection": "fixed"}

    class Params(ModelParams):
        """Hyper-parameters of the aggregator: its members and their weights."""

        members = _MemberList(default=["lightgbm", "lightgbm"],
                              objects_hint=["decision_tree", "lightgbm", "random_forest", "xgboost"],
                              doc="Member model kinds (or {'kind', 'params'} dicts) whose probabilities are averaged.")
        weights = param.List(default=None, allow_None=True, item_type=(int, float),
                             doc="One non-negative weight per member (None = equal weights).")
        selection = param.Selector(
            default="oof", objects=["oof", "fixed"],
            doc="'oof': inside fit, keep the weighted mix or one member alone, whichever scores best on the "
                "out-of-fold (or validation) scores of the training rows, so a weak member cannot drag the "
                "mix below its best member; 'fixed': always the weighted mix.")
        calibration = calibration_param("none")
        random_state = param.Integer(default=0, bounds=(0, 2**31 - 1), precedence=-1,
                                     doc="Seed of the folds; member i is seeded with it + i.")

    #: Limits of one weight (checked by ``check_params``; the UI range of a weight).
    WEIGHT_BOUNDS: ClassVar[tuple[float, float]] = (0.0, 100.0)

    @classmethod
    def hyperparameter_view(cls) -> dict[str, dict[str, Any]]:
        view = super().hyperparameter_view()
        view["weights"] = {"default": None, "bounds": cls.WEIGHT_BOUNDS, "doc": cls.Params.param["weights"].doc}
        return view

    def __init__(self, **params: Any) -> None:
        members = params.get("members", self.Params.param["members"].default)
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError("members must be a non-empty list of kinds or models")
        specs = [_member_spec(m) for m in members]
        if any(s["kind"] == self.kind for s in specs):
            raise ValueError("an aggregator cannot contain another aggregator")
        # Members given by kind are seeded from the aggregator (seed + position) unless told otherwise.
        seed = int(params.get("random_state", self.Params.param["random_state"].default) or 0)
        for i, (member, spec) in enumerate(zip(members, specs)):
            if not isinstance(member, FraudModel):
                spec["params"].setdefault("random_state", seed + i)
        self.members: list[FraudModel] = [
            m if isinstance(m, FraudModel) else create(s["kind"], **s["params"]) for m, s in zip(members, specs)]
        params["members"] = specs
        super().__init__(**params)

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        weights = params["weights"]
        n = len(params["members"])
        if weights is not None:
            try:
                values = [float(w) for w in weights]
            except (TypeError, ValueError):
                raise ValueError("weights must be a list of numbers") from None
            if len(values) != n:
                raise ValueError(f"weights must have one value per member ({n}), got {len(values)}")
            low, high = self.WEIGHT_BOUNDS
            if any(not np.isfinite(w) or not low <= w <= high for w in values) or sum(values) <= 0:
                raise ValueError(f"weights must be non-negative (at most {high:g}) and not all zero")
            params["weights"] = values
        return params

    def fold_model(self) -> FraudModel:  # pragma: no cover - the aggregator delegates folds to its members
        raise NotImplementedError("the aggregator's members compute their own out-of-fold scores")

    @property
    def declared_weights(self) -> np.ndarray:
        """The normalised ``weights`` parameter (summing to 1)."""
        raw = self.params["weights"] or [1.0] * len(self.members)
        values = np.asarray(raw, dtype=np.float64)
        return values / values.sum()

    @property
    def weights(self) -> np.ndarray:
        """The normalised weights in use: those chosen in ``fit`` (``selection="oof"``), else the declared ones."""
        chosen = self.fit_info.get("chosen_weights")
        if chosen is not None and len(chosen) == len(self.members):
            return np.asarray(chosen, dtype=np.float64)
        return self.declared_weights

    def select_weights(self, columns: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Choose the weights on member scores of rows no member fitted (out-of-fold or validation).

        Candidates: the declared mix and each member alone. Score: (PR-AUC + best F1) / 2 of the
        candidate's scores, the rule of the tuning studies; a tie keeps the declared mix. With
        ``selection="fixed"`` the declared mix is kept. The choice is kept in ``fit_info``.
        """
        self.fit_info.pop("chosen_weights", None)
        declared = self.declared_weights
        if self.params["selection"] != "oof" or len(self.members) < 2:
            return declared
        candidates = {"mix": declared}
        for i, member in enumerate(self.members):
            candidates[f"member {i} ({member.kind})"] = np.eye(len(self.members))[i]
        scores = {label: _selection_score(y, columns @ w) for label, w in candidates.items()}
        best = max(scores, key=lambda label: (scores[label], label == "mix"))
        self.fit_info["selection"] = {"scores": scores, "chosen": best}
        self.fit_info["chosen_weights"] = [float(w) for w in candidates[best]]
        return candidates[best]

    def cross_val_scores(self, X: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                         reporter: Reporter) -> np.ndarray:
        """Each member's out-of-fold scores (and its own final fit), on the aggregator's folds, averaged."""
        n = len(self.members)
        columns = []
        for i, member in enumerate(self.members):
            sub = reporter.sub(i / n, (i + 1) / n, prefix=f"member {i + 1}/{n} ({member.kind}): ")
            member.fit_info = {}
            columns.append(member.fit_oof(X, y, folds, sub))
            member.fit_info["threshold_method"] = "oof"
        self.fit_info["members"] = [{"kind": m.kind, "threshold": m.threshold, **m.fit_info} for m in self.members]
        return np.column_stack(columns) @ self.select_weights(np.column_stack(columns), y)

    def final_fit(self, X: np.ndarray, y: np.ndarray, reporter: Reporter) -> None:
        """Nothing left to do: every member already fitted on all rows in :meth:`cross_val_scores`."""
        reporter("fit", 1.0, "members fitted on all rows")

    def fit_estimator(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray | None,
                      y_val: np.ndarray | None, reporter: Reporter) -> None:
        n = len(self.members)
        for i, member in enumerate(self.members):
            sub = reporter.sub(i / n, (i + 1) / n, prefix=f"member {i + 1}/{n} ({member.kind}): ")
            # Members share the aggregator's split, so none of them sees the validation rows
            # (a member that refits does so only after the aggregator chose its threshold).
            member.fit_info = {}
            member.fit_split(X_train, y_train, X_val, y_val, sub, allow_refit=False)
        self.fit_info["members"] = [
            {"kind": m.kind, "threshold": m.threshold, **m.fit_info} for m in self.members]
        self.select_weights(self.member_probabilities_array(X_val), y_val)

    def fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                  reporter: Reporter | None = None, allow_refit: bool = True) -> AggregatorModel:
        super().fit_split(X_train, y_train, X_val, y_val, reporter, allow_refit=False)
        if allow_refit and any(m.params.get("refit") for m in self.members):
            X_all, y_all = np.vstack([X_train, X_val]), np.concatenate([y_train, y_val])
            for member in self.members:
                if member.params.get("refit"):
                    member.refit(X_all, y_all, reporter)
        return self

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """The weighted mean of the members' (calibrated) P(fraud); a member of weight 0 is not run."""
        total = np.zeros(len(X))
        for weight, member in zip(self.weights, self.members):
            if weight > 0:
                total += weight * member.predict_proba_array(X)
        return total

    def member_probabilities_array(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([m.predict_proba_array(X) for m in self.members])

    def member_probabilities(self, X: Any) -> np.ndarray:
        """Each member's P(fraud): shape (n, n_members)."""
        from fraud_app.models.base import check_features

        self.require_fitted()
        return self.member_probabilities_array(check_features(X))

    def raw_contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """The weighted mean of the members' contributions in probability units."""
        total = np.zeros((X.shape[0], X.shape[1]))
        expected = 0.0
        for weight, member in zip(self.weights, self.members):
            if weight <= 0:
                continue
            values, base = member.contributions_array(X, "probability")
            total += weight * values
            expected += weight * base
        return total, expected

    def save_artifacts(self, folder: Path) -> None:
        for i, member in enumerate(self.members):
            sub = folder / MEMBERS_DIR / str(i)
            sub.mkdir(parents=True)
            member.save_artifacts(sub)
            write_json_atomic(sub / MEMBER_META, member.metadata)

    def load_artifacts(self, folder: Path) -> None:
        from fraud_app.models.store import build_from_metadata

        members = []
        for i, spec in enumerate(self.params["members"]):
            sub = folder / MEMBERS_DIR / str(i)
            try:
                meta = read_json(sub / MEMBER_META)
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"aggregator member {i}: unreadable {MEMBER_META}: {exc}") from None
            if not isinstance(meta, dict) or meta.get("kind") != spec["kind"]:
                raise ModelLoadError(f"aggregator member {i} is not the {spec['kind']!r} model it should be")
            members.append(build_from_metadata(meta, sub))
        self.members = members


def _selection_score(y: np.ndarray, scores: np.ndarray) -> float:
    """(PR-AUC + best F1) / 2 of ``scores`` on ``y``: how the aggregator compares its candidate weights."""
    from sklearn.metrics import average_precision_score

    from fraud_app.models.base import _f1, best_f1_threshold

    return (float(average_precision_score(y, scores)) + _f1(y, scores >= best_f1_threshold(y, scores))) / 2
