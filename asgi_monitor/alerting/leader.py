"""One sender among several workers: an exclusive, non-blocking lock on a lock file.

Every worker runs the alert loop; each interval the ones without the lock try to take it, so if
the holder dies (the kernel drops its lock with its file descriptors) another takes over within
one interval. Only the holder evaluates rules and sends, so 4 workers never send 4 e-mails.
"""

from __future__ import annotations

import logging
import os

from .locks import lock, unlock

__all__ = ["LeaderLock"]

logger = logging.getLogger("asgi_monitor.alerts")


class LeaderLock:
    """``acquire()`` is True while this process holds the lock (None path: always True)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self.path is None or self._fd is not None

    def acquire(self) -> bool:
        if self.held:
            return True
        assert self.path is not None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            taken = lock(fd, blocking=False)
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        logger.info("alerts: this process (pid %d) evaluates and sends alerts (lock %s)",
                    os.getpid(), self.path)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            unlock(fd)
            os.close(fd)
