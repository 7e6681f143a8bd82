"""All paths and settings in one place.

Every setting comes from an environment variable with a default, read each time
:func:`get_settings` is called, so that tests (and ``monkeypatch.setenv``) see
changes without reloading modules.

==============================  ==============================================
Variable                        Default
==============================  ==============================================
``FRAUD_APP_HOME``              the project root (folder holding ``app.py``)
``FRAUD_APP_DATA_DIR``          ``<home>/data``
``FRAUD_APP_OUTPUT_DIR``        ``<home>/output``
``FRAUD_APP_MODELS_DIR``        ``<output>/models``
``FRAUD_APP_DATABASE_URL``      ``sqlite:///<output>/fraud_app.sqlite3``
``FRAUD_APP_API_TOKEN``         unset: the API and the UI need no credential
                                (set but blank is an error)
``FRAUD_APP_ALLOWED_HOSTS``     unset: only localhost, 127.0.0.1 and [::1]
                                (comma-separated ``host`` or ``host:port``)
``FRAUD_APP_DB_BUSY_TIMEOUT``   ``5`` seconds a write waits for a database lock
``FRAUD_APP_MAX_BUFFERED_MB``   ``64`` MiB of request bodies buffered at once
``FRAUD_APP_LOGIN_HOURS``       ``12``: lifetime of the token login cookie
``FRAUD_APP_LOG_LEVEL``         ``INFO``
``FRAUD_APP_LOG_DIR``           ``<home>/logs``
``FRAUD_APP_DATASET``           ``real`` (or ``synthetic`` for the demo mode)
``FRAUD_APP_SYNTHETIC_ROWS``    ``20000``
``FRAUD_APP_SYNTHETIC_FRAUD_RATE`` ``0.01``
``FRAUD_APP_SEED``              ``0``
``FRAUD_APP_DATA_PATH``         unset: ``<data_dir>/creditcard.parquet``; else a Parquet/CSV file
                                or a directory of partitioned Parquet files (local or fsspec URL)
``FRAUD_APP_MAX_IN_MEMORY_ROWS`` ``5000000``: above it the data set opens lazily as a Dask DataFrame
``FRAUD_APP_DASK_SCHEDULER``    unset: a LocalCluster starts on demand; else ``tcp://host:port``
``FRAUD_APP_DASK_WORKERS``      unset: one worker per core (LocalCluster only)
``FRAUD_APP_DASK_MEMORY_LIMIT`` ``auto``: memory limit per LocalCluster worker (e.g. ``3GB``)
``FRAUD_APP_MODELS_URL``        unset: the local models dir; else an fsspec URL of a shared store
==============================  ==============================================
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

DATASET_KINDS = ("real", "synthetic")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting from the environment has a value we cannot use."""


