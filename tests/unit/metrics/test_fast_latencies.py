"""Latencies the default duration buckets resolve: the dashboard's p50/p95/p99 stay near the
durations recorded, from a fraction of a millisecond to a second.

The durations are given to the store, so the test knows them exactly; how close the middleware's
own measurement of a handler's time comes is a timing, judged in benchmarks/latency_quantiles.py.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support import Clock

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.build import sampler_of
from asgi_monitor.config import (
    DEFAULT_DURATION_BUCKETS,
    AlertSettings,
    HealthSettings,
    MetricsSettings,
    SystemSettings,
)
from asgi_monitor.monitor import Monitor

# Endpoints of known typical latency, in seconds.
LATENCIES = (0.0003, 0.003, 0.04, 0.4)
# A web endpoint's latencies spread around their median; p95/p50 = exp(1.645 * 0.3) = 1.64.
SPREAD = 0.3


def monitor(**metrics: Any) -> tuple[Monitor, Clock]:
    built = build_monitor(
        MonitoringConfig(metrics=MetricsSettings(**metrics),
                         health=HealthSettings(default_checks=False),
                         alerts=AlertSettings(default_rules=False),
                         system=SystemSettings(metrics=False)),
        CollectorRegistry())
    clock = Clock(1_000_000.0)
    built.sampler = sampler_of(built.collector, clock=clock, monotonic=clock)
    return built, clock


def latencies(median: float, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [median * math.exp(rng.gauss(0.0, SPREAD)) for _ in range(count)]


def bucket_of(value: float, bounds: tuple[float, ...]) -> tuple[float, float]:
    """The (lower, upper] bounds of the bucket ``value`` is counted in."""
    lower = 0.0
    for upper in bounds:
        if value <= upper:
            return lower, upper
        lower = upper
    raise AssertionError(f"{value} is over the last bound")


def test_the_defaults_start_at_a_quarter_millisecond() -> None:
    assert DEFAULT_DURATION_BUCKETS[:5] == (0.00025, 0.0005, 0.001, 0.0025, 0.005)
    assert DEFAULT_DURATION_BUCKETS[-1] == 10.0
    assert list(DEFAULT_DURATION_BUCKETS) == sorted(set(DEFAULT_DURATION_BUCKETS))


@pytest.mark.parametrize("median", LATENCIES)
def test_dashboard_quantiles_fall_in_the_bucket_of_the_recorded_ones(median: float) -> None:
    """The durations are the test's own, recorded as the middleware records them: each quantile
    the dashboard shows is the recorded one up to where in its bucket it lies, the error of
    interpolating inside a bucket (histogram_quantile's), and nothing more."""
    built, clock = monitor()
    built.take_sample()
    values = latencies(median, 1000, seed=int(median * 1e6))
    store = built.collector.requests
    for value in values:
        store.record("GET", "/endpoint", 200, "http", value, value, 0, 100)
    clock.advance(10)
    built.take_sample()
    point = built.history.latest()
    assert point is not None
    ordered = sorted(values)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        shown = getattr(point, name)
        # The value of rank q * N, the one histogram_quantile's interpolation stands for.
        recorded = ordered[math.ceil(q * len(ordered)) - 1]
        lower, upper = bucket_of(recorded, DEFAULT_DURATION_BUCKETS)
        assert shown is not None and lower <= shown <= upper, (name, recorded, shown)
    # And for these spreads (fixed seeds), the median within a quarter of the recorded one.
    assert point.p50 == pytest.approx(ordered[len(ordered) // 2 - 1], rel=0.25)
    assert point.routes[0].p95 == point.p95


def test_custom_buckets_are_kept() -> None:
    built, _ = monitor(duration_buckets=(0.1, 1.0))
    built.collector.requests.series("GET", "/endpoint", 200, "http").observe(0.0003, 0.0003, 0, 1)
    bounds = [le for le, _ in built.collector.requests.snapshot().latency[0].buckets]
    assert bounds == [0.1, 1.0, math.inf]
