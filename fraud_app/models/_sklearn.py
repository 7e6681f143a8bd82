"""Helpers for scikit-learn kinds: safe skops persistence and decision-path contributions."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from fraud_app.models.errors import ModelLoadError

#: Types (beyond skops' own defaults: scikit-learn estimators, numpy, builtins) that a saved
#: model file may contain. Anything else makes loading fail before any object is built.
SKOPS_TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)


def skops_dump(estimator: Any, path: Path) -> None:
    """Write ``estimator`` with skops (a zip of JSON + numpy arrays, no pickle)."""
    import skops.io as sio

    sio.dump(estimator, path)


def skops_load(path: Path, expected_type: type) -> Any:
    """Load a skops file trusting only :data:`SKOPS_TRUSTED_TYPES` (and skops' safe defaults).

    Raises
    ------
    ModelLoadError
        when the file is not a skops archive (e.g. a pickle), names a type that is not trusted,
        or holds something other than ``expected_type``. Nothing from the file is executed.
    """
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    if not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path.name} is not a skops archive (refusing to load it)")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # malformed archive: report, never fall back to pickle
        raise ModelLoadError(f"{path.name} is not a valid skops file: {exc}") from None
    refused = sorted(set(untrusted) - set(SKOPS_TRUSTED_TYPES))
    if refused:
        raise ModelLoadError(f"{path.name} contains untrusted type(s): {', '.join(refused)}; refusing to load it")
    try:
        estimator = sio.load(path, trusted=list(SKOPS_TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from None
    except Exception as exc:
        raise ModelLoadError(f"{path.name} could not be loaded: {exc}") from None
    if not isinstance(estimator, expected_type):
        raise ModelLoadError(f"{path.name} holds a {type(estimator).__name__}, expected {expected_type.__name__}")
    return estimator


def _path_matrix(tree: Any, n_features: int, positive_index: int) -> tuple[sparse.csr_matrix, float]:
    """Per-node contribution matrix (nodes x features) and the root value, for one fitted tree.

    Moving from a parent node to its child changes the node's P(fraud) by
    ``value[child] - value[parent]``; that change is credited to the parent's split feature.
    """
    t = tree.tree_
    value = t.value[:, 0, :]
    totals = value.sum(axis=1)
    p = value[:, positive_index] / np.where(totals > 0, totals, 1.0)
    n_nodes = t.node_count
    parent = np.full(n_nodes, -1)
    for children in (t.children_left, t.children_right):
        has = children >= 0
        parent[children[has]] = np.flatnonzero(has)
    nodes = np.flatnonzero(parent >= 0)
    feats = t.feature[parent[nodes]]
    deltas = p[nodes] - p[parent[nodes]]
    matrix = sparse.csr_matrix((deltas, (nodes, feats)), shape=(n_nodes, n_features))
    return matrix, float(p[0])


def tree_contributions(trees: list[Any], X: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, float]:
    """Decision-path (Saabas) contributions in probability units, averaged over ``trees``.

    Returns the (n, n_features) contributions and the expected value (the root P(fraud));
    for each row, ``expected + contributions.sum()`` equals the trees' mean predicted P(fraud).
    """
    positive_index = int(np.flatnonzero(np.asarray(classes) == 1)[0])
    X32 = np.asarray(X, dtype=np.float32)
    total = np.zeros((X.shape[0], X.shape[1]))
    expected = 0.0
    for tree in trees:
        matrix, root = _path_matrix(tree, X.shape[1], positive_index)
        path = tree.decision_path(X32)
        total += np.asarray((path @ matrix).todense())
        expected += root
    return total / len(trees), expected / len(trees)
