"""``python -m fraud_app train``, ``evaluate`` and ``models`` (list, status, activate, compare)."""

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


def hyperparameter_help() -> str:
    """Every kind's hyper-parameters, read from their ``Params`` declarations (doc, default, limits)."""
    from fraud_app.models import model_class, model_kinds

    lines = ["hyper-parameters (--param KEY=VALUE), declared once in each kind's Params:"]
    for kind in model_kinds():
        cls = model_class(kind)
        if cls.Params is None:
            continue
        lines.append(f"  {kind}:")
        lines.extend(f"    {cls.Params.describe(name)}" for name in cls.Params.names())
    return "\n".join(lines)


def _kinds_text() -> str:
    from fraud_app.models import model_kinds

    return ", ".join(model_kinds())


def _add_protocol_options(parser: argparse.ArgumentParser, split_choices: tuple[str, ...]) -> None:
    parser.add_argument("--split", choices=split_choices, default="random",
                        help="test rows: 'random' = stratified 80/20 by seed (the assignment's), 'time' = train on "
                             "the earliest 80%% of transactions, test on the latest 20%%"
                             + (", 'both' = one table each" if "both" in split_choices else "") + " (default random)")
    parser.add_argument("--threshold", dest="threshold_method", choices=("oof", "validation"), default="oof",
                        help="choose the threshold and calibration on out-of-fold scores of the training rows, "
                             "then fit on all of them ('oof', default), or on one 20%% validation split "
                             "('validation', faster)")
    parser.add_argument("--folds", type=int, default=5, help="folds for --threshold oof (default 5)")


def _configure_train(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = hyperparameter_help()
    parser.add_argument("--model", required=True, metavar="KIND", help=f"model kind: {_kinds_text()}")
    parser.add_argument("--name", help="save under this name (letters, digits, '_' or '-'; up to 64)")
    parser.add_argument("--no-save", action="store_true", help="train and evaluate without saving")
    parser.add_argument("--overwrite", action="store_true", help="replace a saved model of the same name")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the folds and the model (default 0)")
    _add_protocol_options(parser, ("random", "time"))
    parser.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                        help="a hyper-parameter over the default (JSON value), e.g. --param num_leaves=31; "
                             "the list is below")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--with-feedback", action="store_true",
                        help="add the analysts' labeled predictions to the training rows (deduplicated "
                             "against the data set; never to the test rows)")
    parser.add_argument("--engine", choices=("local", "dask"), default="local",
                        help="'local' trains in this process on the data set in memory (default); 'dask' trains "
                             "on a Dask cluster (FRAUD_APP_DASK_SCHEDULER, else a LocalCluster) with "
                             "lightgbm.dask, on a data set of any size")


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


_SPLIT_TEXT = {"random": "stratified by seed", "time": "earlier rows train, later rows test"}


def _threshold_text(result: Any) -> str:
    if result.threshold_method == "oof":
        return f"{result.folds}-fold out-of-fold scores, then a final fit on all training rows"
    return "the validation split"


