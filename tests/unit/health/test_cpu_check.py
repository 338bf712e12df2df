"""The cpu check's first reading measures: psutil's first ``cpu_percent(None)`` answers 0.0,
so a check built on it could never see a saturated CPU at start (``asgi-monitor check`` as a
Docker HEALTHCHECK, ``/api/health/cpu`` just after a deploy)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from support import client

from asgi_monitor.config import SystemSettings
from asgi_monitor.health import HealthStatus, cpu_check
from asgi_monitor.monitor import Monitor

BURN = "while True: pass"


@pytest.fixture
def saturated() -> Iterator[None]:
    """One busy process per core, killed afterwards."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


async def test_the_first_run_sees_a_saturated_cpu(saturated: None) -> None:
    check = cpu_check(warning_percent=40, critical_percent=60)
    result = await check()
    assert result.observed_value is not None and result.observed_value > 60, result
    assert result.status is HealthStatus.CRITICAL
    # A second run at once has no reading old enough either: it measures again.
    again = await check()
    assert again.observed_value is not None and again.observed_value > 60, again


async def test_a_later_run_measures_since_the_previous_one() -> None:
    check = cpu_check(min_interval_seconds=0.05)
    first = await check()
    second = await check()
    for result in (first, second):
        assert result.observed_value is not None and 0 <= result.observed_value <= 100
        assert result.details["cores"] == os.cpu_count()


async def test_the_message_names_the_window_measured() -> None:
    check = cpu_check()  # the default first reading waits 0.25 s
    first = await check()
    assert re.fullmatch(r"CPU \d+\.\d% busy over the last 0\.25 s", first.message), first
    await asyncio.sleep(0.5)
    later = await check()  # since the first run's reading: at least the 0.5 s slept
    window = re.fullmatch(r"CPU \d+\.\d% busy over the last (\d+(?:\.\d+)?) s", later.message)
    assert window is not None, later
    assert float(window.group(1)) >= 0.5


async def test_api_health_cpu_at_start_sees_a_saturated_cpu(
    saturated: None, make_monitor: Callable[..., Monitor],
) -> None:
    monitor = make_monitor(system=SystemSettings(metrics=False, cpu_warning_percent=40,
                                                 cpu_critical_percent=60))
    async with monitor.running():
        for _ in range(200):  # the health loop's first run, just after start
            if monitor.health.result("cpu").observed_value is not None:
                break
            await asyncio.sleep(0.05)
        async with client(monitor.asgi_app()) as c:
            body = (await c.get("/api/health/cpu")).json()
    assert monitor.health.result("cpu").observed_value > 60  # type: ignore[operator]
    assert body["status"] == "critical", body
