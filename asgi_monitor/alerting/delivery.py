"""Delivery: one bounded queue and one worker per channel, so no channel waits for another.

The manager only enqueues; :meth:`Outbox.run` (a monitor service) runs a worker per channel,
and each worker sends its queue's notifications one at a time with the channel's own timeout
and retries. A channel that hangs fills its own queue and no other: when the queue is full the
oldest notification is dropped (the newer one carries the alert's latest state) and counted.
A stuck channel shows as its queue's depth, the age of its oldest undelivered notification and
its recent failures (the ``alert_channels`` health check reads :meth:`Outbox.status`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..health.models import HealthCheck, HealthStatus
from .channels import Channel
from .models import Alert

__all__ = ["ChannelStatus", "Outbox", "channels_check"]

logger = logging.getLogger("asgi_monitor.alerts")

# Deliveries remembered per channel for "its last ones all failed".
RECENT_OUTCOMES = 3

Recorder = Callable[[Channel, Alert, dict[str, Any]], None]


@dataclass(frozen=True)
class ChannelStatus:
    """What one channel's queue looks like now (metrics and the health check read it)."""

    channel: str
    depth: int  # queued plus the one being sent
    capacity: int
    dropped: int
    oldest_age_seconds: float  # of the oldest undelivered notification; 0 when idle
    recent_failures: int  # failures among the last RECENT_OUTCOMES deliveries
    recent_outcomes: int
    # Full, or its oldest notification waited longer than one delivery can take (every attempt
    # timing out, plus the backoff): something is queued behind a stuck channel.
    backing_up: bool


class _Queue:
    def __init__(self, channel: Channel, capacity: int, clock: Callable[[], float]) -> None:
        self.channel = channel
        self.capacity = capacity
        self._clock = clock
        self.items: deque[tuple[Alert, float]] = deque()
        self.sending_since: float | None = None
        self.dropped = 0
        self.recent: deque[bool] = deque(maxlen=RECENT_OUTCOMES)
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def put(self, alert: Alert) -> Alert | None:
        dropped: Alert | None = None
        if len(self.items) >= self.capacity:
            dropped, _ = self.items.popleft()
            self.dropped += 1
            logger.warning("alert %s: channel %s is backed up (%d queued), its oldest "
                           "notification was dropped", dropped.rule, self.channel.name,
                           len(self.items))
        self.items.append((alert, self._clock()))
        self.idle.clear()
        self.wakeup.set()
        return dropped

    async def send_next(self, record: Recorder) -> None:
        alert, queued_at = self.items.popleft()
        self.sending_since = queued_at
        try:
            try:
                outcome = await self.channel.deliver(alert)
            except Exception as exc:  # deliver() does not raise; a broken subclass still must not
                outcome = {"channel": self.channel.name, "ok": False,
                           "at": datetime.now(timezone.utc).isoformat(),
                           "error": type(exc).__name__, "attempts": 0}
            self.recent.appendleft(bool(outcome["ok"]))
            record(self.channel, alert, outcome)
        finally:
            self.sending_since = None
            if not self.items:
                self.idle.set()

    def status(self) -> ChannelStatus:
        oldest = self.sending_since if self.sending_since is not None else (
            self.items[0][1] if self.items else None)
        depth = len(self.items) + (self.sending_since is not None)
        age = 0.0 if oldest is None else max(0.0, self._clock() - oldest)
        channel = self.channel
        longest = (channel.timeout * (channel.retries + 1)
                   + channel.backoff * (2 ** channel.retries - 1))
        return ChannelStatus(channel.name, depth, self.capacity, self.dropped, age,
                             sum(not ok for ok in self.recent), len(self.recent),
                             depth >= self.capacity or age > longest)


