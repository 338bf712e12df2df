"""One sender among several workers: an exclusive, non-blocking lock on a lock file's inode.

Every worker runs the alert loop; each interval the ones without the lock try to take it, so if
the holder dies (the kernel drops its lock with its file descriptors) another takes over within
one interval. Only the holder evaluates rules and sends, so 4 workers never send 4 e-mails.

Why the inode, and how a deleted lock file still leaves one leader. ``flock`` locks an inode, not
a name: once the file is deleted (by hand, or by a deploy script emptying the directory), a worker
that opens the name creates a new inode and locks it at once, beside the old holder. So:

- A worker keeps its descriptor on the inode it last saw, locked or not, and a contender first
  tries the lock on *that* inode. While the leader lives it holds that inode, so every worker that
  knew it is refused there and never looks at the name again: deleting the file changes nothing
  for them.
- Leading takes two things at once: the lock on an inode, and the name naming that inode (checked
  with ``lstat`` after the lock is taken, so a file replaced between the open and the lock is no
  win). The holder checks the name again at every interval, before it evaluates. Found missing, it
  creates the name anew and locks the new inode *while still holding the old one*, so no worker
  that knew the old inode can get in between; then it moves over and the others, refused on the
  old inode until then, follow the name to the new one and are refused there.
- If the name meanwhile names an inode someone else has locked, the holder steps down at once:
  whoever holds the inode the name points to is the one leader. That can only happen when a worker
  that never knew the old inode (one started after the deletion) creates the name before the
  holder's next check: the one case with two leaders, for at most one interval.

The lock file is created 0600, never truncated, and must be a regular file of this process' user
(alerting/files.py): a planted symlink or another user's file is refused, not written through.
The holder writes its pid and a beat count into it every interval; a worker that sees the file
unchanged (and cannot take the lock) for more than two intervals reports that no leader is alive
(:meth:`LeaderLock.leaderless_seconds`): a process that only holds the lock (any user able to open
the file can ``flock`` it) would otherwise switch alerting off in silence.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from ..health.models import HealthCheck, HealthStatus
from .files import open_owned
from .locks import lock, unlock

__all__ = ["LeaderLock", "leader_check"]

logger = logging.getLogger("asgi_monitor.alerts")

_Identity = tuple[int, int]  # (st_dev, st_ino)


class LeaderLock:
    """``acquire()`` is True while this process leads (None path: always True).

    ``interval``: how often :meth:`acquire` is called (the alert loop's); a worker that sees no
    leader for more than twice that reports it.
    """

    def __init__(self, path: str | None, *, interval: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.interval = interval
        self._monotonic = monotonic
        # Open on the inode this process last saw at ``path``: locked while it leads, else the
        # memory that keeps it off a new file while the old inode's holder lives.
        self._fd: int | None = None
        self._held = False
        self._beats = 0
        # When a leader was last known alive (this process leading, or the file's beat moving).
        self._alive_at = monotonic()
        self._beat_seen: tuple[int, int] | None = None  # (st_ino, st_mtime_ns) of the lock file

    @property
    def held(self) -> bool:
        return self.path is None or self._held

    def acquire(self) -> bool:
        if self.path is None:
            return True
        if self._held and not self._still_named():
            logger.warning("alerts: the lock file %s no longer names the file this process "
                           "(pid %d) locked; it stops evaluating", self.path, os.getpid())
            return False
        if not self._held and not self._contend():
            self._watch_beat()
            return False
        self._beat()
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._held:
                unlock(fd)
            os.close(fd)
        self._held = False

    def leaderless_seconds(self) -> float:
        """How long no leader has been seen, once that is more than two intervals; else 0."""
        if self.held:
            return 0.0
        quiet = self._monotonic() - self._alive_at
        return quiet if quiet > 2 * self.interval else 0.0

    # -- taking the lock ------------------------------------------------------------------------
    def _contend(self) -> bool:
        assert self.path is not None
        # Three rounds: each one follows the name to a newer inode, which only a race with a
        # holder moving over can cause; a further race is left for the next interval.
        for _ in range(3):
            if self._fd is None:
                self._fd = open_owned(self.path, os.O_RDWR | os.O_CREAT)
            if not lock(self._fd, blocking=False):
                return False  # the inode we know is held: keep the descriptor, touch no name
            if _identity_of(self._fd) == self._named():
                self._held = True
                self._alive_at = self._monotonic()
                logger.info("alerts: this process (pid %d) evaluates and sends alerts (lock %s)",
                            os.getpid(), self.path)
                return True
            # The name is gone or names another file: ours is stale, follow the name.
            fd, self._fd = self._fd, None
            unlock(fd)
            os.close(fd)
        return False

    def _still_named(self) -> bool:
        """The holder's check: the name still names our inode, or (missing) names a new one we
        lock while holding the old (see the module docstring)."""
        assert self.path is not None and self._fd is not None
        if _identity_of(self._fd) == self._named():
            return True
        try:
            fd = open_owned(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            logger.warning("alerts: cannot use the lock file %s (%s)", self.path, exc)
            self._step_down(None)
            return False
        if lock(fd, blocking=False):
            if _identity_of(fd) == self._named():
                old, self._fd = self._fd, fd
                unlock(old)
                os.close(old)
                return True
            unlock(fd)  # replaced again meanwhile: the next interval sorts it out
        self._step_down(fd)
        return False

    def _step_down(self, replacement: int | None) -> None:
        """Stop leading; remember ``replacement`` (an unlocked descriptor, or None)."""
        assert self._fd is not None
        unlock(self._fd)
        os.close(self._fd)
        self._fd = replacement
        self._held = False
        self._alive_at = self._monotonic()

    def _named(self) -> _Identity | None:
        assert self.path is not None
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    # -- the beat -------------------------------------------------------------------------------
    def _beat(self) -> None:
        assert self._fd is not None
        self._beats += 1
        self._alive_at = self._monotonic()
        # Fixed width from byte 0, never truncated (the file may be longer from an older writer).
        line = f"{os.getpid()} {self._beats}".ljust(39)[:39] + "\n"
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, line.encode())
            if os.utime in os.supports_fd:
                # The write's own mtime may not move within one tick of a coarse clock.
                now = time.time_ns()
                os.utime(self._fd, ns=(now, now))
        except OSError:
            pass  # a full disk: the followers see a silent leader, which they report

    def _watch_beat(self) -> None:
        """A follower: the holder's file changed since the last look means a leader is alive."""
        assert self.path is not None
        try:
            st = os.lstat(self.path)
        except OSError:
            return
        seen = (st.st_ino, st.st_mtime_ns)
        if seen != self._beat_seen:
            if self._beat_seen is not None:
                self._alive_at = self._monotonic()
            self._beat_seen = seen


def _identity_of(fd: int) -> _Identity:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def leader_check(leader: LeaderLock, pid: Callable[[], int] = os.getpid) -> Callable[[],
                                                                                     HealthCheck]:
    """The ``alert_leader`` health check: WARNING while no worker has been seen evaluating the
    alert rules for more than two intervals. Register it non-critical: the app serves on."""

    def check() -> HealthCheck:
        if leader.held:
            return HealthCheck("alert_leader", HealthStatus.HEALTHY,
                               f"this worker (pid {pid()}) evaluates the alert rules")
        quiet = leader.leaderless_seconds()
        if quiet:
            return HealthCheck(
                "alert_leader", HealthStatus.WARNING,
                f"no worker has evaluated the alert rules for {quiet:.0f}s: the alert lock "
                f"{leader.path} is held by a process that does not evaluate (or is "
                "unusable); alerts are not being sent",
                details={"leaderless_seconds": round(quiet, 3), "lock": leader.path})
        return HealthCheck("alert_leader", HealthStatus.HEALTHY,
                           "another worker evaluates the alert rules")

    return check
