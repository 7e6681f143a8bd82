"""Benchmark: cold and cached EDA compute on the real data set.

    .venv/bin/python -m bench.bench_eda [--data data/creditcard.parquet] [--repeat 3]

Prints the figures and writes ``bench/results/eda.json``. "Cold" is the first
``get_summary`` call after the cache was cleared, with the frame already loaded (the
loader's own time is reported separately); the first cold run of the process is
reported on its own since it also pays numpy's first-call costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BUDGET_S = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/creditcard.parquet"),
                        help="the real data set (Parquet or the Kaggle CSV)")
    parser.add_argument("--repeat", type=int, default=3, help="cold runs after the first one")
    parser.add_argument("--out", type=Path, default=RESULTS / "eda.json", help="where to write the JSON result")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"{args.data} not found; run `python -m fraud_app data fetch` first", file=sys.stderr)
        return 2

    os.environ["FRAUD_APP_DATASET"] = "real"
    os.environ["FRAUD_APP_DATA_DIR"] = str(args.data.resolve().parent)
    from fraud_app import eda
    from fraud_app.data import load_transactions

    load_before = os.getloadavg()
    started = time.perf_counter()
    frame = load_transactions(args.data)
    load_s = time.perf_counter() - started

    cold = []
    for _ in range(1 + args.repeat):
        eda.clear_cache()
        before = eda.compute_count()
        started = time.perf_counter()
        summary = eda.get_summary(frame)
        cold.append(time.perf_counter() - started)
        assert eda.compute_count() == before + 1
    warm = []
    for _ in range(5):
        before = eda.compute_count()
        started = time.perf_counter()
        eda.get_summary(frame)
        warm.append(time.perf_counter() - started)
        assert eda.compute_count() == before, "a cached call must not recompute"

    result = {
        "benchmark": "eda",
        "data": str(args.data),
        "rows": int(summary.overview["rows"]),
        "frauds": int(summary.overview["frauds"]),
        "fingerprint": summary.fingerprint,
        "load_s": load_s,
        "cold_first_s": cold[0],
        "cold_repeat_s": cold[1:],
        "cold_max_s": max(cold),
        "cold_median_s": statistics.median(cold),
        "cached_max_s": max(warm),
        "budget_s": BUDGET_S,
        "within_budget": max(cold) <= BUDGET_S,
        "top_features": summary.top_features,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        # The machine is shared: the load average says how busy it was while measuring.
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"data:            {args.data} ({result['rows']:,} rows, {result['frauds']} frauds)")
    print(f"load (parquet):  {load_s:.3f} s")
    print(f"EDA cold, first: {cold[0]:.3f} s")
    print(f"EDA cold, again: {', '.join(f'{c:.3f}' for c in cold[1:])} s")
    print(f"EDA cold, max:   {max(cold):.3f} s (budget {BUDGET_S:.1f} s: "
          f"{'OK' if result['within_budget'] else 'OVER'})")
    print(f"EDA cached, max: {max(warm) * 1e6:.1f} µs")
    print(f"top 3 features:  {', '.join(summary.top_features)}")
    print(f"load average:    {result['load_average_before']} before, {result['load_average_after']} after "
          f"({os.cpu_count()} CPUs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