class Outbox:
    """The channels' queues. ``record`` receives every outcome (the manager stores it)."""

    def __init__(self, record: Recorder, *, capacity: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError(f"a channel queue holds at least 1 notification, got {capacity}")
        self._record = record
        self.capacity = capacity
        self._clock = clock
        self._queues: dict[int, _Queue] = {}  # by id(channel): channels need not be hashable
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._running = False

    def _queue(self, channel: Channel) -> _Queue:
        queue = self._queues.get(id(channel))
        if queue is None:
            queue = self._queues[id(channel)] = _Queue(channel, self.capacity, self._clock)
            if self._running:
                self._start(queue)
        return queue

    def put(self, channel: Channel, alert: Alert) -> Alert | None:
        """Queue ``alert`` for ``channel``; never waits. The alert dropped to make room, if
        any."""
        return self._queue(channel).put(alert)

    def status(self) -> list[ChannelStatus]:
        return [queue.status() for queue in self._queues.values()]

    async def run(self) -> None:
        """One worker per channel until cancelled (the monitor runs this while started)."""
        if self._running:
            raise RuntimeError("the alert outbox is already running")
        self._running = True
        try:
            for queue in list(self._queues.values()):
                self._start(queue)
            await asyncio.Event().wait()
        finally:
            self._running = False
            workers = list(self._workers.values())
            self._workers.clear()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _start(self, queue: _Queue) -> None:
        self._workers[id(queue.channel)] = asyncio.get_running_loop().create_task(
            self._work(queue), name=f"asgi_monitor:alert_channel:{queue.channel.name}")

    async def _work(self, queue: _Queue) -> None:
        # Not `while True`: Python 3.11's wait_for() loses a cancellation that arrives as the
        # send completes (python/cpython#86296), and the stopping monitor waits for this task.
        while self._running:
            if not queue.items:
                queue.wakeup.clear()
                await queue.wakeup.wait()
                continue
            try:
                await queue.send_next(self._record)
            except Exception:  # the recorder failed: log it, keep the channel's worker alive
                logger.exception("alert channel %s: recording an outcome failed",
                                 queue.channel.name)

    async def flush(self) -> None:
        """Until every queued notification was delivered (or failed): the workers' if they
        run, else here (a manager used without a monitor, and tests)."""
        queues = list(self._queues.values())
        if self._running:
            await asyncio.gather(*(queue.idle.wait() for queue in queues))
            return

        async def drain(queue: _Queue) -> None:
            while queue.items:
                await queue.send_next(self._record)

        await asyncio.gather(*(drain(queue) for queue in queues))


def channels_check(status: Callable[[], list[ChannelStatus]]) -> Callable[[], HealthCheck]:
    """The ``alert_channels`` health check: WARNING while a channel backs up, dropped
    notifications since the last run, or failed its last RECENT_OUTCOMES deliveries.
    Register it non-critical: a broken alert channel does not make the app unready."""
    dropped_before: dict[str, int] = {}

    def check() -> HealthCheck:
        problems: list[str] = []
        details: dict[str, Any] = {}
        for s in status():
            dropped = s.dropped - dropped_before.get(s.channel, 0)
            dropped_before[s.channel] = s.dropped
            details[s.channel] = {"queued": s.depth, "dropped": s.dropped,
                                  "oldest_queued_seconds": round(s.oldest_age_seconds, 3),
                                  "recent_failures": s.recent_failures}
            if s.backing_up:
                problems.append(f"{s.channel}: {s.depth} queued, oldest "
                                f"{s.oldest_age_seconds:.0f}s")
            if dropped > 0:
                problems.append(f"{s.channel}: {dropped} dropped")
            if s.recent_outcomes == RECENT_OUTCOMES and s.recent_failures == RECENT_OUTCOMES:
                problems.append(f"{s.channel}: last {RECENT_OUTCOMES} deliveries failed")
        if problems:
            return HealthCheck("alert_channels", HealthStatus.WARNING, "; ".join(problems),
                               details=details)
        return HealthCheck("alert_channels", HealthStatus.HEALTHY, "alert channels deliver",
                           details=details)

    return check
