"""Thread pools owned by one process: after a fork (``panel serve --num-procs``) a child makes its own."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}


def process_pool(name: str, max_workers: int) -> ThreadPoolExecutor:
    """The pool ``name`` of this process (threads ``<name>_N``): made on first use, and again after a fork."""
    pid = os.getpid()
    entry = _pools.get(name)
    if entry is not None and entry[0] == pid:
        return entry[1]
    with _lock:
        entry = _pools.get(name)
        if entry is None or entry[0] != pid:
            entry = _pools[name] = (pid, ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name))
        return entry[1]


__all__ = ["process_pool"]
