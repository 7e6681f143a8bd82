"""Round 3 of the LightGBM study (issue 13): a cheap screening of fits, threshold rules and seed bags.

    .venv/bin/python -m bench.tune_screen run --part 0 --parts 2     # one process per part (cached scores)
    .venv/bin/python -m bench.tune_screen report                     # tables + bench/results/tune_screen.json

Which rows: the intersection of the *training* parts of the five stratified random benchmark
splits (seeds 0-4). The time split is left out of the intersection (it is reported separately
by the benchmark), which gives more rows and frauds than the earlier studies' 74,450 / 139. No
row of any random benchmark test split is used.

How: one stratified 3-fold split (fixed seed) shared by every candidate, so candidates are
compared on the same rows (paired). For each candidate the app's own ``cross_val_scores`` gives
out-of-fold P(fraud); the kind's calibration is fitted on them (as in ``fit``). Reported:

- out-of-fold PR-AUC and the best F1 over thresholds (flattering: the threshold is chosen on the
  same scores);
- **cross-fold F1** for each threshold rule: the threshold is chosen on the out-of-fold scores of
  the other folds and applied to the held-out fold; TP/FP/FN are pooled over folds. This is what
  the app does (a threshold chosen on some rows, applied to rows it did not see), so it is the
  honest estimate of the F1 a rule gives;
- seed bags: the mean of the calibrated out-of-fold scores of k LightGBMs with different seeds
  (what the aggregator computes).

Threshold rules: ``best`` (the app's F1-best threshold), ``bootstrap`` (median of the F1-best
thresholds of 50 bootstrap resamples), ``smooth`` (the F1 curve over log-odds thresholds smoothed
with a Gaussian of 0.25 log-odds, then its maximum).
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
CACHE = Path(os.environ.get("TUNE_SCREEN_CACHE", "/tmp/tune_screen"))
FOLDS = 3
FOLD_SEED = 12345
BENCH_SEEDS = range(5)
LGBM = "lightgbm"

#: (label, params over the LightGBM defaults). Every fit uses one thread (shared machine).
CANDIDATES: list[tuple[str, dict]] = [
    ("defaults (seed 0)", {"random_state": 0}),
    ("defaults (seed 1)", {"random_state": 1}),
    ("defaults (seed 2)", {"random_state": 2}),
    ("lr 0.02 x 750 rounds", {"learning_rate": 0.02, "n_estimators": 750}),
    ("31 leaves, 20 rows/leaf", {"num_leaves": 31, "min_child_samples": 20}),
    ("scale_pos_weight 10", {"scale_pos_weight": 10.0}),
    ("scale_pos_weight 577 (is_unbalance)", {"scale_pos_weight": 577.0}),
    ("lr 0.02 x 750, 31 leaves, 20 rows/leaf",
     {"learning_rate": 0.02, "n_estimators": 750, "num_leaves": 31, "min_child_samples": 20}),
    ("defaults (seed 3)", {"random_state": 3}),
    ("defaults (seed 4)", {"random_state": 4}),
]
#: Seed bags: label -> candidate labels whose calibrated scores are averaged.
BAGS: dict[str, list[str]] = {
    "bag of 2 (seeds 0-1)": [f"defaults (seed {s})" for s in range(2)],
    "bag of 3 (seeds 0-2)": [f"defaults (seed {s})" for s in range(3)],
    "bag of 5 (seeds 0-4)": [f"defaults (seed {s})" for s in range(5)],
    "defaults + lr 0.02 x 750": ["defaults (seed 0)", "lr 0.02 x 750 rounds"],
}


def tuning_rows(frame) -> np.ndarray:
    """Positions of the rows in the training part of every random benchmark split (seeds 0-4)."""
    from fraud_app.training.splits import train_test_indices

    mask = np.ones(len(frame), dtype=bool)
    for seed in BENCH_SEEDS:
        train, _ = train_test_indices(frame, "random", 0.2, seed)
        in_train = np.zeros(len(frame), dtype=bool)
        in_train[train] = True
        mask &= in_train
    return np.flatnonzero(mask)


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from fraud_app.data import MODEL_FEATURES, read_transactions_file

    frame = read_transactions_file(path)
    rows = tuning_rows(frame)
    return frame.iloc[rows][MODEL_FEATURES].to_numpy(dtype=float), frame["is_fraud"].to_numpy()[rows].astype("int8")


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


def run(args: argparse.Namespace) -> int:
    """Fit this part's candidates; cache their raw out-of-fold scores (one .npz per candidate)."""
    from fraud_app.models import create
    from fraud_app.models.base import Reporter, stratified_folds

    X, y = load(args.data)
    folds = stratified_folds(y, FOLDS, FOLD_SEED)
    CACHE.mkdir(parents=True, exist_ok=True)
    for i, (label, params) in enumerate(CANDIDATES):
        if i % args.parts != args.part:
            continue
        out = CACHE / f"{_slug(label)}.npz"
        if out.exists():
            continue
        model = create(LGBM, **{**params, "n_jobs": 1, "calibration": "none"})
        load_before = round(os.getloadavg()[0], 2)
        started = time.perf_counter()
        raw = model.cross_val_scores(X, y, folds, Reporter())
        seconds = time.perf_counter() - started
        np.savez(out, raw=raw, seconds=seconds, load=load_before)
        print(f"{label:<45} {seconds / FOLDS:.1f} s/fold (load {load_before})", flush=True)
    return 0


