"""Logging to the console and to rotating files under the log dir."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from fraud_app.config import get_settings

_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
_MARK = "_fraud_app_handler"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners and notebooks swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # the base class assigns it; we always follow sys.stderr
        pass


def configure_logging(level: str | None = None) -> logging.Logger:
    """Attach a console handler and a rotating file handler to the ``fraud_app`` logger.

    Idempotent: calling it again updates the level, and moves the file handler when
    the log dir setting changed.
    """
    settings = get_settings()
    logger = logging.getLogger("fraud_app")
    logger.setLevel(level or settings.log_level)
    logger.propagate = False
    ours = [h for h in logger.handlers if getattr(h, _MARK, False)]
    if not any(isinstance(h, _StderrHandler) for h in ours):
        console = _StderrHandler()
        console.setFormatter(logging.Formatter(_FORMAT))
        setattr(console, _MARK, True)
        logger.addHandler(console)
    log_file = settings.log_dir / "fraud_app.log"
    for handler in ours:
        if isinstance(handler, logging.handlers.RotatingFileHandler):
            if handler.baseFilename == str(log_file.absolute()):
                return logger
            logger.removeHandler(handler)
            handler.close()
    try:
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=5_000_000, backupCount=5, encoding="utf-8"
        )
    except OSError as exc:
        logger.warning("cannot write log files under %s: %s", settings.log_dir, exc)
    else:
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        setattr(file_handler, _MARK, True)
        logger.addHandler(file_handler)
    return logger
