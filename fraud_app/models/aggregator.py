"""The AggregatorModel: soft voting over member models.

P(fraud) is the weighted mean of the members' probabilities, and the aggregator has its own
threshold (chosen like every other kind's, on the validation split). It does **not** flag a
transaction only when every member agrees (the original template's rule): one confident member
can outweigh a hesitant one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fraud_app.models.base import FraudModel, Reporter, create, register_kind
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


@register_kind
class AggregatorModel(FraudModel):
    """Weighted soft voting over member models.

    Default: three LightGBM models seeded ``random_state``, +1 and +2 (their row and column
    sampling differ), equal weights. ``bench/tune_aggregator.py`` (cross-validation on training
    rows only) compared this with LightGBM + random forest (equal or 2:1 weights) and two
    LightGBMs + a forest: every mix with the forest scored lower than LightGBM alone, the three
    LightGBMs slightly higher (see the README's model section for the figures).
    """

    kind: ClassVar[str] = "aggregator"
    file_format: ClassVar[str] = "members"
    default_params: ClassVar[dict[str, Any]] = {
        "members": ["lightgbm", "lightgbm", "lightgbm"],
        "weights": None,
        "random_state": 0,
    }
    hyperparameters: ClassVar[dict[str, dict[str, Any]]] = {
        "members": {"default": ["lightgbm", "lightgbm", "lightgbm"],
                    "objects": ["decision_tree", "lightgbm", "random_forest"],
                    "doc": "Member model kinds whose probabilities are averaged."},
        "weights": {"default": None, "bounds": (0.0, 100.0),
                    "doc": "One non-negative weight per member (None = equal weights)."},
    }

    def __init__(self, **params: Any) -> None:
        members = params.get("members", self.default_params["members"])
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError("members must be a non-empty list of kinds or models")
        specs = [_member_spec(m) for m in members]
        if any(s["kind"] == self.kind for s in specs):
            raise ValueError("an aggregator cannot contain another aggregator")
        # Members given by kind are seeded from the aggregator (seed + position) unless told otherwise.
        seed = int(params.get("random_state", self.default_params["random_state"]) or 0)
        for i, (member, spec) in enumerate(zip(members, specs)):
            if not isinstance(member, FraudModel):
                spec["params"].setdefault("random_state", seed + i)
        self.members: list[FraudModel] = [
            m if isinstance(m, FraudModel) else create(s["kind"], **s["params"]) for m, s in zip(members, specs)]
        params["members"] = specs
        super().__init__(**params)

    def _validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        weights = params["weights"]
        n = len(params["members"])
        if weights is not None:
            try:
                values = [float(w) for w in weights]
            except (TypeError, ValueError):
                raise ValueError("weights must be a list of numbers") from None
            if len(values) != n:
                raise ValueError(f"weights must have one value per member ({n}), got {len(values)}")
            if any(not np.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
                raise ValueError("weights must be non-negative and not all zero")
            params["weights"] = values
        return params

    @property
    def weights(self) -> np.ndarray:
        """The normalised member weights (summing to 1)."""
        raw = self.params["weights"] or [1.0] * len(self.members)
        values = np.asarray(raw, dtype=np.float64)
        return values / values.sum()

    def _fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                   reporter: Reporter) -> None:
        n = len(self.members)
        for i, member in enumerate(self.members):
            sub = reporter.sub(i / n, (i + 1) / n)
            sub("fit", 0.0, f"member {i + 1}/{n}: {member.kind}")
            # Members share the aggregator's split, so none of them sees the validation rows
            # (a member that refits does so only after the aggregator chose its threshold).
            member.fit_split(X_train, y_train, X_val, y_val, sub, allow_refit=False)
        self.fit_info["members"] = [
            {"kind": m.kind, "threshold": m.threshold, **m.fit_info} for m in self.members]

    def fit_split(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                  reporter: Reporter | None = None, allow_refit: bool = True) -> AggregatorModel:
        super().fit_split(X_train, y_train, X_val, y_val, reporter, allow_refit=False)
        if allow_refit and any(m.params.get("refit") for m in self.members):
            X_all, y_all = np.vstack([X_train, X_val]), np.concatenate([y_train, y_val])
            for member in self.members:
                if member.params.get("refit"):
                    member.refit(X_all, y_all, reporter)
        return self

    def _predict_scores(self, X: np.ndarray) -> np.ndarray:
        scores = np.column_stack([m._predict_scores(X) for m in self.members])
        return scores @ self.weights

    def member_probabilities(self, X: Any) -> np.ndarray:
        """Each member's P(fraud): shape (n, n_members)."""
        from fraud_app.models.base import check_features

        self._require_fitted()
        values = check_features(X)
        return np.column_stack([m._predict_scores(values) for m in self.members])

    def _contributions(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        total = np.zeros((X.shape[0], X.shape[1]))
        expected = 0.0
        for weight, member in zip(self.weights, self.members):
            values, base = member._contributions(X)
            total += weight * values
            expected += weight * base
        return total, expected

    def _save_artifacts(self, folder: Path) -> None:
        for i, member in enumerate(self.members):
            sub = folder / MEMBERS_DIR / str(i)
            sub.mkdir(parents=True)
            member._save_artifacts(sub)
            write_json_atomic(sub / MEMBER_META, member.metadata)

    def _load_artifacts(self, folder: Path) -> None:
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
