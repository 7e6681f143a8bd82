"""The multi-seed benchmark: every kind on 80/20 splits (stratified random or time-ordered), mean ± std.

Used by ``python -m fraud_app evaluate`` and ``python -m bench.bench_models``.
"""

from __future__ import annotations

import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from fraud_app.models.base import DEFAULT_FOLDS
from fraud_app.training.pipeline import TrainingPipeline

log = logging.getLogger(__name__)

#: The kinds in the benchmark, baseline first.
DEFAULT_KINDS: tuple[str, ...] = ("decision_tree", "lightgbm", "random_forest", "aggregator")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
#: The per-run figures summarised as mean ± std.
SUMMARY_METRICS: tuple[str, ...] = ("f1", "precision", "recall", "pr_auc", "roc_auc", "brier", "fit_seconds")


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0..4]; ``"0,2,5"`` -> [0, 2, 5]."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"invalid seeds {text!r}: use e.g. '0-4' or '0,1,2'") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"invalid seeds {text!r}: use non-negative integers, e.g. '0-4'")
    return sorted(set(seeds))


def _mean_std(values: Sequence[float]) -> dict[str, float | None]:
    clean = [float(v) for v in values if v is not None]
    if not clean:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(clean), "std": statistics.stdev(clean) if len(clean) > 1 else 0.0}


def run_benchmark(frame: pd.DataFrame, kinds: Sequence[str] = DEFAULT_KINDS,
                  seeds: Sequence[int] = DEFAULT_SEEDS, params: dict[str, dict[str, Any]] | None = None,
                  echo: Callable[[str], None] | None = None, *, split: str = "random",
                  threshold_method: str = "oof", folds: int = DEFAULT_FOLDS) -> dict[str, Any]:
    """Train and evaluate each kind on each seed's 80/20 split; return the runs and summary.

    ``split="random"``: a stratified split per seed. ``split="time"``: the same time-ordered split
    for every seed (train on the earliest 80 %, test on the latest 20 %); the seed still seeds the
    folds and the model. The threshold is chosen inside ``fit`` (``threshold_method``, out-of-fold
    by default), on training rows only. Nothing is saved. ``fit_seconds`` is the wall time of
    ``fit`` on the training part (with out-of-fold thresholds: the k fold fits and the final fit).
    """
    def pipeline(kind: str, seed: int = 0) -> TrainingPipeline:
        return TrainingPipeline(kind, (params or {}).get(kind), seed=seed, split=split,
                                threshold_method=threshold_method, folds=folds)

    for kind in kinds:  # fail fast on a bad kind or parameter
        pipeline(kind)
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in seeds:
        for kind in kinds:
            result = pipeline(kind, seed).run(frame)
            m = result.metrics
            run = {"kind": kind, "seed": seed, "split": split, "fit_seconds": result.fit_seconds,
                   **{k: m[k] for k in ("f1", "precision", "recall", "pr_auc", "roc_auc", "brier", "log_loss",
                                        "ece", "threshold", "confusion_matrix", "n_test", "n_test_fraud")},
                   "n_train": result.n_train, "reliability": result.reliability, "fit_info": result.model.fit_info}
            runs.append(run)
            if echo:
                echo(f"{split:<6} seed {seed}  {kind:<14} F1 {m['f1']:.3f}  P {m['precision']:.3f}  "
                     f"R {m['recall']:.3f}  PR-AUC {m['pr_auc']:.3f}  Brier {m['brier']:.6f}  "
                     f"fit {result.fit_seconds:.1f} s")
    summary = {}
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        summary[kind] = {metric: _mean_std([r[metric] for r in mine]) for metric in SUMMARY_METRICS}
        summary[kind]["params"] = pipeline(kind).params
    how = ("stratified 80/20 train/test split per seed" if split == "random" else
           "time-ordered split: train on the earliest 80% of transactions, test on the latest 20% (same rows "
           "for every seed; the seed seeds the folds and the model)")
    chosen = (f"threshold and calibration chosen inside fit on out-of-fold scores of a stratified {folds}-fold "
              f"split of the training part, then the final model (LightGBM, also as an aggregator member: the "
              f"bag of its fold models; the other kinds: a fit on the whole training part)"
              if threshold_method == "oof" else
              "threshold chosen inside fit on a stratified 20% validation split of the training part")
    return {
        "protocol": f"{how}; {chosen}; metrics on the test part",
        "split": split, "threshold_method": threshold_method, "folds": folds if threshold_method == "oof" else None,
        "seeds": list(seeds), "kinds": list(kinds),
        "data": {"rows": int(len(frame)), "frauds": int(frame["is_fraud"].sum()),
                 "source": str(frame.attrs.get("source", "memory")),
                 "fingerprint": frame.attrs.get("fingerprint")},
        "summary": summary, "runs": runs,
        "total_seconds": round(time.perf_counter() - started, 1),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": _cpu_count(), "load_average": _load_average()},
    }


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _load_average() -> list[float] | None:
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def format_table(report: dict[str, Any]) -> str:
    """The summary as a Markdown table (mean ± std over seeds)."""
    header = "| model | F1 | precision | recall | PR-AUC | ROC-AUC | Brier | fit seconds |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for kind, stats in report["summary"].items():
        cells = []
        for metric in SUMMARY_METRICS:
            s = stats[metric]
            digits = {"fit_seconds": 1, "brier": 5}.get(metric, 3)
            cells.append("n/a" if s["mean"] is None else f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["DEFAULT_KINDS", "DEFAULT_SEEDS", "format_table", "parse_seeds", "run_benchmark"]
