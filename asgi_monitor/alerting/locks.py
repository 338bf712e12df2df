"""An exclusive advisory lock on an open file, with the same two calls on every OS.

POSIX has ``fcntl.flock`` (whole file, dropped by the kernel when the holder dies); Windows has
``msvcrt.locking`` on a byte range instead (here the first byte, also dropped when the process
ends). Each module exists only on its own OS, so it is imported when a lock is first taken, never
on ``import asgi_monitor``: a single-process app on any platform never reaches this code.
"""

from __future__ import annotations

import errno
import os
import sys
import time

__all__ = ["lock", "unlock"]

# msvcrt.locking(LK_LOCK) gives up after ten one-second tries; waiting forever is a loop of ours.
_WINDOWS_RETRY_SECONDS = 0.05

_UNSUPPORTED = ("file locking needs fcntl (POSIX) or msvcrt (Windows), and this Python has "
                "neither; run a single worker, with ALERT_LOCK_PATH and PROMETHEUS_MULTIPROC_DIR "
                "unset")


if sys.platform == "win32":

    def lock(fd: int, *, blocking: bool) -> bool:
        """Take the exclusive lock on ``fd``: True once held, False if another holder has it and
        ``blocking`` is False. Two descriptors exclude each other even in one process."""
        try:
            import msvcrt
        except ImportError:
            raise OSError(errno.ENOTSUP, _UNSUPPORTED) from None
        while True:
            # The range starts at the file position: byte 0, whatever the holder wrote since.
            os.lseek(fd, 0, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:  # PermissionError while another descriptor holds the byte
                if not blocking:
                    return False
                time.sleep(_WINDOWS_RETRY_SECONDS)
            else:
                return True

    def unlock(fd: int) -> None:
        """Release the lock taken with :func:`lock` (closing ``fd`` releases it too)."""
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:

    def lock(fd: int, *, blocking: bool) -> bool:
        """Take the exclusive lock on ``fd``: True once held, False if another holder has it and
        ``blocking`` is False. Two descriptors exclude each other even in one process."""
        try:
            import fcntl
        except ImportError:  # a POSIX-like platform without it, such as WASI
            raise OSError(errno.ENOTSUP, _UNSUPPORTED) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(fd: int) -> None:
        """Release the lock taken with :func:`lock` (closing ``fd`` releases it too)."""
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
