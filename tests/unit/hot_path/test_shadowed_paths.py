"""App routes under the monitoring paths: warned about once, never reached by accident, and
reachable when the middleware is told not to serve the monitoring endpoints."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry
from support import client, sample

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor, shadowing
from asgi_monitor.monitor import State

if TYPE_CHECKING:
    from fastapi import FastAPI

# Every test here serves a FastAPI app (the lowest-versions run has no FastAPI: it would pull a
# Starlette newer than the lowest one).
pytestmark = pytest.mark.frameworks


@pytest.fixture(autouse=True)
def nothing_reported_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shadowing, "_reported", set())


def service() -> tuple[FastAPI, list[str]]:
    """A FastAPI app with its own /api/health and /api/metrics/business; the paths it ran."""
    from fastapi import FastAPI

    app = FastAPI()
    ran: list[str] = []

    @app.get("/api/health")
    def health() -> dict[str, str]:
        ran.append("/api/health")
        return {"status": "app"}

    @app.get("/api/metrics/business")
    def business() -> dict[str, int]:
        ran.append("/api/metrics/business")
        return {"orders": 3}

    @app.get("/")
    def home() -> str:
        return "home"

    return app, ran


def wrap(app: Any, registry: CollectorRegistry, **kwargs: Any) -> MonitoringMiddleware:
    return MonitoringMiddleware(app, monitor=build_monitor(MonitoringConfig(), registry),
                                **kwargs)


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "is shadowed" in r.getMessage()]


async def test_first_request_warns_once_per_route(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_monitor")
    app, ran = service()
    mw = wrap(app, registry)
    async with client(mw) as c:
        for _ in range(3):
            assert (await c.get("/")).status_code == 200
            # Still the monitoring endpoints' answers: never the app's, never forwarded.
            assert (await c.get("/api/metrics/business")).status_code == 404
            assert (await c.get("/api/health")).json()["status"] != "app"
    await mw.monitor.stop()
    assert ran == []
    found = warnings_in(caplog)
    assert len(found) == 2
    assert any("/api/metrics/business" in m and "MONITORING_METRICS_PATH" in m for m in found)
    assert any("route /api/health " in m and "MONITORING_HEALTH_PATH" in m for m in found)


async def test_lifespan_startup_warns_before_any_request(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_monitor")
    app, _ = service()
    mw = wrap(app, registry)
    incoming = asyncio.Queue[dict[str, Any]]()
    await incoming.put({"type": "lifespan.startup"})
    seen: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            seen.append(len(warnings_in(caplog)))
            await incoming.put({"type": "lifespan.shutdown"})

    await mw({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send)
    assert seen == [2]
    assert mw.monitor.state is State.STOPPED


async def test_nothing_to_say_about_an_app_without_clashes(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_monitor")
    from fastapi import FastAPI

    app = FastAPI()
    mw = wrap(app, registry)
    async with client(mw) as c:
        await c.get("/")
    await mw.monitor.stop()
    assert warnings_in(caplog) == []


async def test_without_serving_the_endpoints_the_app_gets_its_paths_and_is_recorded(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_monitor")
    app, ran = service()
    mw = wrap(app, registry, serve_endpoints=False)
    async with client(mw) as c:
        assert (await c.get("/api/health")).json() == {"status": "app"}
        assert (await c.get("/api/metrics/business")).json() == {"orders": 3}
        assert (await c.get("/api/metrics")).status_code == 404  # the app's 404
    await mw.monitor.stop()
    assert ran == ["/api/health", "/api/metrics/business"]
    assert warnings_in(caplog) == []
    assert sample(registry, "http_requests_total", method="GET", route="/api/health",
                  status="200") == 1
    assert sample(registry, "http_requests_total", method="GET",
                  route="/api/metrics/business", status="200") == 1


async def test_a_failing_check_never_changes_a_response(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(app: Any, paths: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(shadowing, "warn_shadowed_routes", broken)
    app, _ = service()
    mw = wrap(app, registry)
    async with client(mw) as c:
        assert (await c.get("/")).status_code == 200
    await mw.monitor.stop()
    assert mw.monitor.collector.internal_errors == {"shadowing": 1}
