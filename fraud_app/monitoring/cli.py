"""``python -m fraud_app feedback export --out FILE.parquet``: the labeled predictions as training rows."""

from __future__ import annotations

import argparse

from fraud_app.cli import command


def _configure_feedback(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="feedback_command", required=True)
    export = sub.add_parser("export", help="write the labeled predictions to Parquet (canonical schema)")
    export.add_argument("--out", required=True, metavar="FILE.parquet", help="the Parquet file to write")
    export.add_argument("--model", default=None, help="only the predictions of this model (default: all)")


@command("feedback", _configure_feedback)
def run_feedback(args: argparse.Namespace) -> int:
    """the analysts' labeled predictions: export them in the canonical schema"""
    from fraud_app.monitoring.feedback import export_feedback

    rows = export_feedback(args.out, args.model)
    print(f"wrote {rows:,} labeled prediction(s) to {args.out}")
    return 0
