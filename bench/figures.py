"""The README's figures table, generated from ``bench/results/*.json``.

    python -m bench.figures           # print the table
    python -m bench.figures --write   # replace the table in README.md

Each row names the JSON file and the value it shows, so the README never states a
figure that no benchmark wrote. ``tests/core/test_readme.py`` fails when the README's
table differs from what this script generates.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


@dataclass(frozen=True)
class Row:
    """One line of the table: what, where from, how it reads, its goal and whether it is met."""

    what: str
    source: str
    figure: Callable[[dict], str]
    goal: str
    met: Callable[[dict], bool | None]


def _get(data: dict, path: str) -> Any:
    for key in path.split("."):
        data = data[key]
    return data


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


ROWS: list[Row] = [
    # -- page speed (issue #9) --
    Row("Warm session, first chart: app ÷ reference Panel page", "page.json",
        lambda d: f"{d['ratio_first_chart']:.2f}× ({d['medians_s']['first_chart']['app']:.2f} s vs "
                  f"{d['medians_s']['first_chart']['reference']:.2f} s)",
        "≤ 1.25×", lambda d: d["ratio_first_chart"] <= 1.25),
    Row("Warm session, every EDA chart drawn: app ÷ reference", "page.json",
        lambda d: f"{d['ratio_all_charts']:.2f}× ({d['medians_s']['all_charts']['app']:.2f} s vs "
                  f"{d['medians_s']['all_charts']['reference']:.2f} s)",
        "≤ 2×", lambda d: d["ratio_all_charts"] <= 2),
    Row("First session after `/api/health` answers, EDA settled: app ÷ reference warm", "page.json",
        lambda d: f"{d['ratio_first_session_settled']:.2f}× ({d['app_first_session']['all_charts']:.2f} s)",
        "≤ 2.5×", lambda d: d["ratio_first_session_settled"] <= 2.5),
    Row("First visit to Training / Inference: controls usable after the click", "page.json",
        lambda d: f"{d['training_tab_usable_s']:.2f} s / {d['inference_tab_usable_s']:.2f} s",
        "≤ 1.5 s", lambda d: max(d["training_tab_usable_s"], d["inference_tab_usable_s"]) <= 1.5),
    Row("Event-loop time to build a session (server log, median / max)", "page.json",
        lambda d: f"{_ms(d['session_log']['session_build_median_ms'])} / "
                  f"{_ms(d['session_log']['session_build_max_ms'])}",
        "≤ 150 ms", lambda d: d["session_log"]["session_build_max_ms"] <= 150),
    Row("`/api/health` while 4 pages reload `/app` (p50 / p99 / max)", "page.json",
        lambda d: f"{_ms(d['health_under_reloads']['p50_ms'])} / {_ms(d['health_under_reloads']['p99_ms'])} / "
                  f"{_ms(d['health_under_reloads']['max_ms'])}",
        "p99 ≤ 50 ms", lambda d: d["health_under_reloads"]["p99_ms"] <= 50),
    Row("RSS per open session; after 30 sessions opened and closed, +60 s", "page.json",
        lambda d: f"{d['rss']['growth_per_open_session_mb']:.1f} MB; {d['rss']['after_vs_first']:.2f}× the first",
        "≤ 15 MB; ≤ 1.10×",
        lambda d: d["rss"]["growth_per_open_session_mb"] <= 15 and d["rss"]["after_vs_first"] <= 1.10),
    # -- models (issue #11; random = the assignment's stratified split, time = train earlier, test later) --
    Row("Best model, mean F1 over seeds 0–4, stratified random split", "models.json",
        lambda d: f"{d['targets']['best_model']} {d['targets']['best_mean_f1']:.3f} ± "
                  f"{d['summary'][d['targets']['best_model']]['f1']['std']:.3f}",
        "≥ 0.87", lambda d: d["targets"]["best_mean_f1"] >= 0.87),
    Row("… against the baseline decision tree", "models.json",
        lambda d: f"{d['targets']['baseline_mean_f1']:.3f} (+{d['targets']['gain_over_baseline']:.3f})",
        "+0.10", lambda d: d["targets"]["gain_over_baseline"] >= 0.10),
    Row("Best mean PR-AUC, random split", "models.json",
        lambda d: f"{d['targets']['best_mean_pr_auc']:.3f}", "≥ 0.87", lambda d: d["targets"]["best_mean_pr_auc"] >= 0.87),
    Row("Mean F1 on the time-ordered split (LightGBM / XGBoost / aggregator / tree)", "models.json",
        lambda d: " / ".join(f"{d['time_split']['summary'][k]['f1']['mean']:.3f}"
                             for k in ("lightgbm", "xgboost", "aggregator", "decision_tree")),
        "report", lambda d: None),
    Row("LightGBM final fit on the whole training part (227,845 rows)", "models.json",
        lambda d: f"{d['targets']['lightgbm_final_fit_median_seconds']:.1f} s", "≤ 15 s",
        lambda d: d["targets"]["lightgbm_final_fit_at_most_15s"]),
    # -- hostile clients (issue #8) --
    Row("RSS after 3 rounds of 40 aborted 16 MiB uploads, +30 s (no token / token)", "security.json",
        lambda d: f"+{d['aborted_uploads']['without_token']['growth_mb']:.1f} MB / "
                  f"+{d['aborted_uploads']['with_token']['growth_mb']:.1f} MB",
        "≤ +100 MB", lambda d: max(d["aborted_uploads"]["without_token"]["growth_mb"],
                                   d["aborted_uploads"]["with_token"]["growth_mb"]) <= 100),
    Row("`/api/health` while another process holds SQLite's write lock 12 s (p99)", "security.json",
        lambda d: f"{_ms(d['database_lock']['health_p99_ms'])}; writes 503 after ≤ "
                  f"{d['database_lock']['write_503_latency_max_s']:.2f} s",
        "< 200 ms", lambda d: d["database_lock"]["health_p99_ms"] < 200),
    Row("`POST /api/predictions` p99 while 4 Chromium pages reload `/app`", "security.json",
        lambda d: f"{_ms(d['page_loads']['post_under_page_loads']['p99_ms'])}; p50 "
                  f"{_ms(d['page_loads']['post_under_page_loads']['p50_ms'])} "
                  f"(alone: p99 {_ms(d['page_loads']['post_alone']['p99_ms'])}; run {d['date'][:16]})",
        "report", lambda d: None),
    # -- EDA --
    Row("EDA summary, cold compute (first call of a process)", "eda.json",
        lambda d: f"{d['cold_first_s']:.2f} s", "≤ 2 s", lambda d: d["cold_first_s"] <= 2),
    # -- REST API (issues #4, #10) --
    Row("`POST /api/predictions` sequential: app ÷ bare Tornado", "api.json",
        lambda d: f"{d['single_row']['sequential_ratio']:.3f} "
                  f"({d['single_row']['sequential_app_req_per_s_median']:,.0f} vs "
                  f"{d['single_row']['sequential_bare_req_per_s_median']:,.0f} req/s; the floor server, which only "
                  f"scores and commits: {d['single_row']['floor']['sequential_ratio']:.2f}; load average "
                  f"{d['machine']['load_avg_at_start'][0]:.1f}–{d['machine']['load_avg_at_end'][0]:.1f} on 2 cores)",
        "≥ 0.5", lambda d: d["single_row"]["sequential_ratio"] >= 0.5),
    Row("`POST /api/predictions` 16 clients: app ÷ bare Tornado / app ÷ Flask reference", "api.json",
        lambda d: f"{d['single_row']['concurrent16_ratio_bare']:.3f} / {d['single_row']['concurrent16_ratio_flask']:.2f} "
                  f"(the floor server: {d['single_row']['floor']['concurrent16_ratio_bare']:.2f} of bare)",
        "≥ 0.6 / ≥ 4", lambda d: d["single_row"]["met"]["concurrent16_ratio_bare"]
        and d["single_row"]["met"]["concurrent16_ratio_flask"]),
    Row("`POST /api/predictions` p99 at 16 clients", "api.json",
        lambda d: _ms(d["single_row"]["concurrent16"]["app"]["p99_ms"]), "≤ 20 ms",
        lambda d: d["single_row"]["met"]["p99_16_clients"]),
    Row("32 clients × 200 POSTs", "api.json",
        lambda d: f"{d['concurrent_writers']['new_rows']:,} rows, {d['concurrent_writers']['lost']} lost, "
                  f"{d['concurrent_writers']['5xx']} 5xx",
        "0 lost, 0 5xx", lambda d: d["concurrent_writers"]["met"]),
    Row("`kill -9` under load: acknowledged rows missing", "api.json",
        lambda d: f"{d['crash']['missing_acknowledged']} of {d['crash']['acknowledged_201']:,}",
        "0", lambda d: d["crash"]["met"]),
    Row("One 10,000-row batch request", "api.json",
        lambda d: f"{d['batch_10000']['median_s']:.2f} s", "≤ 0.4 s", lambda d: d["batch_10000"]["median_s"] <= 0.4),
    # -- monitoring (issue 15): 1,000,000 stored predictions, aggregated at write time --
    Row("`GET /api/monitoring` over 1,000,000 stored predictions, SQLite (HTTP median; in-process worst)",
        "monitoring.json",
        lambda d: f"{d['sqlite']['http']['median_s']:.2f} s; {d['sqlite']['report']['warm_max_s']:.2f} s "
                  f"(load {d['sqlite']['load_avg_before'][0]:.0f} on 2 cores)",
        "≤ 1 s", lambda d: max(d["sqlite"]["http"]["median_s"], d["sqlite"]["report"]["warm_max_s"]) <= 1),
    Row("… the same on PostgreSQL", "monitoring.json",
        lambda d: f"{d['postgres']['http']['median_s']:.2f} s; {d['postgres']['report']['warm_max_s']:.2f} s "
                  f"(load {d['postgres']['load_avg_before'][0]:.0f} on 2 cores)",
        "≤ 1 s", lambda d: max(d["postgres"]["http"]["median_s"], d["postgres"]["report"]["warm_max_s"]) <= 1),
    Row("Monitoring tab refresh: longest event-loop stall, SQLite / PostgreSQL (periodic; after a label)",
        "monitoring.json",
        lambda d: " / ".join(f"{d[k]['tab_refresh']['refresh_max_gap_ms']:.0f} ms; "
                             f"{d[k]['tab_refresh']['label_max_gap_ms']:.0f} ms (idle timer alone: "
                             f"{d[k]['tab_refresh']['idle_max_gap_ms']:.0f} ms)" for k in ("sqlite", "postgres")),
        "≤ 50 ms", lambda d: max(d[k]["tab_refresh"]["loop_max_gap_ms"] for k in ("sqlite", "postgres")) <= 50),
    Row("Monitoring tab: longest single loop callback, SQLite / PostgreSQL (wall; loop-thread CPU)",
        "monitoring.json",
        lambda d: " / ".join(
            f"{max(d[k]['tab_refresh'][f'{w}_max_callback_ms'] for w in ('refresh', 'label')):.0f} ms; "
            f"{max(d[k]['tab_refresh'][f'{w}_max_callback_cpu_ms'] for w in ('refresh', 'label')):.0f} ms CPU"
            if "label_max_callback_ms" in d[k]["tab_refresh"] else "not measured" for k in ("sqlite", "postgres")),
        "≤ 50 ms", lambda d: None if any("label_max_callback_ms" not in d[k]["tab_refresh"]
                                         for k in ("sqlite", "postgres")) else all(
            max(d[k]["tab_refresh"]["label_max_callback_ms"], d[k]["tab_refresh"]["refresh_max_callback_ms"]) <= 50
            for k in ("sqlite", "postgres"))),
    Row("PSI bins straight from the JSON inputs instead (SQLite / PostgreSQL, extrapolated from 20,000 rows)",
        "monitoring.json",
        lambda d: f"{d['sqlite']['alternative']['extrapolated_to_all_rows_s']:,.0f} s / "
                  f"{d['postgres']['alternative']['extrapolated_to_all_rows_s']:,.0f} s",
        "report", lambda d: None),
]


def _scale_rows(source: str) -> list[Row]:
    """The rows of one ``bench_scale`` run (issue #14); a phase the run did not reach reads "not measured"."""
    def rows_of(d: dict) -> str:
        return f"{d['rows'] / 1e6:g} M rows"

    return [
        Row(f"`data synth` ({source}): peak RSS", source,
            lambda d: f"{rows_of(d)}, {d['partitions']} partitions: {d['phases']['synth']['peak_rss_mb']:,.0f} MB "
                      f"({d['phases']['synth']['seconds']:,.0f} s)",
            "≤ 1 GB", lambda d: d["phases"]["synth"]["returncode"] == 0
            and d["phases"]["synth"]["peak_rss_mb"] <= 1024),
        Row(f"EDA summary on a LocalCluster, 2 workers ({source}): app process peak RSS", source,
            lambda d: f"{rows_of(d)}: {d['phases']['eda']['peak_rss_mb']:,.0f} MB; "
                      f"{d['phases']['eda'].get('compute_seconds', d['phases']['eda']['seconds']):,.0f} s"
                      f"{'' if 'compute_seconds' in d['phases']['eda'] else ' with the cluster start'} "
                      f"(workers {d['worker_memory']} each, peak sum "
                      f"{d['phases']['eda']['workers_peak_rss_mb']:,.0f} MB)",
            "completes; ≤ 1.5 GB", lambda d: d["phases"]["eda"]["returncode"] == 0
            and d["phases"]["eda"]["peak_rss_mb"] <= 1536),
        Row(f"`train --engine dask` (lightgbm.dask, 2 workers, {source}): F1 on the latest 20 % of the time range; "
            "client peak RSS", source,
            lambda d: f"{rows_of(d)}: F1 {d['phases']['train']['metrics']['f1']:.3f} ({d['trees']} trees, fit "
                      f"{d['phases']['train']['fit_seconds']:,.0f} s); {d['phases']['train']['peak_rss_mb']:,.0f} MB "
                      f"(workers {d.get('train_worker_memory', d['worker_memory'])} each, peak sum "
                      f"{d['phases']['train']['workers_peak_rss_mb']:,.0f} MB)",
            "completes; ≤ 1.5 GB", lambda d: d["phases"]["train"]["returncode"] == 0
            and d["phases"]["train"]["peak_rss_mb"] <= 1536),
        Row(f"`score` rows/s ({source}): `--engine dask` on the whole set; local vs dask on a slice", source,
            lambda d: f"{d['phases']['score_dask_full']['rows_per_s']:,.0f}; on {d['slice_rows']:,} rows: local "
                      f"{d['phases']['score_local_slice']['rows_per_s']:,.0f} vs dask "
                      f"{d['phases']['score_dask_slice']['rows_per_s']:,.0f}",
            "report", lambda d: None),
        Row(f"The same training on an external `dask scheduler` + 2 `dask worker` commands ({source})", source,
            lambda d: f"F1 {d['phases']['train_external']['metrics']['f1']:.3f} (difference "
                      f"{d['phases']['train_external']['f1_difference_vs_localcluster']:.4f} vs LocalCluster)",
            "completes; F1 within ±0.01", lambda d: d["phases"]["train_external"]["same_within_tolerance_0_01"]),
    ]


ROWS += _scale_rows("scale_20m.json")


def table(results: Path = RESULTS) -> str:
    """The Markdown table of every row whose JSON file exists."""
    lines = ["| What | Figure | Goal | Met | Source |", "|---|---|---|---|---|"]
    for row in ROWS:
        path = results / row.source
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        command = data.get("command", f"bench/results/{row.source}")
        try:
            figure, met = row.figure(data), row.met(data)
        except (KeyError, TypeError):  # the benchmark stopped before this phase
            figure, met = "not measured (the run stopped before this phase)", False
        mark = "–" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {row.what} | {figure} | {row.goal} | {mark} | "
                     f"[`{command}`](bench/results/{row.source}) |")
    return "\n".join(lines)


def readme_table(text: str) -> str:
    """The table between the markers of ``text``."""
    match = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, re.S)
    if match is None:
        raise ValueError(f"README.md has no {START} … {END} block")
    return match.group(1).rstrip("\n")


def write_readme(path: Path = README) -> None:
    text = path.read_text()
    block = re.compile(re.escape(START) + r"\n.*?" + re.escape(END), re.S)
    if not block.search(text):
        raise ValueError(f"README.md has no {START} … {END} block")
    path.write_text(block.sub(lambda _: f"{START}\n{table()}\n{END}", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    if args.write:
        write_readme()
        print(f"updated {README.name}")
    else:
        print(table())


if __name__ == "__main__":
    main()
