"""Tuning study for the LightGBM defaults, on training data only.

    .venv/bin/python -m bench.tune_lightgbm [--data data/creditcard.parquet] [--repeats 2] [--folds 5]

Which rows: only those in the *training* part of every benchmark split (stratified 80/20,
seeds 0-4). No row of any benchmark test split is ever seen here, so the defaults chosen
below cannot have been tuned on a test split.

How: repeated stratified k-fold cross-validation on those rows. Each fold runs exactly what
``fit`` does in the app (an inner 20 % validation split for early stopping and the F1-optimal
threshold), then scores the held-out fold. Per configuration we report the pooled F1 over all
held-out folds (TP/FP/FN summed, at each fold model's own threshold), the mean average
precision (PR-AUC) and fit seconds. The selection score is the mean of pooled F1 and mean
PR-AUC (F1 is the target but is noisy with few frauds; PR-AUC is threshold-free).

Configurations: one-factor-at-a-time variations around a starting point (including
``refit``: refit on all fit rows after choosing the threshold), then ``--refine`` evaluates
combinations of the settings that beat the starting point. Writes ``bench/results/tune_lightgbm.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BENCH_SEEDS = range(5)

START = {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 20, "subsample": 0.8,
         "colsample_bytree": 0.8, "reg_lambda": 1.0, "scale_pos_weight": 1.0, "early_stopping_rounds": 100,
         "n_estimators": 1000}

VARIANTS: list[dict] = [
    {},
    {"learning_rate": 0.2},  # fast/greedy (the defaults' 0.1 diverges on this data)
    {"learning_rate": 0.02, "n_estimators": 3000},
    {"num_leaves": 7},
    {"num_leaves": 31},
    {"min_child_samples": 5},
    {"min_child_samples": 50},
    {"min_child_samples": 100},
    {"colsample_bytree": 0.5},
    {"reg_lambda": 10.0},
    {"scale_pos_weight": 3.0},
    {"scale_pos_weight": 10.0},
    {"early_stopping_rounds": 0, "n_estimators": 300},
    {"early_stopping_metric": "average_precision"},
    {"refit": True},
]


def _tuning_rows(y):
    import numpy as np

    from fraud_app.models.base import stratified_split

    mask = np.ones(len(y), dtype=bool)
    for seed in BENCH_SEEDS:
        train, _ = stratified_split(len(y), y, 0.2, seed)
        in_train = np.zeros(len(y), dtype=bool)
        in_train[train] = True
        mask &= in_train
    return np.flatnonzero(mask)


def evaluate_config(params: dict, X, y, folds: int, repeats: int, kind: str = "lightgbm") -> dict:
    import numpy as np
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import RepeatedStratifiedKFold

    from fraud_app.models import create

    tp = fp = fn = 0
    aps, fit_s, iters = [], [], []
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=12345)
    for i, (train, held) in enumerate(splitter.split(np.zeros(len(y)), y)):
        model = create(kind, **params, random_state=i)
        started = time.perf_counter()
        model.fit(X.iloc[train], y[train])
        fit_s.append(time.perf_counter() - started)
        iters.append(model.fit_info.get("best_iteration", 0))
        scores = model.predict_proba(X.iloc[held])
        flagged = scores >= model.threshold
        tp += int(np.sum(flagged & (y[held] == 1)))
        fp += int(np.sum(flagged & (y[held] == 0)))
        fn += int(np.sum(~flagged & (y[held] == 1)))
        aps.append(float(average_precision_score(y[held], scores)))
    f1 = 2 * tp / (2 * tp + fp + fn)
    mean_ap = statistics.fmean(aps)
    return {"params": params, "pooled_f1": f1, "pooled_precision": tp / max(tp + fp, 1),
            "pooled_recall": tp / max(tp + fn, 1), "mean_pr_auc": mean_ap, "std_pr_auc": statistics.stdev(aps),
            "score": (f1 + mean_ap) / 2, "mean_fit_seconds": statistics.fmean(fit_s),
            "mean_best_iteration": statistics.fmean(iters), "fits": len(aps)}


def main(argv: list[str] | None = None, *, kind: str = "lightgbm", start: dict | None = None,
         variants: list[dict] | None = None, doc: str | None = None) -> int:
    start = START if start is None else start
    variants = VARIANTS if variants is None else variants
    parser = argparse.ArgumentParser(description=doc or __doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/creditcard.parquet"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--refine", action="store_true",
                        help="also evaluate combinations of the best one-factor settings")
    parser.add_argument("--out", type=Path, default=RESULTS / f"tune_{kind}.json")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2
    os.environ.pop("FRAUD_APP_DATASET", None)
    from fraud_app.data import MODEL_FEATURES, read_transactions_file

    frame = read_transactions_file(args.data)
    y_all = frame["is_fraud"].to_numpy()
    rows = _tuning_rows(y_all)
    X, y = frame.iloc[rows][MODEL_FEATURES].reset_index(drop=True), y_all[rows]
    print(f"tuning rows (in the training part of every benchmark seed): {len(rows):,}, frauds {int(y.sum())}",
          flush=True)
    load = os.getloadavg()
    started = time.perf_counter()
    results = []

    def run(variant: dict) -> dict:
        params = {**start, **variant}
        res = evaluate_config(params, X, y, args.folds, args.repeats, kind)
        res["variant"] = variant
        results.append(res)
        print(f"{json.dumps(variant):<60} F1 {res['pooled_f1']:.3f}  P {res['pooled_precision']:.3f}  "
              f"R {res['pooled_recall']:.3f}  PR-AUC {res['mean_pr_auc']:.3f}  score {res['score']:.3f}  "
              f"fit {res['mean_fit_seconds']:.1f} s  rounds {res['mean_best_iteration']:.0f}", flush=True)
        return res

    for variant in variants:
        run(variant)
    if args.refine:
        base = results[0]["score"]
        winners = [r["variant"] for r in results[1:] if r["score"] > base]
        winners.sort(key=lambda v: -next(r["score"] for r in results if r["variant"] is v))
        combined: dict = {}
        for variant in winners:
            if set(variant) & set(combined):
                continue
            combined = {**combined, **variant}
            if len(combined) > len(variant):
                run(dict(combined))
    best = max(results, key=lambda r: r["score"])
    print(f"best: {json.dumps(best['variant'])} -> {json.dumps(best['params'])}")
    report = {
        "rows": int(len(rows)), "frauds": int(y.sum()), "folds": args.folds, "repeats": args.repeats,
        "selection": "max of (pooled F1 + mean PR-AUC) / 2 over held-out folds",
        "kind": kind, "start": start, "results": results, "best": best,
        "seconds": round(time.perf_counter() - started, 1), "load_average_start": [round(x, 2) for x in load],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
