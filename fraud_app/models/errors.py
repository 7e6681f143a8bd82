"""Errors raised by the models package (no Panel)."""

from __future__ import annotations


class InvalidModelNameError(ValueError):
    """A model name does not match ``^[A-Za-z0-9_-]{1,64}$``."""


class ModelNotFoundError(LookupError):
    """No saved model has this name."""


class ModelExistsError(ValueError):
    """A model with this name is already saved and ``overwrite`` was not given."""


class ModelLoadError(RuntimeError):
    """A saved model could not be loaded safely (corrupt, tampered with or untrusted content)."""


class UnknownModelKindError(ValueError):
    """``create`` was asked for a kind that is not registered."""


class NotFittedError(RuntimeError):
    """The model has not been fitted (or loaded) yet."""


class TrainingCancelled(Exception):
    """Training was cancelled through the ``cancel`` event or callable."""


__all__ = [
    "InvalidModelNameError", "ModelExistsError", "ModelLoadError", "ModelNotFoundError",
    "NotFittedError", "TrainingCancelled", "UnknownModelKindError",
]
