"""The Dask engine: an existing cluster (``FRAUD_APP_DASK_SCHEDULER``) or a LocalCluster on demand.

One client per process. :func:`get_client` connects (or starts the LocalCluster) the first time
it is called and the client is closed, with its LocalCluster, at :func:`close` or at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any

from fraud_app.config import get_settings

log = logging.getLogger(__name__)

#: Seconds to wait for an external scheduler before giving up.
CONNECT_TIMEOUT_S = 10.0

_lock = threading.Lock()
_client: Any = None
_cluster: Any = None


class SchedulerUnreachableError(ConnectionError):
    """No Dask scheduler answered at the configured address within the timeout."""


def _local_cluster(workers: int | None, memory_limit: str | None) -> Any:
    from distributed import LocalCluster

    settings = get_settings()
    n_workers = workers or settings.dask_workers or os.cpu_count() or 1
    # The workers inherit this process's stdout; LightGBM's C++ code prints its network set-up there.
    # Give them stderr as stdout, so that what the CLI prints (e.g. --json) stays clean.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            memory_limit=memory_limit or settings.dask_memory_limit,
                            dashboard_address=":0", silence_logs=logging.WARNING)
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A client of the scheduler at ``address``; :class:`SchedulerUnreachableError` after ``timeout`` s."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachableError(
            f"no Dask scheduler answered at {address} within {timeout:g} s ({type(exc).__name__}); start one "
            "(`dask scheduler` and `dask worker ADDRESS`) or unset FRAUD_APP_DASK_SCHEDULER to use a LocalCluster"
        ) from None


def get_client(*, workers: int | None = None, memory_limit: str | None = None,
               timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """The process's Dask client: ``FRAUD_APP_DASK_SCHEDULER`` if set, else a LocalCluster started now.

    ``workers``/``memory_limit`` size the LocalCluster (defaults: ``FRAUD_APP_DASK_WORKERS`` or one
    worker per core, ``FRAUD_APP_DASK_MEMORY_LIMIT``); they are ignored for an external scheduler.
    """
    global _client, _cluster
    with _lock:
        if _client is not None and _client.status == "running":
            return _client
        address = get_settings().dask_scheduler
        if address:
            _client = connect(address, timeout)
            log.info("connected to the Dask scheduler at %s", address)
        else:
            from distributed import Client

            _cluster = _local_cluster(workers, memory_limit)
            _client = Client(_cluster)
            log.info("started a LocalCluster: %d workers, dashboard %s", len(_cluster.workers),
                     _client.dashboard_link)
        return _client


def owns_cluster() -> bool:
    """True when this process started the LocalCluster in use (so it may restart or close it)."""
    return _cluster is not None


def current_client() -> Any:
    """The client if one is running, else None (never starts a cluster)."""
    client = _client
    return client if client is not None and client.status == "running" else None


def dashboard_link() -> str | None:
    """The Dask dashboard URL of the running cluster, or None when no cluster is in use."""
    client = current_client()
    if client is None:
        return None
    try:
        return str(client.dashboard_link)
    except (KeyError, AttributeError):
        return None


def describe() -> dict[str, Any]:
    """What the engine is: ``{"running", "scheduler", "workers", "dashboard"}`` (no cluster is started)."""
    client = current_client()
    if client is None:
        return {"running": False, "scheduler": get_settings().dask_scheduler, "workers": 0, "dashboard": None}
    info = client.scheduler_info()
    return {"running": True, "scheduler": client.scheduler.address, "workers": len(info.get("workers", {})),
            "dashboard": dashboard_link()}


def close() -> None:
    """Close the client and the LocalCluster this process started (an external cluster keeps running)."""
    global _client, _cluster
    with _lock:
        client, cluster, _client, _cluster = _client, _cluster, None, None
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


atexit.register(close)

__all__ = ["CONNECT_TIMEOUT_S", "SchedulerUnreachableError", "close", "connect", "current_client",
           "dashboard_link", "describe", "get_client"]
