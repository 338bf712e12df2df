"""Built-in checks. Each factory returns a check function for ``register_check``.

Memory, disk, CPU and responsiveness are registered by default (thresholds from the config);
database, cache and session checks are registered when the app passes what they check::

    health = get_health_checker()
    health.register_check("database", "Primary DB", database_check(engine), groups=["readiness"])
    health.register_check("cache", "Redis", cache_check(redis_client), critical=False)
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

# psutil is imported by the checks that read it, so `import asgi_monitor` does not load it.
from ..config.health import HealthSettings, SystemSettings
from ..units import duration_label
from .checker import CheckFunction, CheckResult, HealthChecker
from .models import HealthCheck, HealthStatus

__all__ = [
    "cache_check",
    "cpu_check",
    "database_check",
    "disk_check",
    "install_default_checks",
    "memory_check",
    "responsiveness_check",
    "session_check",
]


def _grade(value: float, warning: float, critical: float) -> HealthStatus:
    """Higher is worse: CRITICAL at or over ``critical``, WARNING at or over ``warning``."""
    if value >= critical:
        return HealthStatus.CRITICAL
    if value >= warning:
        return HealthStatus.WARNING
    return HealthStatus.HEALTHY


def memory_check(warning_percent: float = 85.0, critical_percent: float = 95.0) -> CheckFunction:
    def check() -> HealthCheck:
        import psutil
        memory = psutil.virtual_memory()
        status = _grade(memory.percent, warning_percent, critical_percent)
        return HealthCheck("memory", status, f"memory {memory.percent:.1f}% used",
                           details={"used_percent": memory.percent, "total_bytes": memory.total,
                                    "available_bytes": memory.available,
                                    "warning_percent": warning_percent,
                                    "critical_percent": critical_percent},
                           observed_value=memory.percent, observed_unit="percent")
    return check


def disk_check(
    path: str = "/", warning_free_percent: float = 15.0, critical_free_percent: float = 5.0
) -> CheckFunction:
    """Low disk: WARNING under ``warning_free_percent`` free, CRITICAL under
    ``critical_free_percent``."""

    def check() -> HealthCheck:
        import psutil
        usage = psutil.disk_usage(path)
        free_percent = 100.0 - usage.percent
        if free_percent < critical_free_percent:
            status = HealthStatus.CRITICAL
        elif free_percent < warning_free_percent:
            status = HealthStatus.WARNING
        else:
            status = HealthStatus.HEALTHY
        return HealthCheck("disk", status, f"{free_percent:.1f}% free on {path}",
                           details={"path": path, "free_percent": free_percent,
                                    "free_bytes": usage.free, "total_bytes": usage.total,
                                    "warning_free_percent": warning_free_percent,
                                    "critical_free_percent": critical_free_percent},
                           observed_value=free_percent, observed_unit="percent free")
    return check


def cpu_check(warning_percent: float = 90.0, critical_percent: float = 98.0, *,
              min_interval_seconds: float = 0.25) -> CheckFunction:
    """CPU busy % since the previous run of this check; over ``min_interval_seconds`` (waited
    for, without blocking the loop) when there is no earlier reading or it is younger than that.

    It keeps its own reading of ``psutil.cpu_times()`` rather than calling
    ``psutil.cpu_percent(None)``, whose first call answers 0.0 and whose baseline is shared
    with every other caller on the thread (the sampler's system metrics): a first run, as in
    ``asgi-monitor check`` or ``/api/health/cpu`` just after start, sees a saturated CPU.
    """
    last: list[tuple[float, Any]] = []  # (monotonic, cpu_times): the previous reading

    async def check() -> HealthCheck:
        import psutil
        now = time.monotonic()
        if not last or now - last[0][0] < min_interval_seconds:
            last[:] = [(now, psutil.cpu_times())]
            await asyncio.sleep(min_interval_seconds)
        (since, before), after = last[0], psutil.cpu_times()
        last[:] = [(time.monotonic(), after)]
        percent = _busy_percent(before, after)
        status = _grade(percent, warning_percent, critical_percent)
        # The window measured, said as such: a first run has no "last check" to be since.
        window = duration_label(float(f"{last[0][0] - since:.2g}"))
        return HealthCheck("cpu", status, f"CPU {percent:.1f}% busy over the last {window}",
                           details={"percent": percent, "cores": psutil.cpu_count(),
                                    "load_average": list(psutil.getloadavg()),
                                    "warning_percent": warning_percent,
                                    "critical_percent": critical_percent},
                           observed_value=percent, observed_unit="percent")
    return check


def _busy_percent(before: Any, after: Any) -> float:
    """psutil's own formula (``cpu_percent``): busy = total - idle - iowait, where the total
    leaves out guest time (already counted in user and nice on Linux)."""
    def split(times: Any) -> tuple[float, float]:
        fields = times._asdict()
        total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
        idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
        return total, total - idle

    total_before, busy_before = split(before)
    total_after, busy_after = split(after)
    elapsed = total_after - total_before
    if elapsed <= 0:
        return 0.0
    return round(max(0.0, min(100.0, (busy_after - busy_before) / elapsed * 100)), 1)


def responsiveness_check(
    warning_ms: float = 100.0, critical_ms: float = 500.0, probe_seconds: float = 0.01
) -> CheckFunction:
    """Event-loop lag: how much later than asked a short sleep wakes up. A loop blocked by sync
    work in async code answers every request that much later."""

    async def check() -> HealthCheck:
        started = time.perf_counter()
        await asyncio.sleep(probe_seconds)
        lag_ms = max(0.0, (time.perf_counter() - started - probe_seconds) * 1000)
        status = _grade(lag_ms, warning_ms, critical_ms)
        return HealthCheck("responsiveness", status, f"event loop lag {lag_ms:.1f} ms",
                           details={"lag_ms": lag_ms, "warning_ms": warning_ms,
                                    "critical_ms": critical_ms},
                           observed_value=round(lag_ms, 3), observed_unit="ms")
    return check


def _latency_result(name: str, started: float, warning_ms: float, what: str) -> HealthCheck:
    latency_ms = (time.perf_counter() - started) * 1000
    slow = latency_ms >= warning_ms
    return HealthCheck(name, HealthStatus.WARNING if slow else HealthStatus.HEALTHY,
                       f"{what} {'slow' if slow else 'ok'} ({latency_ms:.1f} ms)",
                       details={"latency_ms": latency_ms, "warning_ms": warning_ms},
                       observed_value=round(latency_ms, 3), observed_unit="ms")


def database_check(
    target: Any, *, query: str = "SELECT 1", warning_ms: float = 500.0, name: str = "database"
) -> CheckFunction:
    """Connectivity and query latency for one of:

    - a SQLAlchemy ``AsyncEngine`` (async), or ``Engine`` (sync, in a thread);
    - an async callable that performs a query (its duration is the latency);
    - a DB-API connection factory, e.g. ``lambda: sqlite3.connect(path)`` (sync).
    A connection or query error raises, which the checker reports as CRITICAL.
    """
    if hasattr(target, "sync_engine"):
        async def check_async_engine() -> HealthCheck:
            started = time.perf_counter()
            async with target.connect() as connection:
                await connection.exec_driver_sql(query)
            return _latency_result(name, started, warning_ms, "database query")
        return check_async_engine

    if hasattr(target, "dialect") and hasattr(target, "connect"):
        def check_engine() -> HealthCheck:
            started = time.perf_counter()
            with target.connect() as connection:
                connection.exec_driver_sql(query)
            return _latency_result(name, started, warning_ms, "database query")
        return check_engine

    if inspect.iscoroutinefunction(target):
        async def check_callable() -> HealthCheck:
            started = time.perf_counter()
            await target()
            return _latency_result(name, started, warning_ms, "database query")
        return check_callable

    if callable(target):
        def check_dbapi() -> HealthCheck:
            started = time.perf_counter()
            connection = target()
            try:
                cursor = connection.cursor()
                cursor.execute(query)
                cursor.fetchall()
                cursor.close()
            finally:
                connection.close()
            return _latency_result(name, started, warning_ms, "database query")
        return check_dbapi

    raise TypeError(f"database_check needs an engine, an async callable or a connection "
                    f"factory, got {type(target).__name__}")


def cache_check(
    client: Any, *, warning_ms: float = 100.0, name: str = "cache", is_async: bool | None = None
) -> CheckFunction:
    """Any client with ``ping()``, sync (run in a thread) or async (e.g. redis.asyncio).

    Async clients are recognised by an async ``ping``, ``aclose`` or ``__aenter__`` (redis.asyncio's
    ``ping`` is a plain method returning an awaitable); pass ``is_async`` to say it explicitly.
    """
    ping = getattr(client, "ping", None)
    if ping is None:
        raise TypeError(f"cache_check needs a client with ping(), got {type(client).__name__}")
    if is_async is None:
        is_async = any(inspect.iscoroutinefunction(getattr(client, attr, None))
                       for attr in ("ping", "aclose", "__aenter__"))

    def verdict(answer: Any, started: float) -> HealthCheck:
        if answer is False:
            return HealthCheck(name, HealthStatus.CRITICAL, "cache ping answered False")
        return _latency_result(name, started, warning_ms, "cache ping")

    if is_async:
        async def check_async() -> HealthCheck:
            started = time.perf_counter()
            return verdict(await ping(), started)
        return check_async

    def check_sync() -> HealthCheck:
        started = time.perf_counter()
        answer = ping()
        if inspect.isawaitable(answer):
            raise TypeError("ping() returned an awaitable from a sync function; pass the client "
                            "whose ping is declared async")
        return verdict(answer, started)
    return check_sync


def session_check(probe: Callable[[], CheckResult | Awaitable[CheckResult]]) -> CheckFunction:
    """Session management health from an app callable returning a HealthCheck or a bool (for
    instance: can the session store be read and written?)."""
    if not callable(probe):
        raise TypeError("session_check needs a callable")
    return probe


def install_default_checks(checker: HealthChecker, health: HealthSettings,
                           system: SystemSettings) -> None:
    """Memory, disk and CPU (group "system") and responsiveness (liveness and readiness)."""
    interval = health.interval_seconds
    checker.register_check(
        "memory", "System memory in use",
        memory_check(system.memory_warning_percent, system.memory_critical_percent),
        interval, groups=("system",))
    checker.register_check(
        "disk", f"Free space on {health.disk_path}",
        disk_check(health.disk_path, system.disk_warning_free_percent,
                   system.disk_critical_free_percent),
        interval, groups=("system",))
    checker.register_check(
        "cpu", "System CPU usage",
        # A first run waits a moment to measure: well inside the run's timeout (at most the
        # interval).
        cpu_check(system.cpu_warning_percent, system.cpu_critical_percent,
                  min_interval_seconds=min(0.25, interval / 4)),
        interval, groups=("system",))
    # Responsiveness is the one process-level check: it is what liveness probes should watch.
    checker.register_check(
        "responsiveness", "Event-loop lag of this process",
        responsiveness_check(health.loop_lag_warning_seconds * 1000,
                             health.loop_lag_critical_seconds * 1000),
        min(interval, 15.0), groups=("liveness", "readiness"))
