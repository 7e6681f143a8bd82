"""The model store: saved models live in ``<models_dir>/<name>/`` (model file(s) + ``metadata.json``).

* Names must match ``^[A-Za-z0-9_-]{1,64}$``; anything else (``..``, ``/``, empty, too long)
  raises :class:`InvalidModelNameError` before the file system is touched, and every path is
  checked to stay inside the models folder.
* Saving writes into a hidden temp folder and renames it into place, so a model is either
  complete or absent. ``metadata.json`` records the SHA-256 of every model file; loading
  refuses files that changed.
* Loading never runs code from a file: scikit-learn estimators are read with skops trusting
  an explicit list of types, LightGBM boosters from LightGBM's text format, metadata as JSON.
* ``active.json`` names the active model and how it became active; it is written atomically so
  every process agrees. The first model saved into an empty store is pinned; after that only
  :func:`set_active_model` changes it (see :func:`active_model_status`).
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
    """The folder holding the saved models.

    ``FRAUD_APP_MODELS_URL`` (shared storage for several servers) wins over ``FRAUD_APP_MODELS_DIR``
    (default ``<output>/models``); see :func:`models_url_path`.
    """
    settings = get_settings()
    if settings.models_url:
        return models_url_path(settings.models_url)
    return settings.models_dir


def models_url_path(url: str) -> Path:
    """The local path of a ``FRAUD_APP_MODELS_URL``: ``file://`` URLs and plain paths (a shared mount).

    Saving is a rename inside that folder, atomic on a POSIX file system, NFS included. Object
    stores (``s3://``, ``gs://``...) have no atomic rename: mount them (e.g. s3fs, gcsfuse) and
    give the mount point; such URLs are refused with a message saying so.
    """
    from fraud_app.config import ConfigError

    if "://" not in url:
        return Path(url)
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol not in ("file", "local"):
        raise ConfigError(f"FRAUD_APP_MODELS_URL={url!r}: the {protocol!r} file system has no atomic rename; mount "
                          "the store (s3fs, gcsfuse, NFS...) and give its path or a file:// URL")
    return Path(path)


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
    import xgboost

    import fraud_app

    return {"fraud_app": fraud_app.__version__, "scikit-learn": sklearn.__version__,
            "lightgbm": lightgbm.__version__, "skops": skops.__version__,
            "xgboost": xgboost.__version__, "numpy": numpy.__version__}


def save_model(model: FraudModel, name: str, overwrite: bool = False) -> Path:
    """Save a fitted ``model`` as ``name``; return its folder.

    Sets ``model.name``, a new ``model.version`` and ``model.saved_at``.

    Raises
    ------
    InvalidModelNameError : bad name.
    ModelExistsError : the name is taken and ``overwrite`` is False.
    """
    target = model_path(name)
    model.require_fitted()
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    with _lock:
        if target.exists() and not overwrite:
            raise ModelExistsError(f"a model named {name!r} already exists (choose another name or overwrite it)")
        tmp = root / f".tmp-{name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            model.save_artifacts(tmp)
            files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            version = uuid.uuid4().hex[:12]
            saved_at = _now()
            meta = model.metadata
            meta.update(name=name, version=version, saved_at=saved_at, files=files,
                        store_format=STORE_FORMAT, library_versions=_library_versions())
            if getattr(model, "monitoring_reference", None) is not None:  # fraud_app.monitoring.reference
                meta["reference"] = model.monitoring_reference
            write_json_atomic(tmp / METADATA_FILE, meta)
            pin_new = _prepare_pin(name)
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
            if pin_new:
                _pin(name, "first_saved")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    model.name, model.version, model.saved_at = name, version, saved_at
    log.info("saved %s model %r (version %s) to %s", model.kind, name, version, target)
    return target


def _prepare_pin(name: str) -> bool:
    """Before ``name`` is saved: True if it must be pinned as active (no model is active).

    A store with saved models but no valid pin (from before the rule) first pins its newest
    model, the one it served until now, so that saving never changes the active model.
    """
    active = _read_active()
    if active is not None and model_exists(active["name"]):
        return False
    others = [m["name"] for m in list_models() if m["name"] != name]
    if others:
        _pin(others[0], "fallback")
        return False
    return True


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
    """Rebuild a fitted model from its metadata and the artifact files in ``folder``.

    Models saved before out-of-fold thresholds and calibration (``model_format`` 1) load as
    they were (no calibration, threshold from their validation split). A saved model that the
    current code cannot rebuild fails with a :class:`ModelLoadError` that says to retrain it.
    """
    name = meta.get("name")
    try:
        cls = model_class(meta["kind"])
    except UnknownModelKindError as exc:
        raise ModelLoadError(f"{exc}; {_RETRAIN}") from None
    if list(meta.get("features") or []) != list(MODEL_FEATURES):
        raise ModelLoadError(f"{name!r} was trained on other inputs than the 29 model features")
    params = dict(meta.get("params") or {})
    for key, value in cls.legacy_params.items():  # saved before the parameter existed: how it behaved then
        if key not in params and cls.Params is not None and key in cls.Params.param:
            params[key] = value
    try:
        model = cls(**params)
        model.restore_state(meta)
    except (TypeError, ValueError, KeyError) as exc:
        saved_by = (meta.get("library_versions") or {}).get("fraud_app", "an older version")
        raise ModelLoadError(f"{name!r} was saved by fraud_app {saved_by} and its metadata no longer fits "
                             f"({exc}); {_RETRAIN}") from None
    model.load_artifacts(folder)
    model.fitted = True
    return model


_RETRAIN = "retrain it (Training tab, or `python -m fraud_app train --model KIND --name NAME --overwrite`)"


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
        if active is not None and active["name"] == name:
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


#: How the active model became active (``active_model_status()["how"]``).
ACTIVE_HOW: dict[str, str] = {
    "explicit": "made active explicitly",
    "first_saved": "pinned when it was saved, as no model was active",
    "fallback": "pinned as the newest saved model, as the active model was deleted or none was pinned",
}


def _read_active() -> dict[str, Any] | None:
    path = models_dir() / ACTIVE_FILE
    try:
        data = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        return None
    name = data.get("name")
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        return None
    how = data.get("how") if data.get("how") in ACTIVE_HOW else "explicit"  # files before the rule: explicit
    return {"name": name, "how": how, "set_at": data.get("set_at")}


def _pin(name: str, how: str) -> None:
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / ACTIVE_FILE, {"name": name, "how": how, "set_at": _now()})
    log.info("active model: %r (%s)", name, ACTIVE_HOW[how])


def set_active_model(name: str) -> None:
    """Make ``name`` the active model for every process (raises if it is not saved).

    The only way, besides the first save into an empty store, to change the active model.
    """
    with _lock:
        if not model_exists(name):
            raise ModelNotFoundError(f"no saved model named {name!r}")
        _pin(name, "explicit")


def active_model_status() -> dict[str, Any]:
    """The active model and how it became active.

    Returns
    -------
    dict
        ``name`` (None when no model is saved), ``how`` (``"explicit"``, ``"first_saved"``,
        ``"fallback"`` or None), ``set_at`` (ISO time it was pinned) and ``description``
        (a sentence for the UI, e.g. "made active explicitly").

    The rule (also in ``docs/models.md``): the first model saved while no model is active is
    pinned as active; after that only :func:`set_active_model` changes it. Saving another
    model never does. If the active model is deleted (or a store from before this rule has
    no pin), the newest saved model is pinned as a recorded ``"fallback"``.
    """
    with _lock:
        active = _read_active()
        try:
            usable = active is not None and model_exists(active["name"])
        except InvalidModelNameError:  # the pinned folder became a link outside the models folder
            usable = False
        if not usable:
            models = list_models()
            if not models:
                return {"name": None, "how": None, "set_at": None, "description": "no model is saved"}
            _pin(models[0]["name"], "fallback")
            active = _read_active()
    assert active is not None
    return {**active, "description": ACTIVE_HOW[active["how"]]}


def get_active_model_name() -> str | None:
    """The active model's name (see :func:`active_model_status` for the rule), else None."""
    return active_model_status()["name"]


__all__ = [
    "ACTIVE_FILE", "ACTIVE_HOW", "METADATA_FILE", "NAME_PATTERN", "active_model_status", "delete_model",
    "get_active_model_name", "list_invalid_models", "list_models",
    "load_model", "model_exists", "model_path", "models_dir", "read_metadata", "save_model",
    "set_active_model", "update_threshold", "validate_model_name", "warn_once",
]
