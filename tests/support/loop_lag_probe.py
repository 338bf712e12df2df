"""The serving process of ``integration/test_worker_loop_lag.py``: with ``PROMETHEUS_MULTIPROC_DIR``
holding other workers' files, it runs the monitor (sampler and alert loop reading the merged
files) while probing its own event loop with short sleeps, and prints one JSON line: the lags
seen and what the last merged sample held.

A process of its own, as a worker is: measured inside the test runner, every collection of the
runner's heap (the objects of the whole test session) would be charged to the monitor.

    python loop_lag_probe.py SERIES MAX_LAG_SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import AlertSettings, HistorySettings, MetricsSettings, SystemSettings

READS = 2  # of each loop, at least


async def measure(series: int, max_lag: float) -> dict[str, object]:
    monitor = build_monitor(MonitoringConfig(
        metrics=MetricsSettings(max_series=2 * series),
        history=HistorySettings(sample_interval_seconds=0.2),
        alerts=AlertSettings(check_interval_seconds=0.2),
        system=SystemSettings(metrics=False)), CollectorRegistry())
    lags: list[float] = []
    async with monitor.running():
        deadline = time.monotonic() + 120
        # Until both loops have read the files a few times: the sampler's reads make history
        # points, the alert loop's make samples without one.
        while (len(monitor.history) < READS
               or len(monitor.samples) - len(monitor.history) < READS):
            if time.monotonic() > deadline:
                break
            asked = 0.005
            started = time.perf_counter()
            await asyncio.sleep(asked)
            lags.append(time.perf_counter() - started - asked)
            if lags[-1] >= max_lag:
                break  # over budget: the verdict is in
    latest = monitor.samples.latest()
    return {"multiprocess_dir": monitor.collector.multiprocess_dir,
            "off_loop": monitor.sampler.off_loop, "lags": lags,
            "history": len(monitor.history), "samples": len(monitor.samples),
            "requests": None if latest is None else latest.requests,
            "routes": None if latest is None else len(latest.routes)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1]), float(sys.argv[2])))))
