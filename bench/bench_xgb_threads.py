"""Benchmark: XGBoost prediction time with one thread against two, by batch size.

    .venv/bin/python -m bench.bench_xgb_threads [--repeats 200]

Fits the app's XGBoost kind (its defaults: 300 rounds, depth 6) on 20,000 seeded synthetic rows,
then times ``inplace_predict`` (the kind's fast path) on 1, 100, 10,000 and 100,000 random rows
with the booster set to one and to two threads (medians). ``fraud_app.models`` is imported
first, so OpenMP waits passively as in the app. It chose the kind's ``SMALL_BATCH_ROWS``: up to
that many rows a prediction uses one thread. The machine is shared: the load average is recorded
before and after. Writes ``bench/results/xgb_threads.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (1, 100, 10_000, 100_000)


def _median_ms(booster, X, repeats: int) -> float:
    import numpy as np

    booster.inplace_predict(X, predict_type="margin")  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        booster.inplace_predict(X, predict_type="margin")
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1e3, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per size up to 100 rows (fewer above)")
    parser.add_argument("--out", type=Path, default=RESULTS / "xgb_threads.json")
    args = parser.parse_args(argv)

    import numpy as np

    from fraud_app.data import MODEL_FEATURES, make_synthetic
    from fraud_app.models import Reporter, create
    from fraud_app.models.jsonutil import write_json_atomic
    from fraud_app.models.xgb import SMALL_BATCH_ROWS

    load_before = [round(x, 2) for x in os.getloadavg()]
    frame = make_synthetic(20_000, 0.02, seed=3)
    model = create("xgboost", n_jobs=2, calibration="none")
    model.fit_estimator(frame[MODEL_FEATURES].to_numpy(), frame["is_fraud"].to_numpy(), None, None, Reporter())
    boosters = {}
    for threads in (1, 2):
        boosters[threads] = model.booster_.copy()
        boosters[threads].set_param({"nthread": threads})
    rng = np.random.default_rng(0)
    rows = []
    for n in SIZES:
        X = rng.normal(size=(n, len(MODEL_FEATURES)))
        repeats = args.repeats if n <= 100 else max(3, args.repeats // (20 if n <= 10_000 else 60))
        row = {"rows": n, "repeats": repeats}
        for threads, booster in boosters.items():
            row[f"median_ms_{threads}_thread"] = _median_ms(booster, X, repeats)
        rows.append(row)
        print(f"{n:>7,} rows: one thread {row['median_ms_1_thread']:.3f} ms, two {row['median_ms_2_thread']:.3f} ms",
              flush=True)
    report = {
        "command": "python -m bench.bench_xgb_threads" + (f" --repeats {args.repeats}" if args.repeats != 200 else ""),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "model": {"kind": "xgboost", "rounds": model.params["n_estimators"], "max_depth": model.params["max_depth"],
                  "fit_rows": len(frame)},
        "small_batch_rows": SMALL_BATCH_ROWS,
        "results": rows,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    write_json_atomic(args.out, report)
    print(f"load average before {load_before}, after {report['load_average_after']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
