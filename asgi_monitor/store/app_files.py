"""The app's own prometheus_client metrics under several workers, read with the same distrust.

prometheus_client keeps those in ``*.db`` files in ``PROMETHEUS_MULTIPROC_DIR`` and merges them
with its ``MultiProcessCollector``, which opens every name the glob finds with a plain ``open``:
a FIFO named ``counter_1.db`` would block the scrape for good, a symlink would be followed and a
malformed file would fail the whole scrape. This collector hands it only regular files with one
link, owned by this user and of a sane size (checked with ``lstat``: prometheus_client opens
the path itself, so a file swapped in between is not excluded, only made unlikely), and when the
merge fails it leaves out the files that fail on their own, logging each once.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CheckedMultiProcessCollector"]

logger = logging.getLogger("asgi_monitor")

# prometheus_client's files start at 1 MiB and double; far beyond what a worker's metrics take.
MAX_DB_FILE = 256 * 1024 * 1024


def _trusted(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    ours = sys.platform == "win32" or info.st_uid == os.geteuid()
    return (stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and ours
            and info.st_size <= MAX_DB_FILE)


class CheckedMultiProcessCollector(MultiProcessCollector):
    """``MultiProcessCollector`` over the files of ``path`` this process can trust."""

    def __init__(self, path: str) -> None:
        super().__init__(None, path=path)  # type: ignore[no-untyped-call]
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in sorted(glob.glob(os.path.join(self._path, "*.db"))):
            if _trusted(path):
                files.append(path)
            else:
                self._warn(path, "not a regular file of this user's within the size")
        try:
            return list(self.merge(files, accumulate=True))  # type: ignore[no-untyped-call]
        except Exception:
            pass
        good = []
        for path in files:
            try:
                self.merge([path], accumulate=True)  # type: ignore[no-untyped-call]
            except Exception as exc:
                self._warn(path, f"unreadable: {exc!r}")
            else:
                good.append(path)
        try:
            return list(self.merge(good, accumulate=True))  # type: ignore[no-untyped-call]
        except Exception:  # a file changed meanwhile: nothing of theirs this scrape
            return []

    def _warn(self, path: str, why: str) -> None:
        with self._lock:
            if path in self._warned:
                return
            self._warned.add(path)
        logger.warning("%s is left out of the app's prometheus_client metrics (%s)", path, why)
