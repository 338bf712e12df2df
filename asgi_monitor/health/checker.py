"""The health checker: registered checks, their scheduler, cached results and their metrics.

Checks run only in the background scheduler (or an explicit ``run_check``); the endpoints read
the cached results, so a flood of ``GET /api/health`` never multiplies the work. Each run has a
timeout, and sync checks run in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import MonitoringError
from ..runner import Failed, Failure, Runner
from .models import HealthCheck, HealthStatus, worst

__all__ = ["CheckFunction", "HealthChecker", "RegisteredCheck"]

logger = logging.getLogger("asgi_monitor.health")

CheckResult = HealthCheck | bool
CheckFunction = Callable[[], CheckResult | Awaitable[CheckResult]]

# Names the endpoints use for the probes, so no check may take them.
RESERVED_NAMES = frozenset({"live", "ready"})
# A result older than this many intervals reads as UNKNOWN: the scheduler is not keeping up.
STALE_AFTER_INTERVALS = 3


@dataclass
class RegisteredCheck:
    name: str
    description: str
    function: CheckFunction
    interval: float
    timeout: float
    critical: bool
    groups: frozenset[str]
    last: HealthCheck | None = None
    last_run: float = 0.0  # monotonic time of the last finished run
    next_due: float = 0.0


class HealthChecker:
    """Register checks with :meth:`register_check`; read results with :meth:`result`."""

    def __init__(
        self,
        *,
        default_interval: float = 60.0,
        default_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        is_ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.default_interval = default_interval
        self.default_timeout = default_timeout
        self._clock = clock
        self._is_ready = is_ready
        self._checks: dict[str, RegisteredCheck] = {}
        self._inflight: dict[str, asyncio.Task[HealthCheck]] = {}
        self._wakeup: asyncio.Event | None = None
        self._runner = Runner("asgi_monitor-health")

    # -- registration ---------------------------------------------------------------------------
    def register_check(
        self,
        name: str,
        description: str,
        check: CheckFunction,
        interval_seconds: float | None = None,
        *,
        timeout_seconds: float | None = None,
        critical: bool = True,
        groups: Iterable[str] = ("readiness",),
    ) -> RegisteredCheck:
        """Register ``check`` (sync or async, returning a HealthCheck or a bool).

        ``critical=False`` makes a failure degrade the overall status to WARNING only.
        ``groups``: "liveness" for process-level checks, "readiness" for dependencies the app
        needs to serve traffic, or any custom name (``GET /api/health?group=name``).
        """
        if not name or not isinstance(name, str) or "/" in name or name in RESERVED_NAMES:
            raise MonitoringError(
                f"invalid health check name {name!r}: use a non-empty name without '/' that is "
                f"not one of {sorted(RESERVED_NAMES)}")
        if name in self._checks:
            raise MonitoringError(f"a health check named {name!r} is already registered")
        if not callable(check):
            raise MonitoringError(f"health check {name!r}: {check!r} is not callable")
        interval = self.default_interval if interval_seconds is None else interval_seconds
        timeout = (min(self.default_timeout, interval) if timeout_seconds is None
                   else timeout_seconds)
        for label, value in (("interval_seconds", interval), ("timeout_seconds", timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise MonitoringError(f"health check {name!r}: {label} must be > 0, got {value!r}")
        registered = RegisteredCheck(name, description, check, float(interval), float(timeout),
                                     critical, frozenset(groups))
        self._checks[name] = registered
        if self._wakeup is not None:
            self._wakeup.set()  # a running scheduler picks it up now, not at its next tick
        return registered

    def unregister_check(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def checks(self) -> dict[str, RegisteredCheck]:
        return dict(self._checks)

    # -- results --------------------------------------------------------------------------------
    def result(self, name: str) -> HealthCheck:
        """The cached result as the endpoints show it (UNKNOWN if never run or stale)."""
        check = self._checks[name]
        if check.last is None:
            return HealthCheck(name, HealthStatus.UNKNOWN, "not run yet")
        age = self._clock() - check.last_run
        if age > STALE_AFTER_INTERVALS * check.interval:
            return dataclasses.replace(
                check.last, status=HealthStatus.UNKNOWN,
                message=f"stale: last result is {age:.0f}s old (interval {check.interval:g}s)")
        return check.last

    def results(self, group: str | None = None) -> dict[str, HealthCheck]:
        return {name: self.result(name) for name, check in self._checks.items()
                if group is None or group in check.groups}

    def overall(self, group: str | None = None) -> HealthStatus:
        """Worst status across checks; a non-critical check's CRITICAL counts as WARNING."""
        statuses = []
        for name, check in self._checks.items():
            if group is not None and group not in check.groups:
                continue
            status = self.result(name).status
            if status is HealthStatus.CRITICAL and not check.critical:
                status = HealthStatus.WARNING
            statuses.append(status)
        return worst(statuses)

    def is_live(self) -> bool:
        return self.overall("liveness") is not HealthStatus.CRITICAL

    def is_ready(self) -> bool:
        """Startup finished, shutdown not begun, and no readiness check failing."""
        return self._is_ready() and self.overall("readiness") is not HealthStatus.CRITICAL

    # -- running --------------------------------------------------------------------------------
    async def run_check(self, name: str) -> HealthCheck:
        """Run a check now; concurrent callers share one run (single-flight)."""
        return await asyncio.shield(self._start(self._checks[name]))

    def _start(self, check: RegisteredCheck) -> asyncio.Task[HealthCheck]:
        task = self._inflight.get(check.name)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._run(check), name=f"asgi_monitor:health:{check.name}")
            self._inflight[check.name] = task
            task.add_done_callback(lambda _: self._inflight.pop(check.name, None))
        return task

    async def run_all(self) -> dict[str, HealthCheck]:
        names = list(self._checks)
        results = await asyncio.gather(*(self.run_check(n) for n in names))
        return dict(zip(names, results, strict=True))

    async def _run(self, check: RegisteredCheck) -> HealthCheck:
        started = time.perf_counter()
        outcome = await self._runner.run(check.name, check.function, check.timeout)
        if not isinstance(outcome, Failed):
            result = _as_health_check(check.name, outcome.value)
        elif outcome.reason is Failure.RAISED:
            logger.warning("health check %r raised %r", check.name, outcome.error)
            # The public message stays generic; the exception text is for admins only.
            result = HealthCheck(check.name, HealthStatus.CRITICAL, "check raised an exception",
                                 details={"error": outcome.message})
        else:
            result = HealthCheck(check.name, HealthStatus.CRITICAL, outcome.message)
        # Our own measurement, not whatever the check claimed.
        result = dataclasses.replace(result, duration_ms=(time.perf_counter() - started) * 1000)
        check.last = result
        check.last_run = self._clock()
        return result

    async def run_forever(self) -> None:
        """The scheduler: run each check when due, sleep until the next one is."""
        self._wakeup = asyncio.Event()
        try:
            while True:
                now = self._clock()
                for check in list(self._checks.values()):
                    if check.next_due <= now and check.name not in self._inflight:
                        check.next_due = now + check.interval
                        # Not awaited: one slow check must not delay the others.
                        self._start(check)
                upcoming = [c.next_due for c in self._checks.values()]
                delay = max(0.05, min(upcoming, default=now + 1.0) - self._clock())
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), min(delay, 1.0))
                except asyncio.TimeoutError:
                    pass
        finally:
            self._wakeup = None
            for task in list(self._inflight.values()):
                task.cancel()


