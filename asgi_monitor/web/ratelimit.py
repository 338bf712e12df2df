"""Per-client-address limits for the monitoring sub-app: a token bucket and a login lock-out.

Both keep one small entry per client address in an :class:`collections.OrderedDict` used as an
LRU: an address seen again moves to the end, and once ``max_clients`` addresses are tracked the
least recently seen one is dropped. Memory stays bounded however many addresses an attacker uses;
an evicted address simply starts afresh (a full bucket, no failures).

Time comes from an injected clock (``time.monotonic`` by default), so tests move it by hand.
Everything runs on the event loop without awaiting, so no lock is needed, except around a
login check that awaits (the ``authorize`` hook): :meth:`LoginGuard.attempt` bounds those.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Clock", "LoginGuard", "LoginLocked", "RateLimiter"]

Clock = Callable[[], float]
_Entry = TypeVar("_Entry")


class _ClientTable(Generic[_Entry]):
    """A dict of per-client entries capped at ``max_clients``, least recently used evicted first."""

    def __init__(self, max_clients: int, new: Callable[[], _Entry]) -> None:
        self.max_clients = max_clients
        self._new = new
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, client: str) -> _Entry:
        entry = self._entries.get(client)
        if entry is None:
            entry = self._entries[client] = self._new()
            if len(self._entries) > self.max_clients:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(client)
        return entry

    def peek(self, client: str) -> _Entry | None:
        return self._entries.get(client)

    def discard(self, client: str) -> None:
        self._entries.pop(client, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, client: object) -> bool:
        return client in self._entries


def _retry_after(seconds: float) -> int:
    # Retry-After takes whole seconds; round up so a client that obeys it is let in.
    return max(1, math.ceil(seconds))


class RateLimiter:
    """Token bucket per client: ``burst`` requests at once, refilled at ``rate`` per second.

    ``rate == 0`` disables the limit.
    """

    def __init__(
        self, rate: float, burst: int, max_clients: int, clock: Clock = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        # [tokens, time of the last refill]
        self.clients: _ClientTable[list[float]] = _ClientTable(
            max_clients, lambda: [float(burst), clock()])

    def acquire(self, client: str) -> int:
        """Take one token: 0 if the request may go on, else the seconds to wait (>= 1)."""
        if self.rate <= 0:
            return 0
        bucket = self.clients.get(client)
        now = self._clock()
        bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if bucket[0] >= 1:
            bucket[0] -= 1
            return 0
        return _retry_after((1 - bucket[0]) / self.rate)


@dataclass
class _Attempts:
    under_way: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class LoginLocked(Exception):
    """Raised by :meth:`LoginGuard.attempt` when the client got locked out while it waited."""

    def __init__(self, wait: int) -> None:
        super().__init__(f"locked out for {wait} s")
        self.wait = wait


class LoginGuard:
    """Locks a client out for ``lockout`` seconds after ``max_failures`` failed logins.

    A client is any string: the gate passes an address and a fingerprint of the identity tried,
    so a lock-out is per address and identity. Failures count within a window of the same
    ``lockout`` seconds, starting at the first one; a successful login clears the client.
    While locked out even correct credentials are refused, otherwise the lock-out would not slow
    down guessing.
    """

    def __init__(
        self, max_failures: int, lockout: float, max_clients: int, clock: Clock = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self._clock = clock
        # [failures in the window, start of the window, locked until]
        self.clients: _ClientTable[list[float]] = _ClientTable(
            max_clients, lambda: [0.0, clock(), 0.0])
        # Per client whose login is being checked by an awaiting hook: how many checks are
        # under way, and the requests waiting for one to end; dropped when both are empty.
        self._attempts: dict[str, _Attempts] = {}

    @asynccontextmanager
    async def attempt(self, client: str) -> AsyncIterator[None]:
        """Hold a place to check ``client``'s login, which the caller records (``failed`` or
        ``succeeded``) before leaving; raises :class:`LoginLocked` if ``client`` is, or got
        locked out by the time its turn came.

        Failures recorded plus checks under way never exceed ``max_failures``, so concurrent
        wrong guesses all count: at most ``max_failures`` are evaluated, the rest wait for one
        to end and are then refused as locked out (or go on, if it succeeded).
        """
        state = self._attempts.get(client)
        if state is None:
            state = self._attempts[client] = _Attempts()
        try:
            while True:
                wait = self.locked(client)
                if wait:
                    raise LoginLocked(wait)
                if self.failures(client) + state.under_way < self.max_failures:
                    break
                waiter = asyncio.get_running_loop().create_future()
                state.waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in state.waiters:
                        state.waiters.remove(waiter)
            state.under_way += 1
            try:
                yield
            finally:
                state.under_way -= 1
                # Every waiter looks again: the outcome just recorded may free or lock it.
                for waiter in state.waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                state.waiters.clear()
        finally:
            if not state.under_way and not state.waiters:
                self._attempts.pop(client, None)

    def failures(self, client: str) -> int:
        """Failed logins of ``client`` in the current window."""
        entry = self.clients.peek(client)
        if entry is None or self._clock() - entry[1] >= self.lockout:
            return 0
        return int(entry[0])

    def locked(self, client: str) -> int:
        """0 if ``client`` may try to log in, else the seconds left of its lock-out (>= 1)."""
        entry = self.clients.peek(client)
        if entry is None:
            return 0
        left = entry[2] - self._clock()
        return _retry_after(left) if left > 0 else 0

    def failed(self, client: str) -> int:
        """Record a failed login; returns the lock-out in seconds if this one triggered it."""
        entry = self.clients.get(client)
        now = self._clock()
        if now - entry[1] >= self.lockout:
            entry[0], entry[1] = 0.0, now
        entry[0] += 1
        if entry[0] >= self.max_failures:
            entry[0], entry[1], entry[2] = 0.0, now, now + self.lockout
            return _retry_after(self.lockout)
        return 0

    def succeeded(self, client: str) -> None:
        self.clients.discard(client)
