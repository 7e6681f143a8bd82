"""Round 4 of the LightGBM study (issue 13): does the out-of-fold threshold transfer to the refit model?

    .venv/bin/python -m bench.tune_refit run --part 0 --parts 2     # one process per part (cached scores)
    .venv/bin/python -m bench.tune_refit report                     # tables + bench/results/tune_refit.json

The app chooses the threshold on the out-of-fold (OOF) scores of k fold models, each fitted on
(k-1)/k of the training rows, then refits one model on all of them and scores it with that
threshold. A model fitted on more rows may score differently, so the threshold may not transfer.

Nested protocol, training rows only. For each random benchmark split (seeds 0-4) its training
part (80 %, 227,845 rows) is cut into 3 stratified outer folds (seeded by the split's seed).
Each outer fold is one *unit*: the whole procedure runs on the other two folds ("outer-train",
~152k rows) and is scored on the held-out one (~76k rows, ~131 frauds). No row of the split's
test part is used. Per unit, one set of fits serves every procedure (LightGBM defaults, one
thread, seeded like the app: ``random_state`` = the split's seed):

- 3 inner fold models (the app's ``stratified_folds(y, 3, seed)`` of outer-train) -> OOF3;
- 5 inner fold models -> OOF5;
- one refit on all outer-train rows.

Procedures (the threshold is always the app's F1-best rule, ``best_f1_threshold``, on scores the
models did not fit; the calibration is monotone, so it does not change F1 and is left out):

- ``a3_refit`` (today's app with the benchmark's 3 folds): refit, threshold from OOF3;
- ``a5_refit`` (the app's default 5 folds): refit, threshold from OOF5;
- ``b3_cvbag`` / ``b5_cvbag``: no refit; the mean P(fraud) of the fold models, threshold from their OOF;
  ``..._logodds``: the same bag averaged in log-odds (what one merged booster would give);
- ``c3_rank_train``: refit; threshold = the refit's score quantile on its own (outer-train) rows that
  flags the same fraction as the OOF3 rule flags on OOF3 (deployable);
- ``c3_rank_held``: the same fraction taken on the held-out rows' refit scores (transductive: uses the
  unlabelled rows it scores; a reference only, the app scores one transaction at a time);
- ``d3_refit_bag`` / ``d5_refit_bag``: the mean of the refit and the fold models, threshold from OOF.

Reported per procedure: held-out F1 (pooled TP/FP/FN of each unit), precision, recall, PR-AUC;
and, against ``a3_refit``, the paired differences in F1 and PR-AUC over the 15 units (mean,
standard error).
The 15 units are not independent (the five training parts overlap), so the standard error is a
lower bound of the noise; the per-seed pooled differences (5 values) are given too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(os.environ.get("TUNE_REFIT_CACHE", "/tmp/tune_refit"))
SEEDS = range(5)
OUTER = 3
INNER = (3, 5)
BASELINE = "a3_refit"
#: The procedure that became LightGBM's default (``final_model="fold_bag"`` with the app's 5 folds).
NEW_DEFAULT = "b5_cvbag_logodds"


def units() -> list[tuple[int, int]]:
    """(seed, outer fold) of every unit, in run order."""
    return [(seed, o) for seed in SEEDS for o in range(OUTER)]


def load(path: Path):
    from fraud_app.data import MODEL_FEATURES, read_transactions_file

    frame = read_transactions_file(path)
    return frame, frame[MODEL_FEATURES].to_numpy(dtype=float), frame["is_fraud"].to_numpy().astype("int8")


def unit_rows(frame, y: np.ndarray, seed: int, outer: int) -> tuple[np.ndarray, np.ndarray]:
    """(outer-train, outer-held) positions in ``frame``: both inside the split's training part."""
    from fraud_app.models.base import stratified_folds
    from fraud_app.training.splits import train_test_indices

    train, _ = train_test_indices(frame, "random", 0.2, seed)
    fit, held = stratified_folds(y[train], OUTER, seed)[outer]
    return train[fit], train[held]


