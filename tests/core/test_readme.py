"""The README stays short and its figures come from the benchmarks' JSON."""

from __future__ import annotations

import re
from pathlib import Path

from bench import figures

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_figures_table_is_the_generated_one() -> None:
    text = (ROOT / "README.md").read_text()
    assert figures.readme_table(text) == figures.table(), (
        "README.md's figures table differs from bench/results/*.json: run `python -m bench.figures --write`")


def test_the_generated_table_follows_the_json(tmp_path: Path) -> None:
    for path in figures.RESULTS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    eda = tmp_path / "eda.json"
    eda.write_text(re.sub(r'"cold_first_s": [0-9.e-]+', '"cold_first_s": 9.5', eda.read_text()))
    changed = figures.table(tmp_path)
    assert changed != figures.table()
    assert "| 9.50 s | ≤ 2 s | **no** |" in changed


def test_the_readme_is_short_and_links_to_docs_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 220
    links = re.findall(r"\]\((docs/[^)]+)\)", text)
    assert len(links) >= 5
    for link in links:
        assert (ROOT / link).exists(), link
