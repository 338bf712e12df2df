"""The Kubernetes probe paths (/livez, /readyz, /startupz): served beside the health API, moved or
switched off by their settings, answered from state (no check run, no rate limit)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings, HealthSettings, PathSettings
from asgi_monitor.errors import ConfigError


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def monitored(**sections: Any) -> MonitoringMiddleware:
    sections.setdefault("health", HealthSettings(default_checks=False))
    config = MonitoringConfig(**sections)
    return MonitoringMiddleware(_app, monitor=build_monitor(config, CollectorRegistry()))


def client(mw: MonitoringMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://t")


async def test_livez_and_readyz_answer_as_the_health_api_probes() -> None:
    mw = monitored()
    health = mw.monitor.health
    state = {"db": True}
    health.register_check("db", "", lambda: state["db"], groups=("readiness",))
    health.register_check("loop", "", lambda: True, groups=("liveness",))
    async with client(mw) as c, mw.monitor.running():
        await health.run_all()
        for path in ("/livez", "/readyz", "/api/health/live", "/api/health/ready"):
            r = await c.get(path)
            assert (r.status_code, r.json()["status"]) == (200, "pass"), path
        state["db"] = False
        await health.run_check("db")
        readyz = await c.get("/readyz")
        assert (readyz.status_code, readyz.json()["failing"]) == (503, ["db"])
        # A dependency never restarts the pod: liveness reads the liveness group only.
        assert (await c.get("/livez")).status_code == 200
        mw.monitor.begin_shutdown()
        readyz = await c.get("/readyz")
        assert (readyz.status_code, readyz.json()["reason"]) == (503, "shutting down")


async def test_startupz_waits_for_the_lifespan_and_every_first_check() -> None:
    mw = monitored()
    health = mw.monitor.health
    release = asyncio.Event()

    async def slow_dependency() -> bool:
        await release.wait()
        return False  # its verdict does not matter to startup: that it ran does

    health.register_check("db", "", slow_dependency, groups=("readiness",))
    health.register_check("loop", "", lambda: True, groups=("liveness",))
    async with client(mw) as c:
        mw.monitor.lifespan_startup()  # the server began the app's startup
        try:
            r = await c.get("/startupz")
            assert (r.status_code, r.json()["reason"]) == (503, "starting up")
            mw.monitor.lifespan_startup_complete()
            while health.checks["loop"].last is None:
                await asyncio.sleep(0.01)
            r = await c.get("/startupz")
            assert r.status_code == 503
            assert r.json() == {"status": "fail", "reason": "first health checks running",
                                "pending": ["db"]}
            release.set()
            while health.checks["db"].last is None:
                await asyncio.sleep(0.01)
            assert (await c.get("/startupz")).json() == {"status": "pass"}
            # Started is kept: a failing dependency makes the app unready, not un-started.
            assert (await c.get("/readyz")).status_code == 503
            assert (await c.get("/startupz")).status_code == 200
        finally:
            await mw.monitor.stop()


async def test_probes_run_no_check_and_are_never_rate_limited() -> None:
    mw = monitored(gate=GateSettings(rate_limit_per_second=0.001, rate_limit_burst=1))
    calls = 0

    def counted() -> bool:
        nonlocal calls
        calls += 1
        return True

    mw.monitor.health.register_check("counted", "", counted, interval_seconds=3600)
    await mw.monitor.health.run_all()
    async with client(mw) as c:
        codes = [(await c.get(path)).status_code
                 for _ in range(20) for path in ("/livez", "/readyz", "/startupz")]
        # The limit is real: a limited endpoint is refused after its burst of one.
        limited = [(await c.get("/api/health/counted")).status_code for _ in range(3)]
    assert set(codes) == {200}
    assert calls == 1
    assert 429 in limited


async def test_moved_and_switched_off_probe_paths() -> None:
    mw = monitored(paths=PathSettings(livez="/healthz", readyz="/ops/ready", startupz=""))
    async with client(mw) as c:
        assert (await c.get("/healthz")).json() == {"status": "pass"}
        assert (await c.get("/ops/ready")).json() == {"status": "pass"}
        # The old and the switched-off paths are the app's again, and a probe is one path,
        # not a prefix: what lies below it is the app's too.
        for path in ("/livez", "/readyz", "/startupz", "/healthz/db", "/ops/ready/x"):
            r = await c.get(path)
            assert (r.status_code, r.text) == (200, "app"), path


def test_probe_paths_from_the_environment() -> None:
    config = MonitoringConfig.from_env({"MONITORING_LIVEZ_PATH": "/k8s/live",
                                        "MONITORING_STARTUPZ_PATH": "off",
                                        "MONITORING_READYZ_PATH": " "})
    # A blank variable means unset, as for any variable: `off` switches a probe off.
    assert (config.paths.livez, config.paths.readyz, config.paths.startupz) == (
        "/k8s/live", "/readyz", "")
    assert "/k8s/live" in config.monitoring_paths and "/k8s/live" not in config.paths.all()
    assert "" not in config.monitoring_paths and "/startupz" not in config.monitoring_paths
    with pytest.raises(ConfigError, match=r"MONITORING_READYZ_PATH \(paths.readyz\) must be a "
                                          r"path starting with '/'"):
        MonitoringConfig.from_env({"MONITORING_READYZ_PATH": "readyz"})


@pytest.mark.parametrize("in_path", [True, False], ids=["path-has-root", "path-below-root"])
async def test_probes_answer_below_a_root_path(in_path: bool) -> None:
    mw = monitored()
    lead = "/shop" if in_path else ""
    transport = httpx.ASGITransport(app=mw, root_path="/shop")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for path in ("/livez", "/readyz", "/startupz"):
            r = await c.get(f"{lead}{path}")
            assert (r.status_code, r.json()) == (200, {"status": "pass"}), path
        assert (await c.get(f"{lead}/livezz")).text == "app"
    await mw.monitor.stop()


def test_the_probes_leave_the_first_dispatch_test_as_selective_as_before() -> None:
    # The request path's first test cuts every path to the shortest prefix's length; the short
    # probe paths are whole paths and must not shorten that cut, or most /api/... requests of
    # the app would take the slower second test.
    mw = monitored()
    paths = mw.monitor.config.paths
    assert mw._head == min(len(prefix) for prefix in paths.all())
    assert {"/livez", "/readyz", "/startupz"} <= mw._heads
    assert not any(head in mw._heads for head in ("/api/s", "/api/a", "/api/h", "/api/m"))
