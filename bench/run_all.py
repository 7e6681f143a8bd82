"""Run every benchmark on the real data set, one after the other (``make bench``).

Each script prints its figures and writes ``bench/results/<name>.json``. They are run
in separate processes so that one's caches and threads do not touch another's timings.
"""

from __future__ import annotations

import subprocess
import sys
import time

#: Every benchmark and screenshot script; the README's figures table reads their JSON
#: (``python -m bench.figures --write`` after a run). bench_models and bench_scale take the longest.
BENCHMARKS = ["bench.bench_eda", "bench.bench_page", "bench.bench_api", "bench.bench_security",
              "bench.bench_monitoring", "bench.bench_models", "bench.bench_scale", "bench.screenshots",
              "bench.screenshot_tabs", "bench.screenshot_training", "bench.screenshot_inference"]


def main() -> int:
    failed = []
    for module in BENCHMARKS:
        print(f"== python -m {module}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", module])
        print(f"== {module}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
