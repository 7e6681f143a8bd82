"""The model store: saved models live in ``<models_dir>/<name>/`` (model file(s) + ``metadata.json``).

* Names must match ``^[A-Za-z0-9_-]{1,64}$``; anything else (``..``, ``/``, empty, too long)
  raises :class:`InvalidModelNameError` before the file system is touched, and every path is
  checked to stay inside the models folder.
* Saving writes into a hidden temp folder and renames it into place, so a model is either
  complete or absent. ``metadata.json`` records the SHA-256 of every model file; loading
  refuses files that changed.
* Loading never runs code from a file: scikit-learn estimators are read with skops trusting
  an explicit list of types, LightGBM boosters from LightGBM's text format, metadata as JSON.
* ``active.json`` names the active model; it is written atomically so every process agrees.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraud_app.config import get_settings
from fraud_app.data import MODEL_FEATURES
from fraud_app.models.base import FraudModel, model_class
from fraud_app.models.errors import (
    InvalidModelNameError,
    ModelExistsError,
    ModelLoadError,
    ModelNotFoundError,
    UnknownModelKindError,
)
from fraud_app.models.jsonutil import read_json, write_json_atomic

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
METADATA_FILE = "metadata.json"
ACTIVE_FILE = "active.json"
#: Bumped when the folder layout changes incompatibly.
STORE_FORMAT = 1

_lock = threading.RLock()


def validate_model_name(name: Any) -> str:
    """Return ``name`` if it matches ``^[A-Za-z0-9_-]{1,64}$``, else raise :class:`InvalidModelNameError`."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80] + "...")
        raise InvalidModelNameError(
            f"invalid model name {shown}: use 1 to 64 letters, digits, '_' or '-' (no spaces, dots or slashes)")
    return name


def models_dir() -> Path:
    """The folder holding the saved models (``FRAUD_APP_MODELS_DIR``, default ``<output>/models``)."""
    return get_settings().models_dir


def model_path(name: str) -> Path:
    """``<models_dir>/<name>``, after validating ``name`` and checking the path stays inside."""
    name = validate_model_name(name)
    root = models_dir().resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise InvalidModelNameError(f"model name {name!r} resolves outside the models folder")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _library_versions() -> dict[str, str]:
    import lightgbm
    import numpy
    import sklearn
    import skops

    import fraud_app

    return {"fraud_app": fraud_app.__version__, "scikit-learn": sklearn.__version__,
            "lightgbm": lightgbm.__version__, "skops": skops.__version__, "numpy": numpy.__version__}