def lightgbm_fitter(seed: int):
    """fit(X, y) -> predict(X): the app's LightGBM kind with its defaults, one thread, no calibration."""
    from fraud_app.models import create
    from fraud_app.models.base import Reporter

    def fit(X: np.ndarray, y: np.ndarray):
        model = create("lightgbm", random_state=seed, n_jobs=1, calibration="none")
        model.fit_estimator(X, y, None, None, Reporter())
        return model.predict_scores

    return fit


#: XGBoost as in the anchor runs and ``bench/tune_xgboost.py``, but one thread.
XGB_PARAMS = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "eta": 0.1,
              "max_depth": 6, "min_child_weight": 1.0, "subsample": 0.8, "colsample_bytree": 0.8,
              "max_delta_step": 1.0, "lambda": 1.0, "nthread": 1, "verbosity": 0}
XGB_ROUNDS = 300


def xgboost_fitter(seed: int):
    """fit(X, y) -> predict(X) for XGBoost (``pip install xgboost-cpu``; not an app dependency)."""
    import xgboost as xgb

    def fit(X: np.ndarray, y: np.ndarray):
        booster = xgb.train({**XGB_PARAMS, "seed": seed}, xgb.DMatrix(X, label=y), num_boost_round=XGB_ROUNDS)
        return lambda Z: booster.predict(xgb.DMatrix(Z))

    return fit


#: kind -> (fitter factory, inner fold counts).
KINDS = {"lightgbm": (lightgbm_fitter, INNER), "xgboost": (xgboost_fitter, (3,))}


def cache_path(seed: int, outer: int, kind: str) -> Path:
    suffix = "" if kind == "lightgbm" else f"_{kind}"
    return CACHE / f"seed{seed}_outer{outer}{suffix}.npz"


def fit_unit(frame, X: np.ndarray, y: np.ndarray, seed: int, outer: int, kind: str = "lightgbm") -> dict:
    """Every fit of one unit; returns the raw scores the procedures need."""
    from fraud_app.models.base import stratified_folds

    factory, inner = KINDS[kind]
    fitter = factory(seed)
    fit, held = unit_rows(frame, y, seed, outer)
    Xf, yf, Xh = X[fit], y[fit], X[held]
    out: dict = {"y_held": y[held], "seconds": {}}
    for k in inner:
        oof = np.empty(len(yf))
        held_scores = []
        started = time.perf_counter()
        for rows, inner_held in stratified_folds(yf, k, seed):
            predict = fitter(Xf[rows], yf[rows])
            oof[inner_held] = predict(Xf[inner_held])
            held_scores.append(predict(Xh))
        out["seconds"][f"folds{k}"] = (time.perf_counter() - started) / k
        out[f"oof{k}"] = oof
        out[f"held_folds{k}"] = np.array(held_scores)
    started = time.perf_counter()
    predict = fitter(Xf, yf)
    out["seconds"]["refit"] = time.perf_counter() - started
    out["held_refit"] = predict(Xh)
    out["train_refit"] = predict(Xf)
    out["y_fit"] = yf
    return out


def run(args: argparse.Namespace) -> int:
    frame, X, y = load(args.data)
    CACHE.mkdir(parents=True, exist_ok=True)
    for i, (seed, outer) in enumerate(units()):
        if i % args.parts != args.part:
            continue
        path = cache_path(seed, outer, args.kind)
        if path.exists():
            continue
        load_before = round(os.getloadavg()[0], 2)
        started = time.perf_counter()
        res = fit_unit(frame, X, y, seed, outer, args.kind)
        seconds = res.pop("seconds")
        np.savez(path, load=load_before, wall=time.perf_counter() - started,
                 **{f"s_{k}": v for k, v in seconds.items()}, **res)
        print(f"{args.kind} seed {seed} outer {outer}: {time.perf_counter() - started:.0f} s (load {load_before}); "
              + ", ".join(f"{k} {v:.1f} s/fit" for k, v in seconds.items()), flush=True)
    return 0


