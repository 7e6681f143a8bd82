"""Tuning study for the random-forest defaults, on training data only.

    .venv/bin/python -m bench.tune_random_forest [--repeats 1] [--folds 5]

Same rows and protocol as ``bench/tune_lightgbm.py`` (only rows in the training part of every
benchmark split; repeated stratified k-fold; each fold runs the app's own ``fit``), with a
small grid sized for the forest's cost. Writes ``bench/results/tune_random_forest.json``.
"""

from __future__ import annotations

from bench.tune_lightgbm import main as _main

START = {"n_estimators": 150, "max_depth": None, "min_samples_leaf": 1, "max_features": "sqrt",
         "max_samples": 0.5, "class_weight": None}

VARIANTS: list[dict] = [
    {},
    {"max_samples": 0.25},
    {"max_samples": 0.25, "n_estimators": 300},
    {"min_samples_leaf": 3},
    {"class_weight": "balanced_subsample", "min_samples_leaf": 5},
]
# Not tried: max_samples=None and max_features=0.5 cost 2-3x the fit time, which the 5-seed
# benchmark (and a 2-core machine) cannot afford twice per seed (forest + aggregator member).


def main(argv: list[str] | None = None) -> int:
    return _main(argv, kind="random_forest", start=START, variants=VARIANTS, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
