"""Samples and windows: rates and latency quantiles computed from the exported metrics."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings, HistorySettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.sampling import Sample, SampleBuffer, Sampler, quantile


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def record(monitor: Monitor, route: str, status: int, seconds: float, times: int) -> None:
    series = monitor.collector.requests.series("GET", route, status)
    for _ in range(times):
        series.observe(seconds, seconds / 2, 0, 100)


def make() -> tuple[Monitor, Sampler, Clock]:
    monitor = build_monitor(MonitoringConfig(health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False)), CollectorRegistry())
    clock = Clock()
    return monitor, Sampler(monitor.scrape_registry, clock=clock), clock


def test_window_rates_ratios_and_quantiles() -> None:
    monitor, sampler, clock = make()
    buffer = SampleBuffer(retention_seconds=600)
    record(monitor, "/a", 200, 0.02, 10)
    buffer.add(sampler.take())
    clock.now += 60
    record(monitor, "/a", 200, 0.02, 90)   # 90 fast successes
    record(monitor, "/b", 500, 2.0, 10)    # 10 slow errors
    record(monitor, "/b", 404, 0.01, 5)
    buffer.add(sampler.take())
    window = buffer.window(300)
    assert window is not None
    assert window.increase("requests") == 105
    assert window.rate("requests") == pytest.approx(105 / 60)
    assert window.ratio("errors", "requests") == pytest.approx(10 / 105)
    assert window.increase("client_errors") == 5
    assert window.ratio("duration_sum", "duration_count") == pytest.approx(
        (90 * 0.02 + 10 * 2.0 + 5 * 0.01) / 105)
    # p50 lies in the (0.01, 0.025] bucket; p99 in (1, 2.5]
    p50 = window.latency_quantile(0.5)
    p99 = window.latency_quantile(0.99)
    assert p50 is not None and 0.01 < p50 <= 0.025
    assert p99 is not None and 1.0 < p99 <= 2.5
    assert window.route_increase("GET /b", "errors") == 10
    slow = window.latency_quantile(0.5, route="GET /b")
    assert slow is not None and slow > 1.0


def test_counter_reset_counts_from_zero() -> None:
    start = Sample(time=0, requests=500)
    end = Sample(time=10, requests=20)  # a worker restarted
    buffer = SampleBuffer(retention_seconds=60)
    buffer.add(start)
    buffer.add(end)
    window = buffer.window(60)
    assert window is not None and window.increase("requests") == 20


def test_window_needs_two_samples_and_respects_its_length() -> None:
    buffer = SampleBuffer(retention_seconds=10_000)
    assert buffer.window(60) is None
    for t in range(0, 1000, 10):
        buffer.add(Sample(time=float(t), requests=float(t)))
    window = buffer.window(60)
    assert window is not None
    assert (window.start.time, window.end.time) == (930.0, 990.0)
    assert window.increase("requests") == 60


def test_buffer_is_bounded_and_keeps_routes_only_on_the_newest() -> None:
    buffer = SampleBuffer(retention_seconds=100)
    for t in range(50):
        sample = Sample(time=float(t * 10))
        sample.routes["GET /x"] = object()  # type: ignore[assignment]
        buffer.add(sample)
    samples = list(buffer)
    assert samples[0].time >= samples[-1].time - 100
    assert [bool(s.routes) for s in samples][-3:] == [False, True, True]


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.5), (0.25, 0.25), (1.0, 1.0)])
def test_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    buckets: Any = ((1.0, 100.0), (float("inf"), 100.0))
    assert quantile(q, buckets) == pytest.approx(expected)


def test_quantile_in_the_inf_bucket_answers_the_highest_bound() -> None:
    assert quantile(0.99, ((1.0, 1.0), (float("inf"), 100.0))) == 1.0
    assert quantile(0.5, ()) is None
    assert quantile(0.5, ((1.0, 0.0), (float("inf"), 0.0))) is None


async def test_monitor_samples_in_the_background() -> None:
    monitor = build_monitor(MonitoringConfig(health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False), history=HistorySettings(sample_interval_seconds=0.01)), CollectorRegistry())
    import asyncio

    async with monitor.running():
        await asyncio.sleep(0.1)
    assert len(monitor.samples) >= 3


def test_direct_read_of_the_store_equals_the_registry_walk() -> None:
    monitor = build_monitor(MonitoringConfig(health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False)), CollectorRegistry())
    clock = Clock()
    record(monitor, "/a", 200, 0.02, 10)
    record(monitor, "/a", 503, 3.0, 2)
    record(monitor, "/b", 404, 0.3, 7)
    monitor.collector.database.record("q", 0.01, ok=False)
    monitor.collector.users.login_failed("bad_credentials")
    monitor.collector.requests.in_progress["GET"].add(3)
    walked = Sampler(monitor.scrape_registry, clock=clock).take()
    direct = Sampler(monitor.scrape_registry, clock=clock, requests=monitor.collector.requests,
                     collectors=monitor.collector.sampled_collectors).take()
    assert direct == walked
    assert direct.requests == 19 and direct.errors == 2 and direct.in_progress == 3
    assert direct.db_errors == 1 and direct.login_failures == 1
    monitor.collector.requests.in_progress["GET"].add(-3)