def _as_health_check(name: str, raw: Any) -> HealthCheck:
    if isinstance(raw, HealthCheck):
        return raw if raw.name == name else dataclasses.replace(raw, name=name)
    if isinstance(raw, bool):
        return HealthCheck(name, HealthStatus.HEALTHY if raw else HealthStatus.CRITICAL,
                           "ok" if raw else "check returned False")
    return HealthCheck(name, HealthStatus.CRITICAL,
                       f"check returned {type(raw).__name__}, expected HealthCheck or bool")


class HealthMetrics(Collector):
    """Gauges per check: status (one series per status, 1 for the current one), duration and
    last-run time; plus the overall status."""

    def __init__(self, checker: HealthChecker, prefix: str = "") -> None:
        self._checker = checker
        self._prefix = prefix

    def describe(self) -> Iterator[Metric]:
        return self._families({})

    def collect(self) -> Iterator[Metric]:
        return self._families(self._checker.checks)

    def _families(self, checks: dict[str, RegisteredCheck]) -> Iterator[Metric]:
        p = self._prefix
        status = GaugeMetricFamily(f"{p}health_check_status",
                                   "1 for the check's current status, 0 for the others.",
                                   labels=("check", "status"))
        duration = GaugeMetricFamily(f"{p}health_check_duration_seconds",
                                     "How long the check's last run took.", labels=("check",))
        last_run = GaugeMetricFamily(f"{p}health_check_last_run_timestamp_seconds",
                                     "Unix time of the check's last run.", labels=("check",))
        for name in checks:
            result = self._checker.result(name)
            for candidate in HealthStatus:
                status.add_metric((name, candidate.value), float(candidate is result.status))
            if checks[name].last is not None:
                duration.add_metric((name,), result.duration_ms / 1000)
                last_run.add_metric((name,), result.timestamp.timestamp())
        overall = GaugeMetricFamily(f"{p}health_status",
                                    "1 for the app's overall health status, 0 for the others.",
                                    labels=("status",))
        current = self._checker.overall() if checks else None
        for candidate in HealthStatus:
            overall.add_metric((candidate.value,), float(candidate is current))
        yield from (status, duration, last_run, overall)