def _table(result: Any) -> str:
    m = result.metrics
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    where = f"saved as {result.name!r}" if result.saved else "not saved"
    rows = [
        ("model", f"{result.kind} ({where})"),
        ("seed", str(result.seed)),
        ("train / test rows", f"{result.n_train:,} / {m['n_test']:,} ({m['n_test_fraud']} frauds in test)"),
        ("split", f"{result.split} ({_SPLIT_TEXT[result.split]})"),
        ("threshold", f"{m['threshold']:.4f} (chosen on {_threshold_text(result)})"),
        ("F1", f"{m['f1']:.4f}"),
        ("precision", f"{m['precision']:.4f}"),
        ("recall", f"{m['recall']:.4f}"),
        ("PR-AUC (AP)", f"{m['pr_auc']:.4f}"),
        ("ROC-AUC", f"{m['roc_auc']:.4f}"),
        ("Brier", f"{m['brier']:.6f} (reliability: ECE {m['ece']:.6f})"),
        ("confusion", f"TN {tn:,}  FP {fp:,}  FN {fn:,}  TP {tp:,}"),
        ("fit time", f"{result.fit_seconds:.1f} s (total {result.duration_s:.1f} s)"),
        ("feedback rows", f"{result.feedback_rows:,} labeled predictions added to the training rows"),
    ]
    info = result.model.fit_info
    if info.get("engine") == "dask":
        rows.append(("engine", f"Dask: lightgbm.dask on {info['workers']} workers, {info['partitions']} partitions; "
                               f"threshold on {info['n_validation']:,} validation rows; test rows "
                               f"{info['test_rows']}"))
    if info.get("trained_on"):
        rows.append(("trained on", info["trained_on"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _feedback() -> Any:
    from fraud_app.monitoring.feedback import labeled_predictions

    return labeled_predictions()


@command("train", _configure_train)
def run_train(args: argparse.Namespace) -> int:
    """train one model, evaluate it on a held-out 20 % and save it"""
    from fraud_app.data import load_transactions
    from fraud_app.training import TrainingPipeline

    if not args.no_save and not args.name:
        raise ValueError("--name is required (or pass --no-save)")
    pipeline = TrainingPipeline(args.model, dict(args.param), name=args.name, save=not args.no_save,
                                overwrite=args.overwrite, seed=args.seed, split=args.split,
                                threshold_method=args.threshold_method, folds=args.folds,
                                feedback=_feedback() if getattr(args, "with_feedback", False) else None)
    if getattr(args, "engine", "local") == "dask":
        from fraud_app.data.partitioned import open_lazy
        from fraud_app.scale.engine import get_client

        frame = open_lazy()
        client = get_client()
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr, flush=True)
    else:
        frame = load_transactions()
    result = pipeline.run(frame, progress=None if args.json else _ProgressPrinter())
    if args.json:
        print(result.to_json(indent=2))
    else:
        print(_table(result))
        print(_reliability_lines(result.reliability))
    return 0


def _reliability_lines(curve: dict[str, Any]) -> str:
    """The reliability curve as a small text table (predicted vs observed fraud rate per bin)."""
    lines = ["reliability (test rows): P(fraud) bin -> mean predicted / observed fraud rate (rows, frauds)"]
    for lo, hi, pred, obs, n, k in zip(curve["lower"], curve["upper"], curve["predicted"], curve["observed"],
                                       curve["count"], curve["frauds"]):
        lines.append(f"  [{lo:g}, {hi:g})  {pred:.5f} / {obs:.5f}  ({n:,}, {k})")
    return "\n".join(lines)


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", default="0-4", help="seeds, e.g. '0-4' (default) or '0,1'")
    parser.add_argument("--models", default=None,
                        help="comma-separated kinds (default: decision_tree,lightgbm,random_forest,aggregator)")
    _add_protocol_options(parser, ("random", "time", "both"))
    parser.add_argument("--json-out", metavar="PATH", help="also write the full report as JSON here")


@command("evaluate", _configure_evaluate)
def run_evaluate(args: argparse.Namespace) -> int:
    """the multi-seed benchmark of every model kind (80/20 random or time-ordered, mean ± std)"""
    from fraud_app.data import load_transactions
    from fraud_app.models import model_class
    from fraud_app.models.jsonutil import write_json_atomic
    from fraud_app.training.benchmark import DEFAULT_KINDS, format_table, parse_seeds, run_benchmark

    seeds = parse_seeds(args.seeds)
    kinds = [k.strip() for k in args.models.split(",") if k.strip()] if args.models else list(DEFAULT_KINDS)
    for kind in kinds:
        model_class(kind)
    frame = load_transactions()
    splits = ("random", "time") if args.split == "both" else (args.split,)
    reports = {}
    for split in splits:
        reports[split] = run_benchmark(frame, kinds, seeds, echo=lambda line: print(line, file=sys.stderr, flush=True),
                                       split=split, threshold_method=args.threshold_method, folds=args.folds)
        print(f"split: {split} ({reports[split]['protocol']})")
        print(format_table(reports[split]))
    if args.json_out:
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        report = reports[splits[0]] if len(splits) == 1 else {**reports["random"], "time_split": reports["time"]}
        write_json_atomic(path, report)
        print(f"wrote {path}")
    return 0


def _configure_models(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", required=True)
    sub.add_parser("list", help="the saved models, newest first, the active one marked")
    sub.add_parser("status", help="the active model and how it became active")
    activate = sub.add_parser("activate", help="make a saved model the active one (what the API scores with)")
    activate.add_argument("name", help="a saved model's name")
    compare = sub.add_parser("compare", help="score two or more saved models on the same test rows")
    compare.add_argument("names", nargs="+", metavar="NAME", help="saved model names (at least two)")
    compare.add_argument("--split", choices=("random", "time"), default=None,
                         help="test rows (default: the split the first model was evaluated on)")
    compare.add_argument("--seed", type=int, default=None, help="seed of a random split (default: the first model's)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")


@command("models", _configure_models)
def run_models(args: argparse.Namespace) -> int:
    """saved models: list, status, activate NAME, compare NAME NAME..."""
    from fraud_app.models import ModelLoadError, ModelNotFoundError, active_model_status, list_models, set_active_model

    try:
        if args.models_command == "activate":
            set_active_model(args.name)
            status = active_model_status()
            print(f"active model: {status['name']} ({status['description']})")
            return 0
        if args.models_command == "status":
            status = active_model_status()
            if status["name"] is None:
                print("no model is saved yet")
            else:
                print(f"active model: {status['name']} ({status['description']}, since {status['set_at']})")
            return 0
        if args.models_command == "list":
            active = active_model_status()["name"]
            for meta in list_models():
                m = meta.get("metrics") or {}
                mark = "*" if meta["name"] == active else " "
                f1 = f"{m['f1']:.4f}" if isinstance(m.get("f1"), float) else "n/a"
                print(f"{mark} {meta['name']:<24} {meta['kind']:<14} F1 {f1}  split {m.get('split', 'random')}  "
                      f"threshold {meta['threshold']:.4f} ({meta.get('threshold_method') or 'validation'})")
            return 0
        from fraud_app.data import load_transactions
        from fraud_app.training.compare import compare_models

        result = compare_models(args.names, load_transactions(), split=args.split, seed=args.seed)
    except (ModelNotFoundError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"{result.split} split, seed {result.seed}: {result.n_test:,} test rows, {result.n_test_fraud} frauds")
    print(result.table().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if not result.all_held_out:
        print("warning: a model marked held_out=False was trained with another split: it may have trained on "
              "some of these rows, so its figures flatter it", file=sys.stderr)
    return 0
