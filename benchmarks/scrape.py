"""Scrape cost: ``/api/metrics`` with ~1,000 series, every feature on (budget: <= 20 ms).

A Starlette app with enough routes that, after one real request through the middleware to each,
the exposition holds about ``--series`` sample lines (what Prometheus reports as
``scrape_samples_scraped``). Health checks, alert rules, the history sampler and the system
collector all run (``monitor.running()``), and a sample has been taken, so every collector has
something to say. Then, in-process on one event loop:

- *sub-app*: ``GET /api/metrics`` through the middleware (routing, the gate, the encoder in the
  thread pool, the response), timed from the call to the last body byte;
- *generate_latest*: prometheus_client's encoder alone on the same registry.

Prints median, p90 and max over ``--scrapes`` of each; exits 1 if the sub-app's median is over
budget. ``--profile`` adds a cProfile of generate_latest (where the time goes).

Usage (see benchmarks/README.md)::

    python benchmarks/scrape.py [--series 1000] [--scrapes 200] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from which_build import measured_build

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import (
    AlertSettings,
    GateSettings,
    HealthSettings,
    HistorySettings,
    SystemSettings,
)

BUDGET_MS = 20.0


async def endpoint(request: Request) -> Response:
    return PlainTextResponse("ok")


def scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def request(app: Any, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(path), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def sample_lines(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def build(routes: int) -> MonitoringMiddleware:
    app = Starlette(routes=[Route(f"/r{i}/{{item_id}}", endpoint) for i in range(routes)])
    # Every feature on: default health checks and alert rules, system metrics, history.
    # The scrapes come quicker than the endpoint's per-client rate limit allows (10/s).
    config = MonitoringConfig(
                 system=SystemSettings(metrics=True),
                 health=HealthSettings(default_checks=True),
                 alerts=AlertSettings(default_rules=True, console_enabled=False),
                 history=HistorySettings(top_routes=routes),
                 gate=GateSettings(rate_limit_per_second=0))
    return MonitoringMiddleware(app, monitor=build_monitor(config, CollectorRegistry()))


async def loaded(routes: int) -> tuple[MonitoringMiddleware, int]:
    """The app after one request per route, and the sample lines its scrape exposes."""
    mw = build(routes)
    async with mw.monitor.running():
        for i in range(routes):
            status, _ = await request(mw, f"/r{i}/7")
            assert status == 200
        mw.monitor.take_sample()
        status, body = await request(mw, "/api/metrics")
        assert status == 200
    return mw, sample_lines(body)


def summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    return {"median": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
            "max": ordered[-1]}


async def measure(series: int, scrapes: int, profile: bool) -> int:
    # Sample lines grow linearly with routes: two probes give the slope.
    _, one = await loaded(1)
    _, eleven = await loaded(11)
    per_route = (eleven - one) / 10
    routes = max(1, round(1 + (series - one) / per_route))
    mw, _ = await loaded(routes)
    async with mw.monitor.running():
        for i in range(routes):
            await request(mw, f"/r{i}/7")
        mw.monitor.take_sample()
        await asyncio.sleep(0.5)  # the health checks and the alert loop have run once
        status, body = await request(mw, "/api/metrics")
        assert status == 200
        lines = sample_lines(body)
        for _ in range(10):  # warm-up
            await request(mw, "/api/metrics")
        sub_app: list[float] = []
        for _ in range(scrapes):
            started = time.perf_counter()
            status, _ = await request(mw, "/api/metrics")
            sub_app.append((time.perf_counter() - started) * 1000)
            assert status == 200, status
        registry = mw.monitor.scrape_registry()
        encoder: list[float] = []
        for _ in range(scrapes):
            started = time.perf_counter()
            generate_latest(registry)
            encoder.append((time.perf_counter() - started) * 1000)
    print(f"scrape: {routes} routes, one request each -> {lines} sample lines "
          f"({len(body)} bytes; {per_route:g} lines per route, {one - per_route:g} without "
          f"routes); {scrapes} scrapes each\n")
    print("| measure | median ms | p90 ms | max ms |\n|---|---:|---:|---:|")
    for name, times in (("GET /api/metrics through the sub-app", sub_app),
                        ("generate_latest alone", encoder)):
        s = summary(times)
        print(f"| {name} | {s['median']:.2f} | {s['p90']:.2f} | {s['max']:.2f} |")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20):
            generate_latest(registry)
        profiler.disable()
        print()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(15)
    median = statistics.median(sub_app)
    verdict = "OK" if median <= BUDGET_MS else "OVER"
    print(f"\nscrape of {lines} series: {median:.2f} ms median (budget {BUDGET_MS:g} ms): "
          f"{verdict}")
    return 0 if median <= BUDGET_MS else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=1000, help="sample lines to aim for")
    parser.add_argument("--scrapes", type=int, default=200, help="scrapes timed per measure")
    parser.add_argument("--profile", action="store_true", help="cProfile generate_latest")
    args = parser.parse_args(argv)
    print(f"measured build: {measured_build()}")
    return asyncio.run(measure(args.series, args.scrapes, args.profile))


if __name__ == "__main__":
    sys.exit(main())
