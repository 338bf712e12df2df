"""promtool accepts the exposition GET /api/metrics serves."""

from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from support import client, require_binary

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import MetricsSettings


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def monitored(registry: CollectorRegistry, **config: object) -> MonitoringMiddleware:
    app = Starlette(routes=[Route("/", ok), Route("/items/{item_id}", ok)])
    # type: ignore[arg-type]
    return MonitoringMiddleware(app, monitor=build_monitor(MonitoringConfig(**config), registry))


async def traffic_and_scrape(mw: MonitoringMiddleware, **headers: str) -> Response:
    async with client(mw) as c:
        await c.get("/")
        await c.get("/items/1")
        await c.request("BREW", "/")
        await c.get("/nope")
        mw.monitor.collector.increment_counter("custom_events_total", labels={"kind": 'a"b\\c'})
        return await c.get("/api/metrics", headers=headers)  # type: ignore[return-value]


async def test_output_passes_promtool_check_metrics(registry: CollectorRegistry) -> None:
    promtool = require_binary("promtool")
    r = await traffic_and_scrape(monitored(registry, metrics=MetricsSettings(namespace="shop")))
    result = subprocess.run([promtool, "check", "metrics"], input=r.content,
                            capture_output=True, timeout=60)
    problems = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, problems
