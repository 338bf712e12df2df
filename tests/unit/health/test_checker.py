"""The health checker: sync and async checks, caching, timeouts, stale results, the overall
status, single flight and the scheduler (built-in checks in test_builtin.py, the API in
unit/web/test_health.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from support import Clock

from asgi_monitor.errors import MonitoringError
from asgi_monitor.health import HealthCheck, HealthChecker, HealthStatus


def healthy() -> HealthCheck:
    return HealthCheck("ignored", HealthStatus.HEALTHY, "fine")


# -- the checker ------------------------------------------------------------------------------
async def test_sync_and_async_checks_run_and_cache() -> None:
    checker = HealthChecker()
    thread_names: list[str] = []

    def sync_check() -> HealthCheck:
        thread_names.append(threading.current_thread().name)
        return HealthCheck("sync", HealthStatus.WARNING, "meh", {"x": 1})

    async def async_check() -> bool:
        return True

    checker.register_check("sync", "sync one", sync_check)
    checker.register_check("async", "async one", async_check)
    assert checker.result("sync").status is HealthStatus.UNKNOWN
    results = await checker.run_all()
    assert results["sync"].status is HealthStatus.WARNING
    assert results["sync"].name == "sync"
    assert results["async"].status is HealthStatus.HEALTHY
    # Sync checks never run on the event loop thread.
    assert thread_names and thread_names[0].startswith("asgi_monitor-health")
    assert checker.overall() is HealthStatus.WARNING


async def test_raising_check_is_critical_with_generic_message() -> None:
    checker = HealthChecker()

    def broken() -> HealthCheck:
        raise ConnectionError("password=hunter2 rejected by db.internal:5432")

    checker.register_check("db", "db", broken)
    result = await checker.run_check("db")
    assert result.status is HealthStatus.CRITICAL
    assert result.message == "check raised an exception"
    assert "hunter2" not in result.message
    assert "hunter2" in result.details["error"]  # admins see it
    assert "hunter2" not in str(result.public_view(admin=False))


async def test_hanging_async_and_sync_checks_time_out() -> None:
    checker = HealthChecker()
    release = threading.Event()

    async def hangs() -> bool:
        await asyncio.sleep(3600)
        return True

    def hangs_in_thread() -> bool:
        release.wait(10)
        return True

    checker.register_check("async_hang", "", hangs, timeout_seconds=0.1)
    checker.register_check("sync_hang", "", hangs_in_thread, timeout_seconds=0.1)
    started = time.perf_counter()
    results = await checker.run_all()
    assert time.perf_counter() - started < 2
    assert results["async_hang"].status is HealthStatus.CRITICAL
    assert "timed out after 0.1s" in results["async_hang"].message
    assert results["sync_hang"].status is HealthStatus.CRITICAL
    # The hung thread is not piled on: the next run reports it instead of starting another.
    again = await checker.run_check("sync_hang")
    assert "still hung" in again.message
    release.set()


async def test_stale_results_read_as_unknown() -> None:
    clock = Clock(1000.0)
    checker = HealthChecker(clock=clock)
    checker.register_check("svc", "", healthy, interval_seconds=10)
    await checker.run_check("svc")
    clock.advance(29)
    assert checker.result("svc").status is HealthStatus.HEALTHY
    clock.advance(2)  # 31 s > 3 intervals
    stale = checker.result("svc")
    assert stale.status is HealthStatus.UNKNOWN
    assert "stale" in stale.message
    assert checker.overall() is HealthStatus.UNKNOWN


async def test_overall_rules_and_non_critical_checks() -> None:
    checker = HealthChecker()
    checker.register_check("ok", "", lambda: True)
    checker.register_check("optional", "", lambda: False, critical=False)
    await checker.run_all()
    assert checker.overall() is HealthStatus.WARNING  # a non-critical failure only degrades
    checker.register_check("required", "", lambda: False)
    await checker.run_check("required")
    assert checker.overall() is HealthStatus.CRITICAL
    checker.register_check("never_run", "", lambda: True)
    assert checker.overall() is HealthStatus.CRITICAL  # unknown ones don't hide known status
    assert HealthChecker().overall() is HealthStatus.UNKNOWN


def test_registration_errors() -> None:
    checker = HealthChecker()
    checker.register_check("a", "", healthy)
    with pytest.raises(MonitoringError, match="already registered"):
        checker.register_check("a", "", healthy)
    for bad in ("", "live", "ready", "a/b"):
        with pytest.raises(MonitoringError, match="invalid health check name"):
            checker.register_check(bad, "", healthy)
    with pytest.raises(MonitoringError, match="interval_seconds must be > 0"):
        checker.register_check("b", "", healthy, interval_seconds=0)


async def test_run_check_is_single_flight() -> None:
    checker = HealthChecker()
    calls = 0

    async def slow() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return True

    checker.register_check("slow", "", slow)
    results = await asyncio.gather(*(checker.run_check("slow") for _ in range(50)))
    assert calls == 1
    assert all(r is results[0] for r in results)


async def test_scheduler_runs_each_check_at_its_interval() -> None:
    checker = HealthChecker()
    runs: list[float] = []

    async def tick() -> bool:
        runs.append(time.perf_counter())
        return True

    checker.register_check("tick", "", tick, interval_seconds=0.1)
    task = asyncio.ensure_future(checker.run_forever())
    await asyncio.sleep(0.45)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 3 <= len(runs) <= 6
