"""Rate-limited logging, so a persistent failure cannot flood the app's logs."""

from __future__ import annotations

import logging
import logging.handlers
import threading
import time
from pathlib import Path

from .errors import ConfigError

__all__ = ["RateLimitedLog", "configure_package_logging"]

# A failure is logged at most this often per place (it is still counted every time, where counted).
LOG_INTERVAL = 60.0


class RateLimitedLog:
    """``log(key, ...)`` emits at most once per ``interval`` seconds for each key."""

    def __init__(self, logger: logging.Logger, level: int, interval: float = LOG_INTERVAL) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def log(self, key: str, msg: str, *args: object, exc_info: BaseException | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self._interval) < self._interval:
                return
            self._last[key] = now
        self._logger.log(self._level, msg, *args, exc_info=exc_info)


def configure_package_logging(debug: bool, log_file: str = "") -> None:
    """Set up the ``asgi_monitor`` logger only; the root logger is the app's business.

    ``debug`` lowers our logger to DEBUG and, if nothing would show those lines (no handler on
    our logger or the root), adds a stderr handler. ``log_file`` adds a file handler. Called
    once per process; calling again with the same settings adds nothing.
    """
    package = logging.getLogger("asgi_monitor")
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if debug:
        package.setLevel(logging.DEBUG)
        if not package.handlers and not logging.getLogger().handlers:
            stream = logging.StreamHandler()
            stream.setFormatter(formatter)
            stream.set_name("asgi_monitor-debug")
            package.addHandler(stream)
    if log_file and not any(h.get_name() == f"asgi_monitor-file:{log_file}"
                            for h in package.handlers):
        try:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000,
                                                           backupCount=5, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"MONITORING_LOG_FILE (log_file) must be a writable file path, "
                              f"got {log_file!r}: {exc.strerror}") from None
        handler.setFormatter(formatter)
        handler.set_name(f"asgi_monitor-file:{log_file}")
        package.addHandler(handler)
        if package.level == logging.NOTSET or package.level > logging.INFO:
            package.setLevel(logging.INFO)
