"""Every setting comes from an environment variable with a default."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_app.config import ConfigError, get_settings


def test_defaults_derive_from_home(monkeypatch, tmp_path):
    for name in ("FRAUD_APP_DATA_DIR", "FRAUD_APP_OUTPUT_DIR", "FRAUD_APP_LOG_DIR", "FRAUD_APP_DATASET",
                 "FRAUD_APP_LOG_LEVEL", "FRAUD_APP_SYNTHETIC_ROWS", "FRAUD_APP_SEED",
                 "FRAUD_APP_SYNTHETIC_FRAUD_RATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRAUD_APP_HOME", str(tmp_path))
    s = get_settings()
    assert s.data_dir == tmp_path / "data"
    assert s.output_dir == tmp_path / "output"
    assert s.models_dir == tmp_path / "output" / "models"
    assert s.database_url == f"sqlite:///{tmp_path / 'output' / 'fraud_app.sqlite3'}"
    assert s.log_dir == tmp_path / "logs"
    assert s.api_token is None
    assert s.log_level == "INFO"
    assert s.dataset == "real"
    assert s.parquet_path == tmp_path / "data" / "creditcard.parquet"


def test_every_setting_reads_its_variable(monkeypatch, tmp_path):
    env = {
        "FRAUD_APP_DATA_DIR": tmp_path / "d",
        "FRAUD_APP_OUTPUT_DIR": tmp_path / "o",
        "FRAUD_APP_MODELS_DIR": tmp_path / "m",
        "FRAUD_APP_LOG_DIR": tmp_path / "l",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("FRAUD_APP_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("FRAUD_APP_API_TOKEN", "s3cret")
    monkeypatch.setenv("FRAUD_APP_LOG_LEVEL", "debug")
    monkeypatch.setenv("FRAUD_APP_DATASET", "SYNTHETIC")
    monkeypatch.setenv("FRAUD_APP_SYNTHETIC_ROWS", "1234")
    monkeypatch.setenv("FRAUD_APP_SYNTHETIC_FRAUD_RATE", "0.2")
    monkeypatch.setenv("FRAUD_APP_SEED", "9")
    s = get_settings()
    assert (s.data_dir, s.output_dir, s.models_dir, s.log_dir) == tuple(Path(v) for v in env.values())
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.api_token == "s3cret"
    assert s.log_level == "DEBUG"
    assert s.dataset == "synthetic"
    assert (s.synthetic_rows, s.synthetic_fraud_rate, s.seed) == (1234, 0.2, 9)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FRAUD_APP_DATASET", "kaggle", "FRAUD_APP_DATASET='kaggle' must be one of real, synthetic"),
        ("FRAUD_APP_LOG_LEVEL", "LOUD", "FRAUD_APP_LOG_LEVEL='LOUD'"),
        ("FRAUD_APP_SYNTHETIC_ROWS", "many", "FRAUD_APP_SYNTHETIC_ROWS='many' is not an integer"),
        ("FRAUD_APP_SYNTHETIC_ROWS", "5", "must be at least 100"),
        ("FRAUD_APP_SYNTHETIC_FRAUD_RATE", "0.9", "must be between 0.0 and 0.5"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_settings()


def test_logging_writes_a_rotating_file(app_env):
    import logging

    from fraud_app.logging_setup import configure_logging

    logger = configure_logging()
    try:
        logging.getLogger("fraud_app.test").warning("hello log file")
        for handler in logger.handlers:
            handler.flush()
        assert "hello log file" in (app_env / "logs" / "fraud_app.log").read_text()
    finally:
        for handler in list(logger.handlers):
            if getattr(handler, "_fraud_app_handler", False):
                logger.removeHandler(handler)
                handler.close()


def test_the_settings_cache_watches_every_variable_read():
    """get_settings() is cached on the variables it reads: one missing from that list would go stale."""
    import re

    from fraud_app import config

    named = set(re.findall(r'"(FRAUD_APP_[A-Z_]+)"', Path(config.__file__).read_text()))
    assert len(named) == 25  # 16 + 3 for micro-batching and SQLite durability (#12) + 6 for Dask and the model store (#14)
    assert named == set(config._VARIABLES)


def test_settings_follow_a_changed_variable(monkeypatch):
    monkeypatch.setenv("FRAUD_APP_API_TOKEN", "one")
    assert get_settings().api_token == "one"
    monkeypatch.setenv("FRAUD_APP_API_TOKEN", "two")
    assert get_settings().api_token == "two"


def test_settings_follow_the_working_directory_only_when_they_depend_on_it(monkeypatch, tmp_path):
    """A relative FRAUD_APP_HOME resolves against the working directory, so a ``chdir`` gives new settings;
    an absolute one does not depend on it (then no call has to look the directory up)."""
    from fraud_app import config

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("FRAUD_APP_HOME", "home")
    assert get_settings().home == tmp_path / "a" / "home"
    monkeypatch.chdir(tmp_path / "b")
    assert get_settings().home == tmp_path / "b" / "home"
    assert config._cache[2] == str(tmp_path / "b")

    monkeypatch.setenv("FRAUD_APP_HOME", str(tmp_path / "abs"))
    assert get_settings().home == tmp_path / "abs"
    assert config._cache[2] is None, "an absolute home does not depend on the working directory"
    monkeypatch.chdir(tmp_path / "a")
    assert get_settings().home == tmp_path / "abs"
