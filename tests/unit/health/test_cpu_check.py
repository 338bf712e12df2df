"""The cpu check's first reading measures: psutil's first ``cpu_percent(None)`` answers 0.0,
so a check built on it could never see a saturated CPU at start (``asgi-monitor check`` as a
Docker HEALTHCHECK, ``/api/health/cpu`` just after a deploy)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from asgi_monitor.health import HealthStatus, cpu_check

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
