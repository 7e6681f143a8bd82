"""Tuning study for the aggregator's default members and weights, on training data only.

    .venv/bin/python -m bench.tune_aggregator [--repeats 1] [--folds 5]

Same rows and protocol as ``bench/tune_lightgbm.py`` (only rows in the training part of every
benchmark split; stratified k-fold; each fold runs the app's own ``fit``: members share one
validation split, the aggregator picks its threshold on their averaged probabilities). The
first variant, LightGBM alone, is the reference the aggregator has to beat.
Writes ``bench/results/tune_aggregator.json``.
"""

from __future__ import annotations

from bench.tune_lightgbm import main as _main

START: dict = {"weights": None}

VARIANTS: list[dict] = [
    {"members": ["lightgbm"]},
    {"members": ["lightgbm", "random_forest"]},
    {"members": ["lightgbm", "random_forest"], "weights": [2, 1]},
    {"members": ["lightgbm", "lightgbm", "lightgbm"]},
    {"members": ["lightgbm", "lightgbm", "random_forest"]},
]


def main(argv: list[str] | None = None) -> int:
    return _main(argv, kind="aggregator", start=START, variants=VARIANTS, doc=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())
