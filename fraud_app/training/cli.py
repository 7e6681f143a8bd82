"""``python -m fraud_app train`` and ``python -m fraud_app evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fraud_app.cli import command


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="KIND",
                        help="model kind: decision_tree, lightgbm, random_forest or aggregator")
    parser.add_argument("--name", help="save under this name (letters, digits, '_' or '-'; up to 64)")
    parser.add_argument("--no-save", action="store_true", help="train and evaluate without saving")
    parser.add_argument("--overwrite", action="store_true", help="replace a saved model of the same name")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the model (default 0)")
    parser.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                        help="a hyper-parameter over the default (JSON value), e.g. --param num_leaves=31")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")


class _ProgressPrinter:
    """Prints stage changes and every 10 % of the fit to stderr."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.step = -1

    def __call__(self, event: Any) -> None:
        step = int(event.fraction * 10)
        if event.stage != self.stage or (event.stage == "fit" and step != self.step):
            print(f"[{event.fraction:4.0%}] {event.stage}: {event.message}", file=sys.stderr, flush=True)
        self.stage, self.step = event.stage, step


def _table(result: Any) -> str:
    m = result.metrics
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    where = f"saved as {result.name!r}" if result.saved else "not saved"
    rows = [
        ("model", f"{result.kind} ({where})"),
        ("seed", str(result.seed)),
        ("train / test rows", f"{result.n_train:,} / {m['n_test']:,} ({m['n_test_fraud']} frauds in test)"),
        ("threshold", f"{m['threshold']:.4f} (chosen on the validation split)"),
        ("F1", f"{m['f1']:.4f}"),
        ("precision", f"{m['precision']:.4f}"),
        ("recall", f"{m['recall']:.4f}"),
        ("PR-AUC (AP)", f"{m['pr_auc']:.4f}"),
        ("ROC-AUC", f"{m['roc_auc']:.4f}"),
        ("confusion", f"TN {tn:,}  FP {fp:,}  FN {fn:,}  TP {tp:,}"),
        ("fit time", f"{result.fit_seconds:.1f} s (total {result.duration_s:.1f} s)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@command("train", _configure_train)
def run_train(args: argparse.Namespace) -> int:
    """train one model, evaluate it on a held-out 20 % and save it"""
    from fraud_app.data import load_transactions
    from fraud_app.training import TrainingPipeline

    if not args.no_save and not args.name:
        raise ValueError("--name is required (or pass --no-save)")
    pipeline = TrainingPipeline(args.model, dict(args.param), name=args.name, save=not args.no_save,
                                overwrite=args.overwrite, seed=args.seed)
    frame = load_transactions()
    result = pipeline.run(frame, progress=None if args.json else _ProgressPrinter())
    if args.json:
        print(result.to_json(indent=2))
    else:
        print(_table(result))
    return 0


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", default="0-4", help="seeds, e.g. '0-4' (default) or '0,1'")
    parser.add_argument("--models", default=None,
                        help="comma-separated kinds (default: decision_tree,lightgbm,random_forest,aggregator)")
    parser.add_argument("--json-out", metavar="PATH", help="also write the full report as JSON here")


@command("evaluate", _configure_evaluate)
def run_evaluate(args: argparse.Namespace) -> int:
    """the multi-seed benchmark of every model kind (stratified 80/20, mean ± std)"""
    from fraud_app.data import load_transactions
    from fraud_app.models import model_class
    from fraud_app.models.jsonutil import write_json_atomic
    from fraud_app.training.benchmark import DEFAULT_KINDS, format_table, parse_seeds, run_benchmark

    seeds = parse_seeds(args.seeds)
    kinds = [k.strip() for k in args.models.split(",") if k.strip()] if args.models else list(DEFAULT_KINDS)
    for kind in kinds:
        model_class(kind)
    frame = load_transactions()
    report = run_benchmark(frame, kinds, seeds, echo=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(report))
    if args.json_out:
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, report)
        print(f"wrote {path}")
    return 0
