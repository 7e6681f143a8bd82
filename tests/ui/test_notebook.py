"""examples/fraud_studio.ipynb runs top to bottom in a real kernel and shows Panel output."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "fraud_studio.ipynb"
PANEL_MIMETYPES = {
    "application/vnd.holoviews_load.v0+json",
    "application/vnd.holoviews_exec.v0+json",
}

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def test_notebook_executes_and_shows_panel_output(app_env: Path) -> None:
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The stored notebook carries no outputs: they would go stale.
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    env = {**os.environ, "FRAUD_APP_DATASET": "synthetic"}
    client.execute(env=env)  # raises CellExecutionError on any error

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    stderr = "".join(out.get("text", "") for out in outputs if out.get("name") == "stderr")
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    mimetypes = {mime for out in outputs for mime in out.get("data", {})}
    assert PANEL_MIMETYPES <= mimetypes, mimetypes
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "20,000 transactions, 200 frauds (1.000%)" in text
    # The cells ending with the EDA section, the distribution pane and the app each show a Panel view.
    shown = [cell for cell in notebook.cells if cell.cell_type == "code"
             and cell.source.rstrip().splitlines()[-1] in ("eda_section", "eda_section.charts[\"distribution\"]", "app")]
    assert len(shown) == 3
    for cell in shown:
        assert any("application/vnd.holoviews_exec.v0+json" in out.get("data", {}) for out in cell.outputs), cell.source
