"""Silences: an admin mutes a rule (or any alerts with matching labels) for a while.

A silenced alert still goes through its states and shows in the API; only its notifications are
skipped. Under several workers the admin's request reaches any worker while one other worker
sends the notifications, so with a ``path`` (next to the leader lock) the silences live in a
small JSON file that every worker reads: writes are serialised with a file lock and replace the
file atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta

from .locks import lock, unlock
from .models import Silence

__all__ = ["Silences"]


class Silences:
    """The current silences. ``clock`` returns an aware datetime (tests pass a fake one)."""

    def __init__(self, clock: Callable[[], datetime], path: str | None = None) -> None:
        self._clock = clock
        self.path = path or None
        self._silences: dict[str, Silence] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def create(self, matchers: Mapping[str, str], duration_seconds: float, *, comment: str = "",
               created_by: str = "") -> Silence:
        now = self._clock()
        silence = Silence(dict(matchers), now, now + timedelta(seconds=duration_seconds),
                          comment, created_by)
        with self._editing():
            self._silences[silence.id] = silence
        return silence

    def expire(self, silence_id: str) -> bool:
        """End a silence now; False if there is no such current silence."""
        with self._editing():
            return self._silences.pop(silence_id, None) is not None

    def list(self) -> list[Silence]:
        """Current silences (expired ones are dropped), the soonest to end first."""
        self._refresh()
        now = self._clock()
        return sorted((s for s in self._silences.values() if s.ends_at > now),
                      key=lambda s: s.ends_at)

    def matching(self, labels: Mapping[str, str]) -> Silence | None:
        now = self._clock()
        return next((s for s in self.list() if s.active(now) and s.matches(labels)), None)

    # -- the shared file ------------------------------------------------------------------------
    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._silences, self._seen = {}, None
            return
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            self._read()

    def _read(self) -> None:
        assert self.path is not None
        try:
            with open(self.path, encoding="utf-8") as f:
                stat = os.fstat(f.fileno())
                data = json.load(f)
            self._silences = {s.id: s for s in map(Silence.from_dict, data)}
            self._seen = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            self._silences, self._seen = {}, None
        except (OSError, ValueError, KeyError, TypeError):
            # Unreadable (a hand edit?): keep what we had; the next write replaces the file.
            pass

    @contextlib.contextmanager
    def _editing(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        with open(f"{self.path}.lock", "a") as lock_file:
            lock(lock_file.fileno(), blocking=True)
            try:
                self._read()
                yield
                now = self._clock()
                live = [s.to_dict() for s in self._silences.values() if s.ends_at > now]
                temporary = f"{self.path}.{os.getpid()}.tmp"
                with open(temporary, "w", encoding="utf-8") as f:
                    json.dump(live, f)
                os.replace(temporary, self.path)
                self._seen = None
            finally:
                unlock(lock_file.fileno())