def _default_home() -> Path:
    package_root = Path(__file__).resolve().parent.parent
    if (package_root / "app.py").exists():
        return package_root
    return Path.cwd()


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`get_settings`."""

    home: Path
    data_dir: Path
    output_dir: Path
    models_dir: Path
    database_url: str
    api_token: str | None
    log_level: str
    log_dir: Path
    dataset: str
    synthetic_rows: int
    synthetic_fraud_rate: float
    seed: int
    allowed_hosts: tuple[str, ...] = ()
    db_busy_timeout_s: float = 5.0
    max_buffered_bytes: int = 64 * 1024 * 1024
    login_hours: float = 12.0
    #: Most API scoring requests scored and committed together (1 turns micro-batching off).
    batch_max: int = 64
    #: Extra milliseconds a batch leader waits for more requests (0: never wait).
    batch_wait_ms: float = 0.0
    #: SQLite ``PRAGMA synchronous``: ``NORMAL`` (crash-safe) or ``FULL`` (also power-loss safe).
    sqlite_synchronous: str = "NORMAL"
    data_path: str | None = None
    max_in_memory_rows: int = 5_000_000
    dask_scheduler: str | None = None
    dask_workers: int | None = None
    dask_memory_limit: str = "auto"
    models_url: str | None = None

    @property
    def parquet_path(self) -> Path:
        """Where ``data fetch`` writes the real data set."""
        return self.data_dir / "creditcard.parquet"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _int(name: str, default: int, minimum: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _float(name: str, default: float, low: float, high: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low < value < high:
        raise ConfigError(f"{name}={value} must be between {low} and {high} (exclusive)")
    return value


#: Every variable :func:`_read_settings` reads (a test keeps this list complete).
_VARIABLES = ("FRAUD_APP_HOME", "FRAUD_APP_DATA_DIR", "FRAUD_APP_OUTPUT_DIR", "FRAUD_APP_MODELS_DIR",
              "FRAUD_APP_DATABASE_URL", "FRAUD_APP_API_TOKEN", "FRAUD_APP_LOG_LEVEL", "FRAUD_APP_LOG_DIR",
              "FRAUD_APP_DATASET", "FRAUD_APP_SYNTHETIC_ROWS", "FRAUD_APP_SYNTHETIC_FRAUD_RATE", "FRAUD_APP_SEED",
              "FRAUD_APP_ALLOWED_HOSTS", "FRAUD_APP_DB_BUSY_TIMEOUT", "FRAUD_APP_MAX_BUFFERED_MB",
              "FRAUD_APP_LOGIN_HOURS", "FRAUD_APP_BATCH_MAX", "FRAUD_APP_BATCH_WAIT_MS",
              "FRAUD_APP_SQLITE_SYNCHRONOUS", "FRAUD_APP_DATA_PATH", "FRAUD_APP_MAX_IN_MEMORY_ROWS",
              "FRAUD_APP_DASK_SCHEDULER", "FRAUD_APP_DASK_WORKERS", "FRAUD_APP_DASK_MEMORY_LIMIT",
              "FRAUD_APP_MODELS_URL")
_cache: tuple[tuple, Settings, str | None] | None = None


def _environment_key() -> tuple:
    """The raw values of :data:`_VARIABLES` (a few microseconds: read from the environment's own mapping,
    not through ``os.environ.get``, which costs about 2 µs a name)."""
    data = getattr(os.environ, "_data", None)
    if type(data) is dict:
        return tuple(map(data.get, _encoded_variables()))
    return tuple(os.environ.get(name) for name in _VARIABLES)


@functools.cache
def _encoded_variables() -> tuple:
    return tuple(os.environ.encodekey(name) for name in _VARIABLES)


def _home_uses_cwd() -> bool:
    """True when the settings depend on the working directory: ``FRAUD_APP_HOME`` is relative, or unset
    while the package does not sit in a checkout (then the home is the working directory)."""
    home = _env("FRAUD_APP_HOME")
    if home:
        return not os.path.isabs(home)
    return _default_home() == Path.cwd()


def get_settings() -> Settings:
    """The settings from the environment, with the defaults applied.

    Parsed again only when one of its variables changed since the last call (or the working
    directory, when the settings depend on it: see :func:`_home_uses_cwd`), so hot paths (every
    API request, in any thread) may call it freely: usually no system call at all.
    """
    global _cache
    key = _environment_key()
    cached = _cache
    if cached is not None and cached[0] == key and (cached[2] is None or cached[2] == os.getcwd()):
        return cached[1]
    settings = _read_settings()
    _cache = (key, settings, os.getcwd() if _home_uses_cwd() else None)
    return settings


def _token() -> str | None:
    raw = os.environ.get("FRAUD_APP_API_TOKEN")
    if raw is None:
        return None
    if raw.strip() == "":
        raise ConfigError("FRAUD_APP_API_TOKEN is set but blank: unset it to run without a token, or give it "
                          "a secret value (an empty token is not 'auth off')")
    if raw != raw.strip() or any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise ConfigError("FRAUD_APP_API_TOKEN must not contain spaces or control characters")
    return raw


_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]{1,5})?")


def _hosts() -> tuple[str, ...]:
    raw = _env("FRAUD_APP_ALLOWED_HOSTS")
    if raw is None:
        return ()
    hosts = []
    for item in raw.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if _HOST.fullmatch(item) is None:
            raise ConfigError(f"FRAUD_APP_ALLOWED_HOSTS: {item!r} is not a host or host:port "
                              "(no scheme, no path; e.g. fraud.example.com or fraud.example.com:443)")
        hosts.append(item)
    return tuple(hosts)


def _read_settings() -> Settings:
    home = Path(_env("FRAUD_APP_HOME") or _default_home()).resolve()
    data_dir = Path(_env("FRAUD_APP_DATA_DIR") or home / "data")
    output_dir = Path(_env("FRAUD_APP_OUTPUT_DIR") or home / "output")
    models_dir = Path(_env("FRAUD_APP_MODELS_DIR") or output_dir / "models")
    database_url = _env("FRAUD_APP_DATABASE_URL") or f"sqlite:///{output_dir / 'fraud_app.sqlite3'}"
    log_level = (_env("FRAUD_APP_LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"FRAUD_APP_LOG_LEVEL={log_level!r} must be one of {', '.join(LOG_LEVELS)}")
    dataset = (_env("FRAUD_APP_DATASET") or "real").lower()
    if dataset not in DATASET_KINDS:
        raise ConfigError(f"FRAUD_APP_DATASET={dataset!r} must be one of {', '.join(DATASET_KINDS)}")
    return Settings(
        home=home,
        data_dir=data_dir,
        output_dir=output_dir,
        models_dir=models_dir,
        database_url=database_url,
        api_token=_token(),
        log_level=log_level,
        log_dir=Path(_env("FRAUD_APP_LOG_DIR") or home / "logs"),
        dataset=dataset,
        synthetic_rows=_int("FRAUD_APP_SYNTHETIC_ROWS", 20_000, 100),
        synthetic_fraud_rate=_float("FRAUD_APP_SYNTHETIC_FRAUD_RATE", 0.01, 0.0, 0.5),
        seed=_int("FRAUD_APP_SEED", 0, 0),
        allowed_hosts=_hosts(),
        db_busy_timeout_s=_float("FRAUD_APP_DB_BUSY_TIMEOUT", 5.0, 0.0, 3600.0),
        max_buffered_bytes=_int("FRAUD_APP_MAX_BUFFERED_MB", 64, 17) * 1024 * 1024,
        login_hours=_float("FRAUD_APP_LOGIN_HOURS", 12.0, 0.0, 24.0 * 366),
        batch_max=_int("FRAUD_APP_BATCH_MAX", 64, 1),
        batch_wait_ms=max(0.0, _float("FRAUD_APP_BATCH_WAIT_MS", 0.0, -1e-9, 1000.0)),
        sqlite_synchronous=_synchronous(),
        data_path=_env("FRAUD_APP_DATA_PATH"),
        max_in_memory_rows=_int("FRAUD_APP_MAX_IN_MEMORY_ROWS", 5_000_000, 1),
        dask_scheduler=_scheduler(),
        dask_workers=_int("FRAUD_APP_DASK_WORKERS", 0, 1) or None,
        dask_memory_limit=_env("FRAUD_APP_DASK_MEMORY_LIMIT") or "auto",
        models_url=_env("FRAUD_APP_MODELS_URL"),
    )


def _synchronous() -> str:
    value = (_env("FRAUD_APP_SQLITE_SYNCHRONOUS") or "NORMAL").upper()
    if value not in ("NORMAL", "FULL"):
        raise ConfigError(f"FRAUD_APP_SQLITE_SYNCHRONOUS={value!r} must be NORMAL or FULL")
    return value


def _scheduler() -> str | None:
    raw = _env("FRAUD_APP_DASK_SCHEDULER")
    if raw is None:
        return None
    if not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:[0-9]{1,5})?/?", raw):
        raise ConfigError(f"FRAUD_APP_DASK_SCHEDULER={raw!r} is not a scheduler address "
                          "(expected e.g. tcp://scheduler-host:8786)")
    return raw
