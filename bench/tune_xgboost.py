"""Does XGBoost earn a place as a model kind? A study on training rows only, beside LightGBM's.

    .venv/bin/python -m bench.tune_xgboost [--data data/creditcard.parquet] [--folds 5]

Same rows, folds and measures as ``bench/tune_lightgbm.py``: the rows in the training part of
every benchmark split (no test row of any split), a stratified 5-fold with the same seed, and on
the pooled out-of-fold scores the PR-AUC, the best F1 and the selection score (their mean).
XGBoost is fitted here directly (``xgboost.train``, ``nthread=2``), not as an app kind: the
question is whether it would beat the LightGBM defaults by more than their seed spread
(``bench/results/tune_lightgbm.json``). If it does not, it is not added (a heavy dependency
without a measured gain). Writes ``bench/results/tune_xgboost.json``.

The configuration that did well in our earlier anchor runs (``max_delta_step=1``, depth 6,
learning rate 0.1, 300 rounds) and a shallower one: the machine is shared. The JSON is written
after each configuration, with the decision so far.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.tune_lightgbm import FOLD_SEED, RESULTS, load_tuning_data, summarize

BASE = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "eta": 0.1,
        "max_depth": 6, "min_child_weight": 1.0, "subsample": 0.8, "colsample_bytree": 0.8,
        "max_delta_step": 1.0, "lambda": 1.0, "nthread": 2, "seed": 0, "verbosity": 0}
ROUNDS = 300
#: Two configurations only: on the shared machine one costs about 12 minutes (150 s per fold under
#: a load average of 10).
VARIANTS: list[dict] = [
    {},
    {"max_depth": 4},
]


def oof_scores(params: dict, rounds: int, X, y, folds: int):
    import numpy as np
    import xgboost as xgb

    from fraud_app.models.base import stratified_folds

    scores = np.empty(len(y))
    for fit, held in stratified_folds(y, folds, FOLD_SEED):
        booster = xgb.train(params, xgb.DMatrix(X[fit], label=y[fit]), num_boost_round=rounds)
        scores[held] = booster.predict(xgb.DMatrix(X[held]))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/creditcard.parquet"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "tune_xgboost.json")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2
    import xgboost

    X, y = load_tuning_data(args.data)
    print(f"tuning rows: {len(y):,}, frauds {int(y.sum())}; xgboost {xgboost.__version__}", flush=True)
    load = os.getloadavg()
    started = time.perf_counter()
    results = []
    for variant in VARIANTS:
        v = dict(variant)
        rounds = v.pop("rounds", ROUNDS)
        params = {**BASE, **v}
        t0 = time.perf_counter()
        scores = oof_scores(params, rounds, X, y, args.folds)
        res = {"variant": variant, "params": params, "rounds": rounds, **summarize(y, scores),
               "fit_seconds_per_fold": (time.perf_counter() - t0) / args.folds}
        results.append(res)
        print(f"{json.dumps(variant):<45} PR-AUC {res['oof_pr_auc']:.4f}  best F1 {res['oof_best_f1']:.4f}  "
              f"score {res['score']:.4f}  {res['fit_seconds_per_fold']:.1f} s/fold", flush=True)
        write_report(args, X, y, results, load, started, done=len(results) == len(VARIANTS))
    return 0


def write_report(args, X, y, results: list[dict], load, started: float, done: bool) -> None:
    import xgboost

    lightgbm = json.loads((RESULTS / "tune_lightgbm.json").read_text())
    base_score = lightgbm["decision"]["base_scores_over_seeds"][0]
    spread = lightgbm["decision"]["seed_spread"]
    best = max(results, key=lambda r: r["score"])
    earns = best["score"] - base_score > spread
    decision = {"lightgbm_default_score": base_score, "lightgbm_seed_spread": spread,
                "best_xgboost": best["variant"], "best_xgboost_score": best["score"],
                "gain_over_lightgbm": best["score"] - base_score, "earns_its_place": earns,
                "rule": "add XGBoost as a kind only if its best score beats the LightGBM defaults by more than "
                        "their seed spread, on the same rows and folds"}
    print(f"best XGBoost so far {best['score']:.4f} vs LightGBM defaults {base_score:.4f} (spread {spread:.4f}): "
          f"{'earns' if earns else 'does not earn'} its place", flush=True)
    report = {"rows": int(len(y)), "frauds": int(y.sum()), "folds": args.folds, "fold_seed": FOLD_SEED,
              "xgboost_version": xgboost.__version__, "complete": done,
              "variants_planned": VARIANTS,
              "protocol": "out-of-fold scores of a stratified k-fold on rows in the training part of every "
                          "benchmark split (the rows and folds of bench/tune_lightgbm.py)",
              "selection": "max of (out-of-fold PR-AUC + out-of-fold best F1) / 2",
              "results": results, "decision": decision, "seconds": round(time.perf_counter() - started, 1),
              "load_average_start": [round(x, 2) for x in load],
              "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
