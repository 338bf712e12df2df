"""Silences: an admin mutes a rule (or any alerts with matching labels) for a while.

A silenced alert still goes through its states and shows in the API; only its notifications are
skipped. Under several workers the admin's request reaches any worker while one other worker
sends the notifications, so with a ``path`` (next to the leader lock) the silences live in a
small JSON file that every worker reads: writes are serialised with a file lock and replace the
file atomically.

The files sit in a shared directory, so they are opened as untrusted (alerting/files.py). The
edit lock is only ever *tried*: any user who can open the lock file can hold its ``flock`` for
ever, and a blocking wait would then freeze whichever thread waits. An edit retries for
``EDIT_WAIT_SECONDS`` and then raises :class:`SilencesBusy`; callers on an event loop use
:meth:`Silences.create_async` and :meth:`Silences.expire_async`, which edit a shared file in a
thread, so the loop never waits at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta

from ..errors import MonitoringError
from .files import open_owned, read_owned, write_atomically
from .locks import lock, unlock
from .models import Silence

__all__ = ["EDIT_WAIT_SECONDS", "MAX_SILENCES_BYTES", "Silences", "SilencesBusy"]

# Another worker's edit holds the lock for a read and a rename; longer is someone else's lock.
EDIT_WAIT_SECONDS = 2.0
_RETRY_SECONDS = 0.01
# An admin creates silences by hand: a few hundred bytes each, and thousands would be absurd.
MAX_SILENCES_BYTES = 4 << 20


class SilencesBusy(MonitoringError):
    """The silences' edit lock stayed taken by another process (an edit is refused, not queued)."""


class Silences:
    """The current silences. ``clock`` returns an aware datetime (tests pass a fake one)."""

    def __init__(self, clock: Callable[[], datetime], path: str | None = None, *,
                 wait_seconds: float = EDIT_WAIT_SECONDS) -> None:
        self._clock = clock
        self._wait_seconds = wait_seconds
        self.path = path or None
        self._silences: dict[str, Silence] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def create(self, matchers: Mapping[str, str], duration_seconds: float, *, comment: str = "",
               created_by: str = "") -> Silence:
        now = self._clock()
        silence = Silence(dict(matchers), now, now + timedelta(seconds=duration_seconds),
                          comment, created_by)
        with self._editing():
            # A new dict, never one changed in place: an edit runs in a thread while the loop
            # may be reading the current one.
            self._silences = {**self._silences, silence.id: silence}
        return silence

    def expire(self, silence_id: str) -> bool:
        """End a silence now; False if there is no such current silence."""
        with self._editing():
            found = silence_id in self._silences
            self._silences = {k: s for k, s in self._silences.items() if k != silence_id}
            return found

    async def create_async(self, matchers: Mapping[str, str], duration_seconds: float, *,
                           comment: str = "", created_by: str = "") -> Silence:
        """:meth:`create` for a caller on an event loop: with a shared file, in a thread."""
        if self.path is None:
            return self.create(matchers, duration_seconds, comment=comment,
                               created_by=created_by)
        return await asyncio.to_thread(self.create, matchers, duration_seconds,
                                       comment=comment, created_by=created_by)

    async def expire_async(self, silence_id: str) -> bool:
        """:meth:`expire` for a caller on an event loop: with a shared file, in a thread."""
        if self.path is None:
            return self.expire(silence_id)
        return await asyncio.to_thread(self.expire, silence_id)

    def list(self) -> list[Silence]:
        """Current silences (expired ones are dropped), the soonest to end first."""
        self._refresh()
        now = self._clock()
        return sorted((s for s in list(self._silences.values()) if s.ends_at > now),
                      key=lambda s: s.ends_at)

    def matching(self, labels: Mapping[str, str]) -> Silence | None:
        now = self._clock()
        return next((s for s in self.list() if s.active(now) and s.matches(labels)), None)

    # -- the shared file ------------------------------------------------------------------------
    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            stat = os.lstat(self.path)
        except FileNotFoundError:
            self._silences, self._seen = {}, None
            return
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            self._read()

    def _read(self) -> None:
        assert self.path is not None
        try:
            stat = os.lstat(self.path)
            data = json.loads(read_owned(self.path, MAX_SILENCES_BYTES))
            self._silences = {s.id: s for s in map(Silence.from_dict, data)}
            self._seen = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            self._silences, self._seen = {}, None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            # Unreadable, planted or hand-edited: keep what we had; the next write replaces it.
            pass

    @contextlib.contextmanager
    def _editing(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        fd = open_owned(f"{self.path}.lock", os.O_RDWR | os.O_CREAT)
        try:
            self._take(fd)
            try:
                self._read()
                yield
                now = self._clock()
                live = [s.to_dict() for s in self._silences.values() if s.ends_at > now]
                write_atomically(self.path, json.dumps(live).encode())
                self._seen = None
            finally:
                unlock(fd)
        finally:
            os.close(fd)

    def _take(self, fd: int) -> None:
        deadline = time.monotonic() + self._wait_seconds
        while not lock(fd, blocking=False):
            if time.monotonic() >= deadline:
                raise SilencesBusy(f"the silences file {self.path} is locked by another process "
                                   "for longer than an edit takes; try again")
            time.sleep(_RETRY_SECONDS)
