"""Health checks: the checker, the built-in checks against real dependencies, and the API."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from support import require_binary

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings, HealthSettings
from asgi_monitor.errors import MonitoringError
from asgi_monitor.health import (
    HealthCheck,
    HealthChecker,
    HealthStatus,
    cache_check,
    database_check,
    disk_check,
    memory_check,
    responsiveness_check,
    session_check,
)

TOKEN = "health-admin-token-0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    clock = FakeClock()
    checker = HealthChecker(clock=clock)
    checker.register_check("svc", "", healthy, interval_seconds=10)
    await checker.run_check("svc")
    clock.now += 29
    assert checker.result("svc").status is HealthStatus.HEALTHY
    clock.now += 2  # 31 s > 3 intervals
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


# -- built-in checks against real things -------------------------------------------------------
async def test_builtin_system_checks_report_observed_values(tmp_path: Path) -> None:
    checker = HealthChecker()
    checker.register_check("memory", "", memory_check())
    checker.register_check("disk", "", disk_check(str(tmp_path)))
    checker.register_check("lag", "", responsiveness_check())
    results = await checker.run_all()
    assert 0 < results["memory"].observed_value <= 100  # type: ignore[operator]
    assert results["disk"].observed_unit == "percent free"
    assert results["lag"].observed_unit == "ms"
    # Thresholds at 0 % free / 0 % used make the same machine read as failing.
    checker.register_check("full", "", memory_check(warning_percent=0, critical_percent=0.001))
    assert (await checker.run_check("full")).status is HealthStatus.CRITICAL


async def test_responsiveness_detects_a_blocked_loop() -> None:
    checker = HealthChecker()
    checker.register_check("lag", "", responsiveness_check(warning_ms=20, critical_ms=100,
                                                           probe_seconds=0.001))
    # While the probe sleeps, block the loop as sync code in an async endpoint would.
    asyncio.get_running_loop().call_later(0.0005, time.sleep, 0.2)
    result = await checker.run_check("lag")
    assert result.status is HealthStatus.CRITICAL
    assert result.observed_value is not None and result.observed_value >= 150


async def test_database_check_against_a_real_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    sqlite3.connect(path).close()
    checker = HealthChecker()
    checker.register_check("db", "", database_check(lambda: sqlite3.connect(path)))
    checker.register_check("absent", "", database_check(
        lambda: sqlite3.connect(f"file:{tmp_path}/missing/none.db?mode=ro", uri=True)))
    results = await checker.run_all()
    assert results["db"].status is HealthStatus.HEALTHY
    assert results["db"].observed_unit == "ms"
    assert results["absent"].status is HealthStatus.CRITICAL
    assert "unable to open" in results["absent"].details["error"]


async def test_database_check_with_sqlalchemy_engines(tmp_path: Path) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_engine(f"sqlite:///{tmp_path}/sync.db")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/async.db")
    gone = create_engine(f"sqlite:///{tmp_path}/no/such/dir.db")
    checker = HealthChecker()
    checker.register_check("sync", "", database_check(engine))
    checker.register_check("async", "", database_check(async_engine))
    checker.register_check("gone", "", database_check(gone))

    async def query() -> None:
        async with async_engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    checker.register_check("callable", "", database_check(query))
    results = await checker.run_all()
    assert {n: r.status for n, r in results.items()} == {
        "sync": HealthStatus.HEALTHY, "async": HealthStatus.HEALTHY,
        "gone": HealthStatus.CRITICAL, "callable": HealthStatus.HEALTHY}
    await async_engine.dispose()
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_cache_check_against_a_real_redis_that_is_then_killed(tmp_path: Path) -> None:
    import redis
    import redis.asyncio

    server = require_binary("redis-server")
    port = _free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sync_client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        async_client = redis.asyncio.Redis(port=port, socket_timeout=1,
                                           socket_connect_timeout=1)
        for _ in range(100):
            try:
                if sync_client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        checker = HealthChecker()
        checker.register_check("cache", "", cache_check(sync_client))
        checker.register_check("cache_async", "", cache_check(async_client))
        up = await checker.run_all()
        assert up["cache"].status is HealthStatus.HEALTHY
        assert up["cache_async"].status is HealthStatus.HEALTHY, up["cache_async"].details
        process.kill()
        process.wait(10)
        down = await checker.run_all()
        assert down["cache"].status is HealthStatus.CRITICAL
        assert down["cache_async"].status is HealthStatus.CRITICAL
        assert "Connection" in down["cache"].details["error"]
        await async_client.aclose()
        sync_client.close()
    finally:
        process.kill()
        process.wait(10)


async def test_session_check_uses_the_app_callable() -> None:
    state = {"ok": True}
    checker = HealthChecker()
    checker.register_check("sessions", "", session_check(lambda: state["ok"]))
    assert (await checker.run_check("sessions")).status is HealthStatus.HEALTHY
    state["ok"] = False
    assert (await checker.run_check("sessions")).status is HealthStatus.CRITICAL


# -- the API ----------------------------------------------------------------------------------
async def _ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def monitored(**sections: Any) -> MonitoringMiddleware:
    sections.setdefault("health", HealthSettings(default_checks=False))
    config = MonitoringConfig(**sections)
    return MonitoringMiddleware(_ok_app, monitor=build_monitor(config, CollectorRegistry()))


def client(mw: MonitoringMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://t")


async def test_status_codes_follow_overall_status() -> None:
    mw = monitored()
    health = mw.monitor.health
    state = {"status": HealthStatus.HEALTHY}
    health.register_check("svc", "", lambda: HealthCheck("svc", state["status"], "x"))
    async with client(mw) as c:
        r = await c.get("/api/health")
        assert (r.status_code, r.json()["status"]) == (503, "unknown")
        for status, code in ((HealthStatus.HEALTHY, 200), (HealthStatus.WARNING, 200),
                             (HealthStatus.CRITICAL, 503)):
            state["status"] = status
            await health.run_check("svc")
            r = await c.get("/api/health")
            assert (r.status_code, r.json()["status"]) == (code, status.value)
            one = await c.get("/api/health/svc")
            assert (one.status_code, one.json()["status"]) == (code, status.value)
        missing = await c.get("/api/health/nope")
        assert missing.status_code == 404
        assert "no health check named 'nope'" in missing.json()["error"]


async def test_every_health_answer_is_json_never_stored() -> None:
    mw = monitored()
    mw.monitor.health.register_check("svc", "", lambda: True)
    async with client(mw) as c:
        for path, code, accept in (
                ("/api/health", 503, "*/*"), ("/api/health", 503, "application/health+json"),
                ("/api/health?group=nope", 404, "*/*"), ("/api/health/svc", 503, "*/*"),
                ("/api/health/nope", 404, "*/*"), ("/api/health/live", 200, "*/*"),
                ("/api/health/ready", 503, "*/*")):
            r = await c.get(path, headers={"Accept": accept})
            assert (r.status_code, r.headers["cache-control"]) == (code, "no-store"), path
            assert r.headers["content-type"] in ("application/json",
                                                 "application/health+json"), path
            r.json()


async def test_health_json_shape_when_asked() -> None:
    mw = monitored(health=HealthSettings(default_checks=True))
    await mw.monitor.health.run_all()
    async with client(mw) as c:
        r = await c.get("/api/health", headers={"accept": "application/health+json"})
    assert r.headers["content-type"].startswith("application/health+json")
    body = r.json()
    assert body["status"] in {"pass", "warn", "fail"}
    memory = body["checks"]["memory:utilization"][0]
    assert memory["componentId"] == "memory"
    assert memory["status"] in {"pass", "warn", "fail"}
    assert memory["observedUnit"] == "percent"
    assert isinstance(memory["observedValue"], float)
    assert "T" in memory["time"]
    assert "details" not in memory  # not an admin
    assert body["checks"]["responsiveness:responseTime"][0]["observedUnit"] == "ms"


async def test_details_only_for_admins_and_run_endpoint_is_admin() -> None:
    mw = monitored(gate=GateSettings(admin_token=TOKEN))
    health = mw.monitor.health

    def broken() -> bool:
        raise RuntimeError("secret internals")

    health.register_check("db", "Database", broken)
    await health.run_check("db")
    admin = {"Authorization": f"Bearer {TOKEN}"}
    async with client(mw) as c:
        public = (await c.get("/api/health/db")).json()
        assert public["message"] == "check raised an exception"
        assert "details" not in public and "secret internals" not in str(public)
        private = (await c.get("/api/health/db", headers=admin)).json()
        assert "secret internals" in private["details"]["error"]
        assert (await c.post("/api/health/db/run")).status_code == 401
        ran = await c.post("/api/health/db/run", headers=admin)
        assert ran.status_code == 503 and ran.json()["status"] == "critical"
        assert (await c.post("/api/health/nope/run", headers=admin)).status_code == 404


async def test_probes_follow_startup_and_shutdown() -> None:
    mw = monitored()
    health = mw.monitor.health
    state = {"up": True}
    health.register_check("db", "", lambda: state["up"], groups=("readiness",))
    health.register_check("loop", "", lambda: True, groups=("liveness",))
    async with client(mw) as c:
        ready = await c.get("/api/health/ready")
        assert ready.status_code == 503 and "starting up" in ready.json()["reason"]
        async with mw.monitor.running():
            await health.run_all()
            assert (await c.get("/api/health/ready")).status_code == 200
            assert (await c.get("/api/health/live")).status_code == 200
            state["up"] = False
            await health.run_check("db")
            not_ready = await c.get("/api/health/ready")
            assert not_ready.status_code == 503 and not_ready.json()["failing"] == ["db"]
            # The database is never part of liveness: the process is alive.
            assert (await c.get("/api/health/live")).status_code == 200
            mw.monitor.begin_shutdown()
            assert (await c.get("/api/health/ready")).status_code == 503
        assert (await c.get("/api/health/ready")).status_code == 503


async def test_readiness_false_until_lifespan_startup_completes() -> None:
    mw = monitored()
    seen: list[int] = []
    gate = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # lifespan.startup
        async with client(mw) as c:
            seen.append((await c.get("/api/health/ready")).status_code)
        await send({"type": "lifespan.startup.complete"})
        await gate.wait()

    mw.app = app
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        async with client(mw) as c:
            seen.append((await c.get("/api/health/ready")).status_code)
        gate.set()

    await mw({"type": "lifespan"}, queue.get, send)
    assert seen == [503, 200]
    await mw.monitor.stop()


async def test_a_thousand_concurrent_gets_run_each_check_at_most_once() -> None:
    # one client address sending 1,000 at once
    mw = monitored(gate=GateSettings(rate_limit_per_second=0))
    calls = 0

    async def counted() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return True

    mw.monitor.health.register_check("counted", "", counted, interval_seconds=3600)
    async with mw.monitor.running(), client(mw) as c:
        await asyncio.sleep(0.1)  # the scheduler's first run
        responses = await asyncio.gather(*(c.get("/api/health") for _ in range(1000)))
    assert calls == 1
    assert {r.status_code for r in responses} == {200}


async def test_health_gauges_are_exported() -> None:
    registry = CollectorRegistry()
    mw = MonitoringMiddleware(
        _ok_app,
        monitor=build_monitor(
            MonitoringConfig(health=HealthSettings(default_checks=False)), registry))
    mw.monitor.health.register_check("svc", "", lambda: False)
    await mw.monitor.health.run_check("svc")
    assert registry.get_sample_value("health_check_status",
                                     {"check": "svc", "status": "critical"}) == 1
    assert registry.get_sample_value("health_check_status",
                                     {"check": "svc", "status": "healthy"}) == 0
    assert registry.get_sample_value("health_check_duration_seconds", {"check": "svc"}) >= 0
    assert registry.get_sample_value("health_check_last_run_timestamp_seconds",
                                     {"check": "svc"}) > 1.7e9
    assert registry.get_sample_value("health_status", {"status": "critical"}) == 1
