"""How close the dashboard's latency quantiles come to what a caller of the app measured.

    python benchmarks/latency_quantiles.py [--requests 300] [--runs 5]

Handlers busy-wait a known, spread duration (log-normal around 0.3 ms and 3 ms, as a web
endpoint's latencies spread); each request goes through ``MonitoringMiddleware`` and is timed
around the call. The dashboard's p50/p95/p99 (the history point, interpolated in the default
duration buckets) are printed beside the measured ones, with their ratio, for each run.

A timing, so a benchmark: on a busy machine a run is preempted and its measured tail moves away
from the one the handler waits for. ``tests/unit/metrics/test_fast_latencies.py`` checks the
quantiles themselves against durations it records, which no preemption changes.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from typing import Any

from prometheus_client import CollectorRegistry
from which_build import measured_build

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.build import sampler_of
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings

SPREAD = 0.3
MEDIANS = (0.0003, 0.003)


class Clock:
    """The sampler's clock, moved by hand: one history interval between the two samples."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measured(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(path: str, median: float, requests: int, rng: random.Random) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        busy(median * math.exp(rng.gauss(0.0, SPREAD)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    monitor = build_monitor(
        MonitoringConfig(metrics=MetricsSettings(route_resolver=lambda scope: scope["path"]),
                         health=HealthSettings(default_checks=False),
                         alerts=AlertSettings(default_rules=False),
                         system=SystemSettings(metrics=False)), CollectorRegistry())
    clock = Clock()
    monitor.sampler = sampler_of(monitor.collector, clock=clock, monotonic=clock)
    middleware = MonitoringMiddleware(app, monitor=monitor)
    monitor.take_sample()
    values = []
    for _ in range(requests):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "root_path": "", "query_string": b"", "headers": [],
                 "client": ("127.0.0.1", 1), "server": ("t", 80)}
        start = time.perf_counter()
        await middleware(scope, receive, send)
        values.append(time.perf_counter() - start)
    clock.now += 10
    monitor.take_sample()
    point = monitor.history.latest()
    assert point is not None
    shown = []
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        dashboard = getattr(point, name)
        caller = measured(values, q)
        shown.append(f"{name} {dashboard * 1e3:7.3f} / {caller * 1e3:7.3f} ms "
                     f"({dashboard / caller:4.2f}x)")
    # What the handler itself waits at the median and p95 (log-normal: z = 1.645 at p95).
    intended = f"waits p50 {median * 1e3:.1f}, p95 {median * math.exp(1.645 * SPREAD) * 1e3:.1f} ms"
    print(f"    {path:<8} ({intended})  " + "   ".join(shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"build: {measured_build()}")
    print("dashboard / measured around the call, per run")
    rng = random.Random(7)
    for _ in range(args.runs):
        for median in MEDIANS:
            asyncio.run(run(f"/{median}", median, args.requests, rng))


if __name__ == "__main__":
    main()
