"""Rate-limited logging, so a persistent failure cannot flood the app's logs."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RateLimitedLog"]

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
