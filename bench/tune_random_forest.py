"""Tuning study for the random-forest defaults, on training rows only, under the out-of-fold protocol.

    .venv/bin/python -m bench.tune_random_forest [--folds 5]

Same rows, folds and measures as ``bench/tune_lightgbm.py`` (out-of-fold PR-AUC, best F1, and the
Brier score raw / sigmoid / isotonic, cross-fitted). A small grid sized for the forest's cost on a
shared 2-core machine. Writes ``bench/results/tune_random_forest.json``.
"""

from __future__ import annotations

from bench.tune_lightgbm import run_study

VARIANTS: list[dict] = [
    {},
    {"min_samples_leaf": 3},
    {"max_samples": 0.5},
]
# Not tried: max_samples=None and max_features=0.5 cost 2-3x the fit time.


def main(argv: list[str] | None = None) -> int:
    from fraud_app.models import create

    base = {k: v for k, v in create("random_forest").params.items() if k != "random_state"}
    return run_study("random_forest", base, VARIANTS, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