def save_model(model: FraudModel, name: str, overwrite: bool = False) -> Path:
    """Save a fitted ``model`` as ``name``; return its folder.

    Sets ``model.name``, a new ``model.version`` and ``model.saved_at``.

    Raises
    ------
    InvalidModelNameError : bad name.
    ModelExistsError : the name is taken and ``overwrite`` is False.
    """
    target = model_path(name)
    model._require_fitted()
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    with _lock:
        if target.exists() and not overwrite:
            raise ModelExistsError(f"a model named {name!r} already exists (choose another name or overwrite it)")
        tmp = root / f".tmp-{name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            model._save_artifacts(tmp)
            files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            version = uuid.uuid4().hex[:12]
            saved_at = _now()
            meta = model.metadata
            meta.update(name=name, version=version, saved_at=saved_at, files=files,
                        store_format=STORE_FORMAT, library_versions=_library_versions())
            write_json_atomic(tmp / METADATA_FILE, meta)
            if target.exists():
                trash = root / f".trash-{name}-{uuid.uuid4().hex}"
                os.rename(target, trash)
                os.rename(tmp, target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                try:
                    os.rename(tmp, target)
                except OSError:
                    raise ModelExistsError(f"a model named {name!r} was saved concurrently") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    model.name, model.version, model.saved_at = name, version, saved_at
    log.info("saved %s model %r (version %s) to %s", model.kind, name, version, target)
    return target


def _read_metadata(name: str) -> tuple[Path, dict[str, Any]]:
    folder = model_path(name)
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        raise ModelNotFoundError(f"no saved model named {name!r}")
    try:
        meta = read_json(meta_path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model {name!r}: unreadable {METADATA_FILE}: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise ModelLoadError(f"model {name!r}: {METADATA_FILE} is not a model description")
    return folder, meta


def _verify_files(name: str, folder: Path, meta: dict[str, Any]) -> None:
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelLoadError(f"model {name!r}: {METADATA_FILE} lists no model files")
    for rel, digest in files.items():
        path = (folder / rel).resolve()
        if not isinstance(rel, str) or rel.startswith("/") or ".." in Path(rel).parts or not path.is_relative_to(folder):
            raise ModelLoadError(f"model {name!r}: file {rel!r} lies outside the model folder")
        if not path.is_file():
            raise ModelLoadError(f"model {name!r}: file {rel!r} is missing")
        if _sha256(path) != digest:
            raise ModelLoadError(f"model {name!r}: file {rel!r} was modified after saving (checksum mismatch)")


def build_from_metadata(meta: dict[str, Any], folder: Path) -> FraudModel:
    """Rebuild a fitted model from its metadata and the artifact files in ``folder``."""
    try:
        cls = model_class(meta["kind"])
    except UnknownModelKindError as exc:
        raise ModelLoadError(str(exc)) from None
    if list(meta.get("features") or []) != list(MODEL_FEATURES):
        raise ModelLoadError(f"{meta.get('name')!r} was trained on other inputs than the 29 model features")
    try:
        model = cls(**dict(meta.get("params") or {}))
        model._restore_state(meta)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{meta.get('name')!r}: invalid metadata: {exc}") from None
    model._load_artifacts(folder)
    model._fitted = True
    return model


def load_model(name: str) -> FraudModel:
    """Load the saved model ``name``.

    Raises
    ------
    InvalidModelNameError : bad name (including any path traversal attempt).
    ModelNotFoundError : no such model.
    ModelLoadError : the files are corrupt, were modified, or contain untrusted content.
    """
    folder, meta = _read_metadata(name)
    _verify_files(name, folder, meta)
    model = build_from_metadata(meta, folder)
    model.name = name
    return model


def read_metadata(name: str) -> dict[str, Any]:
    """The saved ``metadata.json`` of ``name`` (without loading the model)."""
    return _read_metadata(name)[1]


_warned: set[tuple[str, str]] = set()


def warn_once(folder: Path | str, reason: str) -> None:
    """Log ``reason`` about a bad model folder once per process (not on every listing or request)."""
    key = (str(folder), reason)
    if key not in _warned:
        _warned.add(key)
        log.warning("model folder %s cannot be used: %s", folder, reason)


def _scan() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    root = models_dir()
    if not root.is_dir():
        return [], []
    found, invalid = [], []
    for child in root.iterdir():
        if not child.is_dir() or NAME_PATTERN.fullmatch(child.name) is None:
            continue
        try:
            meta = _read_metadata(child.name)[1]
        except ModelNotFoundError:
            continue
        except (ModelLoadError, InvalidModelNameError) as exc:  # e.g. a symlink pointing outside the folder
            warn_once(child, str(exc))
            invalid.append({"name": child.name, "reason": str(exc)})
            continue
        meta["name"] = child.name
        found.append(meta)
    found.sort(key=lambda m: (str(m.get("saved_at") or ""), m["name"]), reverse=True)
    invalid.sort(key=lambda m: m["name"])
    return found, invalid


def list_models() -> list[dict[str, Any]]:
    """Metadata of every saved model, newest first. Unusable folders are skipped (and logged once)."""
    return _scan()[0]


def list_invalid_models() -> list[dict[str, str]]:
    """Folders in the models folder that look like models but cannot be used: ``name`` and ``reason``."""
    return _scan()[1]


def model_exists(name: str) -> bool:
    """True when a model named ``name`` is saved (raises on an invalid name)."""
    return (model_path(name) / METADATA_FILE).is_file()


def delete_model(name: str) -> None:
    """Delete the saved model ``name`` (raises :class:`ModelNotFoundError` if absent)."""
    folder = model_path(name)
    with _lock:
        if not (folder / METADATA_FILE).is_file():
            raise ModelNotFoundError(f"no saved model named {name!r}")
        trash = folder.parent / f".trash-{name}-{uuid.uuid4().hex}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        active = _read_active()
        if active == name:
            (folder.parent / ACTIVE_FILE).unlink(missing_ok=True)
    log.info("deleted model %r", name)


def update_threshold(name: str, threshold: float) -> dict[str, Any]:
    """Set the saved model's decision threshold (in (0, 1)); bumps its version. Returns the new metadata."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"threshold must be between 0 and 1 (exclusive), got {value}")
    with _lock:
        folder, meta = _read_metadata(name)
        meta["threshold"] = value
        meta["version"] = uuid.uuid4().hex[:12]
        meta["threshold_updated_at"] = _now()
        write_json_atomic(folder / METADATA_FILE, meta)
    return meta


def _read_active() -> str | None:
    path = models_dir() / ACTIVE_FILE
    try:
        data = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and NAME_PATTERN.fullmatch(name) else None


def set_active_model(name: str) -> None:
    """Make ``name`` the active model for every process (raises if it is not saved)."""
    with _lock:
        if not model_exists(name):
            raise ModelNotFoundError(f"no saved model named {name!r}")
        root = models_dir()
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(root / ACTIVE_FILE, {"name": name, "set_at": _now()})


def get_active_model_name() -> str | None:
    """The explicitly active model if it still exists, else the newest saved model, else None."""
    active = _read_active()
    try:
        usable = active is not None and model_exists(active)
    except InvalidModelNameError:  # the pinned folder became a link outside the models folder
        usable = False
    if usable:
        return active
    models = list_models()
    return models[0]["name"] if models else None


__all__ = [
    "ACTIVE_FILE", "METADATA_FILE", "NAME_PATTERN", "delete_model", "get_active_model_name", "list_invalid_models",
    "list_models",
    "load_model", "model_exists", "model_path", "models_dir", "read_metadata", "save_model",
    "set_active_model", "update_threshold", "validate_model_name", "warn_once",
]