def counts(y: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """(TP, FP, FN)."""
    return np.array([np.sum(flagged & (y == 1)), np.sum(flagged & (y == 0)), np.sum(~flagged & (y == 1))])


def f1_of(c: np.ndarray) -> float:
    tp, fp, fn = c
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def procedures(d) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (held-out scores, flags) of every procedure, from one unit's cached scores."""
    from fraud_app.models import best_f1_threshold
    from fraud_app.models.calibration import logit, sigmoid

    yf, out = d["y_fit"], {}
    for k in (k for k in INNER if f"oof{k}" in d):
        oof, folds = d[f"oof{k}"], d[f"held_folds{k}"]
        t = best_f1_threshold(yf, oof)
        refit, bag = d["held_refit"], folds.mean(axis=0)
        both = np.vstack([folds, refit[None]]).mean(axis=0)
        out[f"a{k}_refit"] = (refit, refit >= t)
        out[f"b{k}_cvbag"] = (bag, bag >= t)
        # The bag as one booster would compute it: the mean log-odds (exact TreeSHAP sums).
        logit_bag = sigmoid(logit(folds).mean(axis=0))
        out[f"b{k}_cvbag_logodds"] = (logit_bag, logit_bag >= best_f1_threshold(yf, oof))
        out[f"d{k}_refit_bag"] = (both, both >= t)
        if k == 3:
            share = float(np.mean(oof >= t))
            t_train = np.quantile(d["train_refit"], 1 - share)
            t_held = np.quantile(refit, 1 - share)
            out["c3_rank_train"] = (refit, refit >= t_train)
            out["c3_rank_held"] = (refit, refit >= t_held)
    return out


def paired(by_unit: dict, other: dict, keys: list) -> dict:
    """Mean ± standard error of the per-unit F1 and PR-AUC differences against ``other``."""
    out = {}
    for metric in ("f1", "pr_auc"):
        diff = np.array([by_unit[u][metric] - other[u][metric] for u in keys])
        out[metric] = {"mean": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
                       "wins": int(np.sum(diff > 0)), "losses": int(np.sum(diff < 0))}
    return out


def report(args: argparse.Namespace) -> int:
    from sklearn.metrics import average_precision_score

    per_unit: dict[str, dict[tuple[int, int], dict]] = {}
    loads, seconds, done = [], {}, []
    for seed, outer in units():
        for kind, prefix in (("lightgbm", ""), ("xgboost", "xgb_")):
            path = cache_path(seed, outer, kind)
            if not path.exists():
                continue
            d = np.load(path)
            if kind == "lightgbm":
                done.append((seed, outer))
            loads.append(float(d["load"]))
            for key in (k for k in d.files if k.startswith("s_")):
                seconds.setdefault(f"{kind} {key[2:]}", []).append(float(d[key]))
            y = d["y_held"]
            for name, (scores, flagged) in procedures(d).items():
                c = counts(y, flagged)
                per_unit.setdefault(prefix + name, {})[(seed, outer)] = {
                    "seed": seed, "outer": outer, "counts": c.tolist(), "f1": f1_of(c),
                    "pr_auc": float(average_precision_score(y, scores))}
    if BASELINE not in per_unit:
        print("no LightGBM unit cached yet", file=sys.stderr)
        return 1
    base = per_unit[BASELINE]
    results = {}
    for name, by_unit in per_unit.items():
        keys = [u for u in by_unit if u in base]
        rows = [by_unit[u] for u in keys]
        f1 = np.array([r["f1"] for r in rows])
        diff = f1 - np.array([base[u]["f1"] for u in keys])
        auc_diff = np.array([by_unit[u]["pr_auc"] - base[u]["pr_auc"] for u in keys])
        pooled = np.sum([r["counts"] for r in rows], axis=0)
        by_seed: dict[int, list[np.ndarray]] = {}
        for u in keys:
            pair = by_seed.setdefault(u[0], [np.zeros(3), np.zeros(3)])
            pair[0] += by_unit[u]["counts"]
            pair[1] += base[u]["counts"]
        seed_diff = np.array([f1_of(a) - f1_of(b) for a, b in by_seed.values()])
        results[name] = {
            "units": len(rows), "mean_f1": float(f1.mean()),
            "sd_f1": float(f1.std(ddof=1)) if len(f1) > 1 else None,
            "pooled_f1": f1_of(pooled), "pooled_precision": float(pooled[0] / max(pooled[0] + pooled[1], 1)),
            "pooled_recall": float(pooled[0] / max(pooled[0] + pooled[2], 1)),
            "mean_pr_auc": float(np.mean([r["pr_auc"] for r in rows])),
            f"diff_f1_vs_{BASELINE}": {
                "mean": float(diff.mean()),
                "se": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else None,
                "wins_ties_losses": [int(np.sum(diff > 0)), int(np.sum(diff == 0)), int(np.sum(diff < 0))],
                "per_seed_pooled": [round(float(x), 4) for x in seed_diff],
            },
            f"diff_pr_auc_vs_{BASELINE}": {
                "mean": float(auc_diff.mean()),
                "se": float(auc_diff.std(ddof=1) / np.sqrt(len(auc_diff))) if len(auc_diff) > 1 else None,
                "wins": int(np.sum(auc_diff > 0)),
            },
            f"diff_vs_{NEW_DEFAULT}": paired(by_unit, per_unit[NEW_DEFAULT], keys),
            "per_unit": rows,
        }
        dd, da = results[name][f"diff_f1_vs_{BASELINE}"], results[name][f"diff_pr_auc_vs_{BASELINE}"]
        print(f"{name:<22} n={len(rows):>2}  F1 {f1.mean():.4f} (diff {dd['mean']:+.4f} ± {dd['se'] or 0:.4f}, "
              f"W/T/L {dd['wins_ties_losses']}, per seed {dd['per_seed_pooled']})  PR-AUC "
              f"{results[name]['mean_pr_auc']:.4f} (diff {da['mean']:+.4f} ± {da['se'] or 0:.4f}, {da['wins']} wins)",
              flush=True)
    print(f"against {NEW_DEFAULT}:")
    for name, res in results.items():
        d = res[f"diff_vs_{NEW_DEFAULT}"]
        print(f"  {name:<22} F1 {d['f1']['mean']:+.4f} ± {d['f1']['se']:.4f} ({d['f1']['wins']} wins, "
              f"{d['f1']['losses']} losses)  PR-AUC {d['pr_auc']['mean']:+.4f} ± {d['pr_auc']['se']:.4f}")
    out = {
        "units": [list(u) for u in done], "outer_folds": OUTER, "inner_folds": list(INNER),
        "rows": "outer folds of the training part of each random benchmark split (seeds 0-4); no test row",
        "protocol": __doc__.split("Nested protocol, ", 1)[1].split("\n\nReported", 1)[0].replace("\n", " "),
        "baseline": BASELINE, "new_default": NEW_DEFAULT, "xgboost_params": {**XGB_PARAMS, "rounds": XGB_ROUNDS}, "results": results,
        "fit_seconds_mean": {k: round(float(np.mean(v)), 2) for k, v in seconds.items()},
        "load_average_1min_at_unit_start": loads,
        "load_average_at_report": [round(x, 2) for x in os.getloadavg()],
        "note": "one thread per fit, 2 processes, on a shared 2-core machine: seconds are noisy",
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from bench.tune_screen import staged_main

    def kind_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--kind", choices=tuple(KINDS), default="lightgbm", help="run: which kind to fit")

    return staged_main(argv, __doc__, run, report, RESULTS / "tune_refit.json", kind_option)


if __name__ == "__main__":
    raise SystemExit(main())
