"""The middleware's own cost, isolated: a minimal raw ASGI app and a 2-route Starlette app, bare
and wrapped, in one process, reporting the *minimum* over batches (the least disturbed one).

    .venv/bin/python benchmarks/hotpath.py [--batches 25] [--exemplars]

A quick, low-noise gauge for hot-path changes (run.py is the full, paired comparison with
peers). Background features are off here, so only the per-request path is measured.
Set PYTHONPATH to a directory holding another build of ``asgi_monitor`` (e.g. the checkout, pure
Python) to compare builds; the first line printed says which one was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from which_build import measured_build

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings

MESSAGE = {"type": "http.request", "body": b"", "more_body": False}
# --exemplars: every request carries a W3C trace context, as behind a tracing proxy.
HEADERS: list[tuple[bytes, bytes]] = []
TRACEPARENT = (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


async def raw(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def ok(request: Request) -> Response:
    return PlainTextResponse("hi")


async def receive() -> dict[str, Any]:
    return MESSAGE


async def send(message: Any) -> None:
    return None


def scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": HEADERS, "client": ("127.0.0.1", 1),
            "server": ("t", 80)}


async def per_request_us(app: Any, path: str, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        await app(scope(path), receive, send)
    return (time.perf_counter() - start) / count * 1e6


async def main(batches: int, exemplars: bool) -> None:
    if exemplars:
        HEADERS.append(TRACEPARENT)
    config = MonitoringConfig(
                 metrics=MetricsSettings(exemplars=exemplars),
                 health=HealthSettings(default_checks=False),
                 alerts=AlertSettings(default_rules=False),
                 system=SystemSettings(metrics=False))
    starlette = Starlette(routes=[Route("/a", ok), Route("/items/{id}", ok)])
    apps = {
        "raw": (raw, "/x", 20000),
        "raw+asgi_monitor": (
            MonitoringMiddleware(raw, monitor=build_monitor(config, CollectorRegistry())),
            "/x",
            20000),
        "starlette": (starlette, "/items/5", 5000),
        "starlette+asgi_monitor": (
            MonitoringMiddleware(starlette, monitor=build_monitor(config, CollectorRegistry())),
            "/items/5",
            5000)}
    best = {name: float("inf") for name in apps}
    for _ in range(batches):
        for name, (app, path, count) in apps.items():
            best[name] = min(best[name], await per_request_us(app, path, count))
    for name, value in best.items():
        print(f"{name:<24} {value:6.2f} µs/request")
    print(f"added to a raw app:       {best['raw+asgi_monitor'] - best['raw']:.2f} µs")
    print(f"added to Starlette:       {best['starlette+asgi_monitor'] - best['starlette']:.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--exemplars", action="store_true",
                        help="exemplars on, each request with a traceparent header")
    args = parser.parse_args()
    print(f"measured build: {measured_build()}")
    asyncio.run(main(args.batches, args.exemplars))
