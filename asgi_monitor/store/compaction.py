"""Dead workers' files folded into one retired file, so the directory stays small.

A server that recycles its workers (gunicorn ``max_requests``) leaves a pair of files per dead
worker, and every read of the directory reads them all. Whichever worker holds the compaction
lock (a non-blocking ``flock``: nobody ever waits for it) folds the files of dead workers (no
``flock`` on them) into ``asgi_monitor_retired_<layout>.data``, one file per bucket layout:

- counters and histograms (request blocks, WebSocket routes, custom counters and histograms, the
  file-error and unrecorded counts) are summed;
- live gauges (requests in progress, WebSockets open, custom ``live*`` gauges) of dead workers
  are dropped, as the merge drops them; other custom gauges keep their merge rule (``mostrecent``:
  the value set last, with its time);
- every series keeps the place where it first appeared (its worker's start time and file name,
  its position there), so the merge's cap gives the same series their labels as before;
- exemplars are dropped: a dead worker's ``.exemplars`` file goes with its other files
  (:mod:`asgi_monitor.store.exemplar_file`), and the live workers' newer ones replace them soon.

Crash safety, with a SIGKILL possible at any step: the new retired file is written aside
(``mkstemp`` in the directory), fsynced, then renamed over the old one; only then are the folded
files removed. The retired file lists the files it holds (``holds``), so after a crash between the
rename and the removals a reader skips the files it already holds and the next compaction removes
them: no count is lost or counted twice. A reader reads the retired file after the worker files
(:meth:`asgi_monitor.store.merge.MergedFiles._workers`): a worker file removed meanwhile is then in
the retired file it reads.

The retired file's format and its reader: :mod:`asgi_monitor.store.retired_file`.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .retired_file import (
    MAX_RETIRED,
    RETIRED_PREFIX,
    RETIRED_SUFFIX,
    Fold,
    layout_name,
    read_retired,
)
from .safe_open import Untrusted
from .worker_file import PREFIX, WorkerRecords, read_worker, worker_files

__all__ = ["COMPACT_AFTER", "LOCK_NAME", "TEMP_PREFIX", "Compactor"]

logger = logging.getLogger("asgi_monitor")

LOCK_NAME = f"{PREFIX}compaction.lock"
TEMP_PREFIX = f".{PREFIX}compacting_"
COMPACT_AFTER = 4  # dead worker files tolerated before a read asks for a compaction
# A folded file's name stays in ``holds`` this long after it was removed: a read that listed it
# just before its removal still finds it there when it reads the retired file.
HOLD_SECONDS = 600.0

# A test's view of each step: called with "written", "renamed", "removing", "removed".
Hook = Callable[[str], None]


class Compactor:
    """Folds the dead workers' files in ``directory`` of this process' bucket layout."""

    def __init__(self, directory: str, layout: dict[str, Any]) -> None:
        self.directory = directory
        self._layout = layout  # the bucket lists, as a worker's header has them
        self.retired_path = os.path.join(
            directory, f"{RETIRED_PREFIX}{layout_name(layout)}{RETIRED_SUFFIX}")
        self._running = threading.Lock()
        self._lock_fd = -1
        self._refused = False
        if hasattr(os, "register_at_fork"):
            # A child must not keep the parent's lock (flock belongs to the open file, which a
            # fork shares): it would hold it as long as it lives.
            os.register_at_fork(after_in_child=self._forget_lock)

    def _forget_lock(self) -> None:
        if self._lock_fd >= 0:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd = -1

    def request(self) -> None:
        """Compact in a thread of its own, unless one is running: never waits."""
        if sys.platform == "win32" or self._running.locked():
            return
        threading.Thread(target=self._background, name="asgi-monitor-compaction",
                         daemon=True).start()

    def _background(self) -> None:
        try:
            self.compact()
        except Exception:  # a failed compaction leaves the files as they were
            logger.exception("compacting %s failed; dead workers' files stay", self.directory)

    def compact(self, hook: Hook | None = None) -> int:
        """Fold now, if this process gets the lock: the number of files folded (0 when another
        process holds the lock or nothing is dead). Never blocks on the lock."""
        if sys.platform == "win32" or not self._running.acquire(blocking=False):
            return 0
        try:
            fd = self._take_lock()
            if fd < 0:
                return 0
            self._lock_fd = fd
            try:
                return self._compact(fd, hook)
            finally:
                self._lock_fd = -1
                os.close(fd)
        finally:
            self._running.release()

    def _take_lock(self) -> int:
        if sys.platform == "win32":
            return -1
        import fcntl

        path = os.path.join(self.directory, LOCK_NAME)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
        try:
            fd = os.open(path, flags, 0o600)  # never truncated: it holds nothing
        except OSError:
            return -1
        try:
            info = os.fstat(fd)
            if (not _regular_ours(info) or not _same_file(path, info)):
                raise OSError("not our lock file")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _same_file(path, info):
                raise OSError("lock file replaced")  # deleted and made again: not the lock
        except OSError:
            os.close(fd)
            return -1
        return fd

    def _compact(self, lock: int, hook: Hook | None) -> int:
        now = time.time()
        try:
            old = read_retired(self.retired_path)
        except Untrusted as exc:
            # Never folded into nor replaced: the merge skips and counts it; its counts are
            # lost only if someone removes it.
            if not self._refused:
                self._refused = True
                logger.error("%s cannot be read (%s): dead workers' files are not folded "
                             "until it is removed", self.retired_path, exc.reason)
            return 0
        holds: dict[str, float] = dict(old.header["holds"]) if old is not None else {}
        names = os.listdir(self.directory)
        for name in names:
            if name.startswith(TEMP_PREFIX):  # a compaction killed before its rename
                _remove(os.path.join(self.directory, name))
            elif name.endswith((".index", ".exemplars")):
                values = name[:name.rindex(".")] + ".values"
                if values in holds and values not in names:
                    _remove(os.path.join(self.directory, name))  # killed between the unlinks
        generation = int(old.header["generation"]) if old is not None else 0
        fold = Fold(self._layout)
        if old is not None:
            fold.add(old)
        dead: list[WorkerRecords] = []
        leftovers: list[str] = []
        present = set()
        for path in worker_files(self.directory):
            name = os.path.basename(path)
            present.add(name)
            if name in holds:
                leftovers.append(path)  # folded already; its removal was cut short
                continue
            try:
                worker = read_worker(path)
            except Untrusted:
                continue  # the merge skips and counts it; it is not ours to remove
            if worker is None or worker.live or worker.retired:
                continue
            if not all(worker.header.get(k) == self._layout.get(k)
                       for k in (*self._layout, "native")):
                continue  # another layout: the merge leaves it out and warns
            dead.append(worker)
            fold.add(worker)
        if not dead:
            self._remove_workers(leftovers, hook)
            return 0
        for name, when in list(holds.items()):
            if name not in present and now - when > HOLD_SECONDS:
                del holds[name]
        for worker in dead:
            holds[os.path.basename(worker.path)] = now
        data = fold.render(generation + 1, holds)
        if len(data) > MAX_RETIRED:
            logger.error("%s would pass the format's size; dead workers' files stay",
                         self.retired_path)
            return 0
        handle, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if hook is not None:
                hook("written")
            # Another compactor (a lock file deleted and made again) or a changed retired file:
            # give up rather than overwrite what it folded.
            current = read_retired(self.retired_path)
            if ((current.header["generation"] if current is not None else 0) != generation
                    or not _same_file(os.path.join(self.directory, LOCK_NAME), os.fstat(lock))):
                _remove(temp)
                return 0
            os.replace(temp, self.retired_path)
        except BaseException:
            _remove(temp)
            raise
        _sync_directory(self.directory)
        if hook is not None:
            hook("renamed")
        self._remove_workers([*leftovers, *(worker.path for worker in dead)], hook)
        return len(dead)

    def _remove_workers(self, paths: list[str], hook: Hook | None) -> None:
        for path in paths:
            # The values file first: without it the merge no longer lists the pair.
            _remove(path)
            if hook is not None:
                hook("removing")
            _remove(path[:-len(".values")] + ".index")
            # A retired file keeps no exemplars: a dead worker's go with its files.
            _remove(path[:-len(".values")] + ".exemplars")
        if hook is not None:
            hook("removed")


def _regular_ours(info: os.stat_result) -> bool:
    import stat

    if sys.platform == "win32":
        return stat.S_ISREG(info.st_mode)
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()


def _same_file(path: str, info: os.stat_result) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
