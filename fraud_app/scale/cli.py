"""``python -m fraud_app score``: batch scoring of files or directories, locally or on Dask."""

from __future__ import annotations

import argparse
import json

from fraud_app.cli import command


def _configure_score(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME", help="a saved model's name")
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="a Parquet or CSV file, or a directory of them (local or fsspec URL)")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="the directory to write (partitioned Parquet: the input's columns plus "
                             "fraud_probability and is_fraud)")
    parser.add_argument("--engine", choices=("local", "dask"), default="local",
                        help="'local' scores part after part in this process (default); 'dask' on the cluster "
                             "(FRAUD_APP_DASK_SCHEDULER, else a LocalCluster)")
    parser.add_argument("--save-to-db", action="store_true",
                        help="also write every prediction to the predictions table, in chunks")
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


@command("score", _configure_score)
def run_score(args: argparse.Namespace) -> int:
    """score a Parquet/CSV file or directory with a saved model into partitioned Parquet"""
    from fraud_app.scale.score import score

    result = score(args.model, args.input, args.output, engine=args.engine, save_to_db=args.save_to_db,
                   overwrite=args.overwrite, progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"scored {result['rows']:,} rows in {result['parts']} parts with {args.model!r} "
              f"({result['engine']}): {result['frauds']:,} flagged, {result['rows_per_s']:,.0f} rows/s; "
              f"wrote {result['output']}" + (f"; saved {result['saved_to_db']:,} predictions to the database"
                                             if args.save_to_db else ""))
    return 0
