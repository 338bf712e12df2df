"""The health API: status codes, JSON shape, admin-only details, probes and exported gauges."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings, HealthSettings
from asgi_monitor.health import HealthCheck, HealthStatus

TOKEN = "health-admin-token-0123456789"


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
                # Ready: served without lifespan, the first request started the monitor.
                ("/api/health/ready", 200, "*/*")):
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
