"""What one history/alert sample costs on the event loop, against a full scrape.

    .venv/bin/python benchmarks/sample_cost.py [--routes 200]

Records one request on each of ``routes`` routes with two statuses (200 and 500), then times
``Monitor.take_sample()`` (the sampler reading the request store directly) and prometheus_client's
``generate_latest`` of the same registry (what a scrape encodes), as the median of 20 runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from which_build import measured_build

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings


def median_ms(action: Callable[[], object], runs: int = 20) -> float:
    action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", type=int, default=200)
    args = parser.parse_args()
    print(f"measured build: {measured_build()}")
    monitor = build_monitor(
        MonitoringConfig(health=HealthSettings(default_checks=False)), CollectorRegistry())
    for route in range(args.routes):
        for status in (200, 500):
            monitor.collector.requests.series("GET", f"/route/{route}", status, "http").observe(
                0.01, 0.005, 10, 100)
    lines = generate_latest(monitor.registry).count(b"\n")
    print(f"{args.routes * 2} request series, {lines} exposition lines")
    print(f"take_sample:     {median_ms(monitor.take_sample):.1f} ms")
    print(f"generate_latest: {median_ms(lambda: generate_latest(monitor.registry)):.1f} ms")


if __name__ == "__main__":
    main()
