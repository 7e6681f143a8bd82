"""Fraud Detection Studio: explore, train and score credit-card fraud models.

The core (``data``, ``eda``, ``models``, ``training``, ``inference``, ``storage``)
imports no Panel; ``ui`` and ``api`` are thin clients of it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
