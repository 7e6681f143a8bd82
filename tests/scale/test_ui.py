"""The UI touches of issue #14: the Dask dashboard link in the Training tab, rows and partitions read in the EDA tab."""

from __future__ import annotations

from pathlib import Path

from fraud_app.data import dataset_info, load_transactions


def test_the_eda_header_says_how_many_rows_and_partitions_it_read(lazy_env: Path, monkeypatch) -> None:
    from fraud_app.data import clear_cache
    from fraud_app.ui.eda import describe_dataset

    monkeypatch.setenv("FRAUD_APP_MAX_IN_MEMORY_ROWS", "1000000")
    clear_cache()
    try:
        info = dataset_info(load_transactions())
        assert info.partitions == 8
        assert "read 100,000 rows in 8 partitions" in describe_dataset(info)
    finally:
        clear_cache()
    monkeypatch.delenv("FRAUD_APP_DATA_PATH")
    assert "read 20,000 rows in 1 partition." in describe_dataset(dataset_info(load_transactions()))


def test_the_training_tab_shows_the_dashboard_link_only_while_a_cluster_runs(cluster) -> None:
    from fraud_app.scale import engine
    from fraud_app.ui.state import AppState
    from fraud_app.ui.training.cluster import ClusterLink, cluster_html
    from fraud_app.ui.training.controller import TrainingController

    assert cluster_html({"running": False, "scheduler": None, "workers": 0, "dashboard": None}) == ""
    view = ClusterLink(controller=TrainingController(state=AppState()))
    assert "dashboard</a>" in view.text and engine.dashboard_link() in view.text
    assert "2 workers" in view.text
    html = cluster_html({"running": True, "scheduler": "tcp://x:1", "workers": 1, "dashboard": "http://a'b/status"})
    assert "href='http://a&#x27;b/status'" in html
