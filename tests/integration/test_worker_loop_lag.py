"""Several workers' metric files, thousands of series each: the sampler and the alert loop read
them without stalling the event loop of the process that serves requests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, values
from support import PACKAGE_ROOT, SUPPORT

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import AlertSettings, HistorySettings, MetricsSettings, SystemSettings

pytestmark = pytest.mark.integration

WORKERS, SERIES = 4, 2000
# The budget: no event-loop stall over this while the merged files are read.
MAX_LAG_SECONDS = 0.050


@pytest.fixture
def worker_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PROMETHEUS_MULTIPROC_DIR with WORKERS live worker processes' files, SERIES series each."""
    # Building a monitor in multiprocess mode may switch prometheus_client's value storage for
    # this process; put it back afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    directory = tmp_path / "multiproc"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((PACKAGE_ROOT, str(SUPPORT.parent)))}
    workers = [subprocess.Popen([sys.executable, str(SUPPORT / "series_worker.py"), str(SERIES)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
               for _ in range(WORKERS)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n", "a worker failed to write its series"
        yield directory
    finally:
        for worker in workers:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.close()
            worker.stdout.close()
            worker.wait(timeout=30)


@pytest.mark.timeout(240)
def test_reading_four_workers_files_never_stalls_the_event_loop(worker_files: Path) -> None:
    monitor = build_monitor(MonitoringConfig(
        metrics=MetricsSettings(max_series=2 * SERIES),
        history=HistorySettings(sample_interval_seconds=0.2),
        alerts=AlertSettings(check_interval_seconds=0.2),
        system=SystemSettings(metrics=False)), CollectorRegistry())
    assert monitor.collector.multiprocess_dir == str(worker_files)
    assert monitor.sampler.off_loop  # the merged reads go to a worker thread
    reads = 2  # of each loop, at least

    async def measure() -> list[float]:
        lags: list[float] = []
        async with monitor.running():
            deadline = time.monotonic() + 120
            # Until both loops have read the files a few times: the sampler's reads make
            # history points, the alert loop's make samples without one.
            while (len(monitor.history) < reads
                   or len(monitor.samples) - len(monitor.history) < reads):
                assert time.monotonic() < deadline, "the sampler or the alert loop did not run"
                asked = 0.005
                started = time.perf_counter()
                await asyncio.sleep(asked)
                lags.append(time.perf_counter() - started - asked)
                if lags[-1] >= MAX_LAG_SECONDS:
                    break  # over budget: the verdict is in
        return lags

    lags = asyncio.run(measure())
    worst = max(lags)
    print(f"\nevent-loop lag over {len(lags)} probes: max {worst * 1000:.1f} ms")
    assert worst < MAX_LAG_SECONDS
    # The reads were real: every worker's series, merged.
    latest = monitor.samples.latest()
    assert latest is not None
    assert latest.requests == WORKERS * SERIES
    assert len(latest.routes) == SERIES
