"""The serving process of ``integration/test_worker_loop_lag.py``: with ``PROMETHEUS_MULTIPROC_DIR``
holding other workers' files, it runs the monitor (sampler and alert loop reading the merged
files) and answers ``GET /api/metrics`` scrapes, while probing its own event loop with short
sleeps, and prints one JSON line: the lags seen, which thread each merge of the files ran on,
and what the last merged sample and scrape held.

A process of its own, as a worker is: measured inside the test runner, every collection of the
runner's heap (the objects of the whole test session) would be charged to the monitor.

    python loop_lag_probe.py SERIES MAX_LAG_SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HistorySettings, MetricsSettings, SystemSettings

READS = 2  # of each loop, at least


async def measure(series: int, max_lag: float) -> dict[str, object]:
    monitor = build_monitor(MonitoringConfig(
        metrics=MetricsSettings(max_series=2 * series),
        history=HistorySettings(sample_interval_seconds=0.2),
        alerts=AlertSettings(check_interval_seconds=0.2),
        system=SystemSettings(metrics=False)), CollectorRegistry())
    merged = monitor.collector.merged
    assert merged is not None
    # Each merge of the files, by the thread it ran on: none may run on the event loop's.
    loop_thread = threading.get_ident()
    merges = {"on_loop": 0, "off_loop": 0}
    read = merged.read

    def counted_read() -> Any:
        merges["on_loop" if threading.get_ident() == loop_thread else "off_loop"] += 1
        return read()

    merged.read = counted_read  # type: ignore[method-assign]

    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("only the monitoring paths are asked for")

    app = MonitoringMiddleware(nothing, monitor=monitor)
    lags: list[float] = []
    scraped: list[str] = []
    async with monitor.running(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://worker") as client:
        # The first monitoring request loads the web layer (an import, on the loop): before
        # the probes, as a server's first scrape is long before any other.
        assert (await client.get("/api/metrics")).status_code == 200
        stop = asyncio.Event()

        async def scrape() -> None:
            while not stop.is_set():
                response = await client.get("/api/metrics")
                assert response.status_code == 200, response.status_code
                scraped.append(response.text)
                await asyncio.sleep(0.1)

        scraper = asyncio.create_task(scrape())
        deadline = time.monotonic() + 120
        # Until both loops have read the files a few times (the sampler's reads make history
        # points, the alert loop's make samples without one), and a few scrapes are done.
        while (len(monitor.history) < READS
               or len(monitor.samples) - len(monitor.history) < READS or len(scraped) < READS):
            if time.monotonic() > deadline:
                break
            asked = 0.005
            started = time.perf_counter()
            await asyncio.sleep(asked)
            lags.append(time.perf_counter() - started - asked)
            if lags[-1] >= max_lag:
                break  # over the bound: the verdict is in
        stop.set()
        await scraper
    latest = monitor.samples.latest()
    requests = sum(float(line.rsplit(" ", 1)[1]) for line in scraped[-1].splitlines()
                   if line.startswith("http_requests_total{")) if scraped else None
    return {"multiprocess_dir": monitor.collector.multiprocess_dir,
            "off_loop": monitor.sampler.off_loop, "lags": lags, "merges": merges,
            "history": len(monitor.history), "samples": len(monitor.samples),
            "scrapes": len(scraped), "scraped_requests": requests,
            "requests": None if latest is None else latest.requests,
            "routes": None if latest is None else len(latest.routes)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1]), float(sys.argv[2])))))
