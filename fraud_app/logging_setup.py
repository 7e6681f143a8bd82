"""Logging to the console and to rotating files under the log dir."""

from __future__ import annotations

import logging
import logging.handlers

from fraud_app.config import get_settings

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
_MARK = "_fraud_app_handler"


def configure_logging(level: str | None = None) -> logging.Logger:
    """Attach a console handler and a rotating file handler to the ``fraud_app`` logger.

    Idempotent: calling it again only updates the level.
    """
    settings = get_settings()
    logger = logging.getLogger("fraud_app")
    logger.setLevel(level or settings.log_level)
    if any(getattr(h, _MARK, False) for h in logger.handlers):
        return logger
    formatter = logging.Formatter(_FORMAT)
    console = logging.StreamHandler()
    console.setFormatter(formatter)
    setattr(console, _MARK, True)
    logger.addHandler(console)
    try:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            settings.log_dir / "fraud_app.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8"
        )
    except OSError as exc:
        logger.warning("cannot write log files under %s: %s", settings.log_dir, exc)
    else:
        file_handler.setFormatter(formatter)
        setattr(file_handler, _MARK, True)
        logger.addHandler(file_handler)
    logger.propagate = False
    return logger