def cross_fold_f1(y: np.ndarray, scores: np.ndarray, folds: list, rule) -> dict:
    """Threshold chosen by ``rule`` on the other folds' scores, applied to each held-out fold; pooled."""
    tp = fp = fn = 0
    for _, held in folds:
        other = np.setdiff1d(np.arange(len(y)), held, assume_unique=True)
        t = rule(y[other], scores[other])
        flagged = scores[held] >= t
        tp += int(np.sum(flagged & (y[held] == 1)))
        fp += int(np.sum(flagged & (y[held] == 0)))
        fn += int(np.sum(~flagged & (y[held] == 1)))
    return {"f1": 2 * tp / (2 * tp + fp + fn), "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1)}


def bootstrap_threshold(y: np.ndarray, s: np.ndarray, n: int = 50) -> float:
    from fraud_app.models import best_f1_threshold

    rng = np.random.default_rng(0)
    picks = [best_f1_threshold(y[idx], s[idx]) for idx in (rng.integers(0, len(y), len(y)) for _ in range(n))]
    return float(np.median(picks))


def smooth_threshold(y: np.ndarray, s: np.ndarray, width: float = 0.25) -> float:
    from fraud_app.models.calibration import logit, sigmoid

    z = logit(s)
    grid = np.linspace(np.quantile(z, 0.99), z.max(), 400)
    pos = int(y.sum())
    f1 = np.array([2 * np.sum((z >= g) & (y == 1)) / max(np.sum(z >= g) + pos, 1) for g in grid])
    kernel = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / width) ** 2)
    smoothed = kernel @ f1 / kernel.sum(axis=1)
    return float(sigmoid(grid[int(np.argmax(smoothed))]))


def report(args: argparse.Namespace) -> int:
    from sklearn.metrics import average_precision_score

    from fraud_app.models import best_f1_threshold
    from fraud_app.models.base import stratified_folds
    from fraud_app.models.calibration import fit_calibration

    X, y = load(args.data)
    folds = stratified_folds(y, FOLDS, FOLD_SEED)
    rules = {"best": best_f1_threshold, "bootstrap": bootstrap_threshold, "smooth": smooth_threshold}
    calibrated, results = {}, {}
    for label, params in CANDIDATES:
        path = CACHE / f"{_slug(label)}.npz"
        if not path.exists():
            print(f"missing {label} (run its part first)", file=sys.stderr)
            continue
        data = np.load(path)
        calibrated[label] = fit_calibration("sigmoid", data["raw"], y)(data["raw"])
        results[label] = {"params": params, "fit_seconds_per_fold": round(float(data["seconds"]) / FOLDS, 1),
                          "load_average_1min": float(data["load"])}
    for bag, members in BAGS.items():
        if all(m in calibrated for m in members):
            calibrated[bag] = np.mean([calibrated[m] for m in members], axis=0)
            results[bag] = {"members": members}
    for label, scores in calibrated.items():
        res = results[label]
        res["oof_pr_auc"] = float(average_precision_score(y, scores))
        t = best_f1_threshold(y, scores)
        res["oof_best_f1"] = 2 * int(np.sum((scores >= t) & (y == 1))) / (int(np.sum(scores >= t)) + int(y.sum()))
        res["cross_fold"] = {name: cross_fold_f1(y, scores, folds, rule) for name, rule in rules.items()}
        cf = res["cross_fold"]
        print(f"{label:<45} PR-AUC {res['oof_pr_auc']:.4f}  best F1 {res['oof_best_f1']:.4f}  cross-fold F1: "
              + "  ".join(f"{k} {v['f1']:.4f}" for k, v in cf.items()), flush=True)
    seeds = [results[f"defaults (seed {s})"] for s in range(5) if f"defaults (seed {s})" in results]
    noise = {m: [r[m] for r in seeds] for m in ("oof_pr_auc", "oof_best_f1")}
    noise["cross_fold_best_f1"] = [r["cross_fold"]["best"]["f1"] for r in seeds]
    out = {
        "rows": int(len(y)), "frauds": int(y.sum()), "folds": FOLDS, "fold_seed": FOLD_SEED,
        "rows_used": "intersection of the training parts of the random benchmark splits (seeds 0-4)",
        "protocol": __doc__.split("How: ", 1)[1].split("\n\n", 1)[0].replace("\n", " "),
        "threshold_rules": {"best": "F1-best on the other folds' scores (the app's rule)",
                            "bootstrap": "median of 50 bootstrap F1-best thresholds",
                            "smooth": "maximum of the F1 curve smoothed over 0.25 log-odds"},
        "results": results,
        "seed_noise_of_the_defaults": {k: {"values": v, "spread": max(v) - min(v)} for k, v in noise.items()},
        "load_average_at_report": [round(x, 2) for x in os.getloadavg()],
        "note": "fit seconds are per fold, one thread, on a shared 2-core machine (load average recorded)",
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def staged_main(argv: list[str] | None, doc: str, run_step, report_step, out: Path, add_arguments=None) -> int:
    """The CLI of a two-step study: ``run --part P --parts N`` (cached fits), then ``report`` (JSON).

    ``add_arguments(parser)`` adds a study's own options; ``run_step``/``report_step`` take the
    parsed arguments and return the exit code.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("run", "report"))
    parser.add_argument("--data", type=Path, default=Path("data/creditcard.parquet"))
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    parser.add_argument("--out", type=Path, default=out)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2
    os.environ.pop("FRAUD_APP_DATASET", None)
    return run_step(args) if args.step == "run" else report_step(args)


def main(argv: list[str] | None = None) -> int:
    return staged_main(argv, __doc__, run, report, RESULTS / "tune_screen.json")


if __name__ == "__main__":
    raise SystemExit(main())
