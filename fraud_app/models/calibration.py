"""Probability calibration fitted on out-of-fold (or validation) scores, stored as plain JSON.

A kind's scores can be well ranked and still not be probabilities: trees give leaf
frequencies, class weights inflate every score. :func:`fit_calibration` learns a monotone map
from a kind's raw scores to P(fraud) on scores the model did not fit (out-of-fold, or the
validation split), and :class:`Calibration` applies it. Both maps are a handful of numbers, kept
in the model's ``metadata.json``; nothing is pickled.

``"sigmoid"`` (Platt scaling on the score's log-odds: ``P = sigmoid(a * logit(s) + b)``) is
smooth and strictly increasing, so it keeps the ranking (PR-AUC) and every explanation.
``"isotonic"`` is a free monotone step function (piecewise linear between its knots): more
flexible, but it can merge scores into ties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The calibration choices every kind accepts.
CALIBRATION_METHODS: tuple[str, ...] = ("none", "sigmoid", "isotonic")
#: Probabilities are clipped into [EPS, 1 - EPS] before taking log-odds.
EPS = 1e-7


def logit(p: Any) -> np.ndarray:
    """log(p / (1 - p)) with ``p`` clipped into [EPS, 1 - EPS]."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


@dataclass(frozen=True)
class Calibration:
    """A fitted monotone map from raw scores to P(fraud).

    Attributes
    ----------
    method : ``"sigmoid"`` or ``"isotonic"``.
    a, b : Platt coefficients (sigmoid).
    x, y : knots of the isotonic map (scores and their P(fraud)); interpolated linearly, clipped.
    n, n_fraud : the rows it was fitted on.
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = field(default=())
    y: tuple[float, ...] = field(default=())
    n: int = 0
    n_fraud: int = 0

    def __call__(self, scores: Any) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "sigmoid":
            return sigmoid(self.a * logit(s) + self.b)
        if self.method == "isotonic":
            return np.interp(s, self.x, self.y)
        raise ValueError(f"unknown calibration method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method, "n": self.n, "n_fraud": self.n_fraud}
        if self.method == "sigmoid":
            data.update(a=self.a, b=self.b)
        else:
            data.update(x=list(self.x), y=list(self.y))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Calibration | None:
        """The calibration saved by :meth:`to_dict` (None for none)."""
        if not data:
            return None
        method = data.get("method")
        if method == "sigmoid":
            return cls("sigmoid", a=float(data["a"]), b=float(data["b"]), n=int(data.get("n", 0)),
                       n_fraud=int(data.get("n_fraud", 0)))
        if method == "isotonic":
            x = tuple(float(v) for v in data["x"])
            y = tuple(float(v) for v in data["y"])
            if len(x) != len(y) or not x or any(b < a for a, b in zip(x, x[1:])):
                raise ValueError("isotonic calibration knots must be two equal-length lists, x increasing")
            return cls("isotonic", x=x, y=y, n=int(data.get("n", 0)), n_fraud=int(data.get("n_fraud", 0)))
        raise ValueError(f"unknown calibration method {method!r}")


def _platt(z: np.ndarray, y: np.ndarray, ridge: float = 1e-6, iterations: int = 100) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of ``P(y=1) = sigmoid(a z + b)``: damped Newton from the identity (1, 0)."""

    def loss(a: float, b: float) -> float:
        t = a * z + b
        return float(np.sum(np.logaddexp(0.0, t) - y * t) + 0.5 * ridge * (a * a + b * b))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = sigmoid(a * z + b)
        w = p * (1 - p)
        g = np.array([np.dot(p - y, z) + ridge * a, np.sum(p - y) + ridge * b])
        h = np.array([[np.dot(w, z * z) + ridge, np.dot(w, z)], [np.dot(w, z), np.sum(w) + ridge]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-6:
            trial = loss(a - t * step[0], b - t * step[1])
            if trial <= current:
                break
            t /= 2
        else:
            break
        a, b, current = a - t * step[0], b - t * step[1], trial
        if np.abs(t * step).max() < 1e-9:
            break
    return float(a), float(b)


def fit_calibration(method: str, scores: Any, y: Any) -> Calibration | None:
    """Fit ``method`` on ``scores`` the model did not fit and their labels ``y``; None for ``"none"``."""
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    if method == "none":
        return None
    s = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    n, n_fraud = int(len(s)), int(labels.sum())
    if method == "sigmoid":
        a, b = _platt(logit(s), labels)
        return Calibration("sigmoid", a=a, b=b, n=n, n_fraud=n_fraud)
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, labels)
    return Calibration("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)),
                       n=n, n_fraud=n_fraud)


__all__ = ["CALIBRATION_METHODS", "Calibration", "fit_calibration", "logit", "sigmoid"]
