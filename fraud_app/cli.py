"""``python -m fraud_app``: fetch data, inspect it, train, evaluate and serve.

Sub-commands
------------
data fetch [--from PATH] [--force]   fetch, verify and convert the real data set
data info                            rows, frauds, fraud rate, time span, memory
train --model KIND --name NAME       train one model and print its metrics [--split random|time]
evaluate                             the multi-seed benchmark of every model kind [--split random|time|both]
models list | status                 the saved models; the active one and how it became active
models activate NAME                 make NAME the active model (what the API scores with)
models compare NAME NAME...          score saved models on the same test rows
feedback export --out FILE.parquet   the analysts' labeled predictions, canonical schema [--model NAME]
serve [--port N]                     ``panel serve app.py --plugins fraud_app.api``
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
    sub.add_parser("info", help="rows, frauds, fraud rate, time span and memory")


@command("data", _configure_data)
def _run_data(args: argparse.Namespace) -> int:
    from fraud_app.data import dataset_info, load_transactions
    from fraud_app.data.fetch import fetch_dataset

    if args.data_command == "fetch":
        fetch_dataset(args.from_path, force=args.force)
        return 0
    frame = load_transactions()
    info = dataset_info(frame)
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

    for module in ("fraud_app.training.cli", "fraud_app.monitoring.cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(prog="python -m fraud_app", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _run) in COMMANDS.items():
        configure(sub.add_parser(name, help=(_run.__doc__ or "").strip() or None))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code. Errors print one clear line and exit 1 (2 for usage)."""
    from fraud_app.data import DataNotFoundError, SchemaError
    from fraud_app.data.fetch import FetchError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging()
        return COMMANDS[args.command][1](args)
    except (ConfigError, DataNotFoundError, SchemaError, FetchError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
