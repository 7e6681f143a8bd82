"""``python -m fraud_app``: fetch data, inspect it, train, evaluate and serve.

Sub-commands
------------
data fetch [--from PATH] [--force]   fetch, verify and convert the real data set
data info                            rows, frauds, fraud rate, time span, memory
data synth --rows N --partitions P --out DIR   a large synthetic set as partitioned Parquet
train --model KIND --name NAME       train one model and print its metrics [--split random|time]
evaluate                             the multi-seed benchmark of every model kind [--split random|time|both]
models list | status                 the saved models; the active one and how it became active
models activate NAME                 make NAME the active model (what the API scores with)
models compare NAME NAME...          score saved models on the same test rows
feedback export --out FILE.parquet   the analysts' labeled predictions, canonical schema [--model NAME]
score --model NAME --input PATH --output DIR   batch scoring [--engine local|dask] [--save-to-db]
serve [--port N]                     ``panel serve app.py --plugins fraud_app.api``

Every sub-command takes ``--data PATH`` (a Parquet/CSV file, a directory of Parquet files or an
fsspec URL), which sets ``FRAUD_APP_DATA_PATH`` for this run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fraud_app.config import ConfigError, get_settings
from fraud_app.logging_setup import configure_logging

log = logging.getLogger("fraud_app.cli")

#: Sub-command registry: name -> (configure parser, run). Other modules add theirs here.
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> exit code`` as the sub-command ``name``."""

    def decorator(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (configure, run)
        return run

    return decorator


# -- data ---------------------------------------------------------------------------------------

def _configure_data(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    fetch = sub.add_parser("fetch", help="fetch, verify and convert the real data set to Parquet")
    fetch.add_argument("--from", dest="from_path", metavar="PATH",
                       help="a local creditcard.csv (or a zip holding it); no network is used")
    fetch.add_argument("--force", action="store_true", help="convert again even if up to date")
    info = sub.add_parser("info", help="rows, frauds, fraud rate, time span and memory")
    info.add_argument("--data", metavar="PATH", default=argparse.SUPPRESS, help="the data set (see above)")
    synth = sub.add_parser("synth", help="write a large synthetic data set as partitioned Parquet, streaming")
    synth.add_argument("--rows", type=int, required=True, help="transactions to write")
    synth.add_argument("--partitions", type=int, required=True, help="Parquet files to write them in")
    synth.add_argument("--out", required=True, metavar="DIR", help="the directory to create")
    synth.add_argument("--fraud-rate", type=float, default=0.01, help="share of frauds (default 0.01)")
    synth.add_argument("--seed", type=int, default=0, help="seed (default 0); the same seed writes the same set")
    synth.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="storage type of the features (float32 halves memory on the cluster)")
    synth.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")


@command("data", _configure_data)
def _run_data(args: argparse.Namespace) -> int:
    from fraud_app.data import dataset_info, load_transactions
    from fraud_app.data.fetch import fetch_dataset

    if args.data_command == "fetch":
        fetch_dataset(args.from_path, force=args.force)
        return 0
    if args.data_command == "synth":
        from fraud_app.data.synth import write_synthetic

        def progress(done: int, total: int) -> None:
            print(f"\rwrote {done}/{total} partitions", end="", file=sys.stderr, flush=True)

        out = write_synthetic(args.rows, args.partitions, args.out, fraud_rate=args.fraud_rate, seed=args.seed,
                              dtype=args.dtype, overwrite=args.overwrite, progress=progress)
        print(file=sys.stderr)
        print(f"wrote {out['rows']:,} rows ({out['frauds']:,} frauds) in {out['partitions']} partitions, "
              f"{out['bytes'] / 1e6:,.1f} MB, to {out['out']}")
        return 0
    from fraud_app.data import LazyDataset, open_dataset

    dataset = open_dataset()
    if isinstance(dataset, LazyDataset):
        print(f"source       {dataset.source} (lazy: {dataset.read_text()})")
        print(f"rows         {dataset.rows:,}")
        print(f"fingerprint  {dataset.fingerprint}")
        return 0
    info = dataset_info(dataset)
    print(f"source       {info.source}")
    print(f"rows         {info.rows:,}")
    print(f"frauds       {info.frauds:,}")
    print(f"fraud rate   {info.fraud_rate:.4%}")
    print(f"time span    {info.time_span_hours:.1f} h")
    print(f"memory       {info.memory_mb:.1f} MB")
    print(f"fingerprint  {info.fingerprint}")
    return 0


# -- serve --------------------------------------------------------------------------------------

def _configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default=None)
    parser.add_argument("--num-procs", type=int, default=1)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more `panel serve` options")


@command("serve", _configure_serve)
def _run_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    cmd = [sys.executable, "-m", "panel", "serve", str(settings.home / "app.py"),
           "--plugins", "fraud_app.api", "--port", str(args.port)]
    if args.address:
        cmd += ["--address", args.address]
    if args.num_procs != 1:
        cmd += ["--num-procs", str(args.num_procs)]
    extra = [a for a in args.extra if a != "--"]
    if "--auth-module" not in extra:  # the token login page (docs/security.md); a Panel login replaces it
        cmd += ["--auth-module", str(Path(__file__).resolve().parent / "token_login.py")]
    cmd += extra
    host = args.address or "localhost"
    print(f"App: http://{host}:{args.port}/app   API: http://{host}:{args.port}/api/health", flush=True)
    return subprocess.call(cmd, env=os.environ.copy())


def _load_plugins() -> None:
    """Import the modules that register more sub-commands (train, evaluate, models)."""
    import importlib

    for module in ("fraud_app.training.cli", "fraud_app.monitoring.cli", "fraud_app.scale.cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(prog="python -m fraud_app", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", metavar="PATH", default=None,
                        help="the data set: a Parquet/CSV file, a directory of Parquet files or an fsspec URL "
                             "(sets FRAUD_APP_DATA_PATH)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _run) in COMMANDS.items():
        configure(sub.add_parser(name, help=(_run.__doc__ or "").strip() or None, parents=[common]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code. Errors print one clear line and exit 1 (2 for usage)."""
    from fraud_app.data import DataNotFoundError, SchemaError
    from fraud_app.data.fetch import FetchError

    from fraud_app.models.errors import ModelLoadError, ModelNotFoundError
    from fraud_app.scale.engine import SchedulerUnreachableError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "data", None):
        os.environ["FRAUD_APP_DATA_PATH"] = args.data
    try:
        configure_logging()
        return COMMANDS[args.command][1](args)
    except (ConfigError, DataNotFoundError, SchemaError, FetchError, ValueError, KeyError, FileExistsError,
            FileNotFoundError, SchedulerUnreachableError, ModelNotFoundError, ModelLoadError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        from fraud_app.scale import engine

        engine.close()
