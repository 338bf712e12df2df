"""Bytes of one /api/metrics scrape for N routes, each answered once, in both formats.

    .venv/bin/python benchmarks/scrape_size.py [--routes 1 10 100] [--metric-names otel]
        [--statuses 200 404 500]

Each route answers once with each of ``--statuses`` (under OpenTelemetry names the histograms
are per status, so a route answering several statuses has several).

The cost of a histogram bucket is paid on every scrape, per route and per histogram: this is the
figure to read before adding bounds to the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from which_build import measured_build

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def app(scope: Any, receive: Any, send: Any) -> None:
    status = int(scope["query_string"] or b"200")
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def scrape_bytes(routes: int, naming: str = "classic",
                       statuses: tuple[int, ...] = (200,)) -> tuple[int, int]:
    config = MonitoringConfig(
        metrics=MetricsSettings(
            route_resolver=lambda scope: str(scope["path"]), metric_names=naming),
        health=HealthSettings(default_checks=False),
        alerts=AlertSettings(default_rules=False),
        system=SystemSettings(metrics=False))
    mw = MonitoringMiddleware(app, monitor=build_monitor(config, CollectorRegistry()))
    transport = httpx.ASGITransport(app=mw)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for i in range(routes):
            for status in statuses:
                await c.get(f"/r{i}?{status}")
        text = await c.get("/api/metrics")
        om = await c.get("/api/metrics", headers={"accept": OPENMETRICS})
    return len(text.content), len(om.content)


async def main(counts: list[int], naming: str, statuses: tuple[int, ...]) -> None:
    print(f"measured build: {measured_build()}")
    for n in counts:
        text, om = await scrape_bytes(n, naming, statuses)
        print(f"{n:>5} routes: {text:>9,} B text  {om:>9,} B OpenMetrics")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--metric-names", default="classic", choices=("classic", "otel", "both"))
    parser.add_argument("--statuses", type=int, nargs="+", default=[200])
    args = parser.parse_args()
    asyncio.run(main(args.routes, args.metric_names, tuple(args.statuses)))
