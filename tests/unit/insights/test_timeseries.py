"""History: points derived from consecutive samples, bounded by retention, and its memory."""

from __future__ import annotations

import gc
import math
import tracemalloc

import pytest
from prometheus_client import CollectorRegistry
from support import Clock

from asgi_monitor import ConfigError, MonitoringConfig, build_monitor
from asgi_monitor.build import sampler_of
from asgi_monitor.config import HealthSettings, HistorySettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.sampling.samples import RouteTotals, Sample
from asgi_monitor.timeseries import History


def make(**config: object) -> tuple[Monitor, Clock]:
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False),
            system=SystemSettings(metrics=False),
            **config),
        CollectorRegistry())
    clock = Clock(1_000_000.0)
    monitor.sampler = sampler_of(monitor.collector, clock=clock, monotonic=clock)
    return monitor, clock


def record(monitor: Monitor, route: str, status: int, seconds: float, times: int) -> None:
    series = monitor.collector.requests.series("GET", route, status, "http")
    for _ in range(times):
        series.observe(seconds, seconds / 2, 0, 100)


def test_each_sample_after_the_first_adds_a_point_of_the_interval() -> None:
    monitor, clock = make()
    monitor.take_sample()
    assert len(monitor.history) == 0  # one sample is no interval yet
    clock.advance(10)
    record(monitor, "/fast", 200, 0.02, 90)
    record(monitor, "/slow", 500, 2.0, 10)
    monitor.take_sample()
    point = monitor.history.latest()
    assert point is not None
    assert point.seconds == 10
    assert point.requests == 100 and point.errors == 10
    assert point.request_rate == pytest.approx(10.0)
    assert point.error_ratio == pytest.approx(0.1)
    assert point.p50 is not None and 0.01 < point.p50 <= 0.025
    assert point.p99 is not None and 1.0 < point.p99 <= 2.5
    assert [r.route for r in point.routes] == ["GET /fast", "GET /slow"]  # busiest first
    slow = point.routes[1]
    assert slow.requests == 10 and slow.errors == 10
    assert slow.p95 is not None and 1.0 < slow.p95 <= 2.5
    # The next interval counts only its own requests.
    clock.advance(10)
    record(monitor, "/fast", 200, 0.02, 5)
    monitor.take_sample()
    point = monitor.history.latest()
    assert point is not None and point.requests == 5 and point.errors == 0
    assert [r.route for r in point.routes] == ["GET /fast"]


def test_an_idle_interval_has_no_latency_rather_than_zero() -> None:
    monitor, clock = make()
    monitor.take_sample()
    clock.advance(5)
    monitor.take_sample()
    point = monitor.history.latest()
    assert point is not None
    assert point.requests == 0 and point.p95 is None and point.error_ratio is None
    assert point.to_dict()["p95_ms"] is None


def test_only_the_busiest_routes_are_kept_per_point() -> None:
    monitor, clock = make(history=HistorySettings(top_routes=3))
    monitor.take_sample()
    clock.advance(5)
    for i in range(10):
        record(monitor, f"/r{i}", 200, 0.01, i + 1)
    monitor.take_sample()
    point = monitor.history.latest()
    assert point is not None
    assert [r.route for r in point.routes] == ["GET /r9", "GET /r8", "GET /r7"]
    assert point.requests == sum(range(1, 11))  # app-wide totals still count every route


def test_retention_bounds_the_number_of_points() -> None:
    monitor, clock = make(history=HistorySettings(retention_seconds=60, sample_interval_seconds=5))
    assert monitor.history.max_points == 13
    for _ in range(50):
        clock.advance(5)
        monitor.take_sample()
    points = monitor.history.points()
    assert len(points) == 13
    assert points[-1].time - points[0].time == 60


def test_points_since_and_columns() -> None:
    monitor, clock = make()
    for _ in range(4):
        clock.advance(5)
        record(monitor, "/a", 200, 0.05, 2)
        monitor.take_sample()
    times = [p.time for p in monitor.history]
    assert [p.time for p in monitor.history.points(since=times[1])] == times[2:]
    assert [p.time for p in monitor.history.points(seconds=5)] == times[-1:]
    columns = monitor.history.columns(since=times[0])
    assert columns["time"] == times[1:]
    assert columns["request_rate"] == [pytest.approx(0.4)] * 2
    assert all(v is not None and 25 < v <= 50 for v in columns["p50_ms"])


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("retention_seconds", 0, "MONITORING_HISTORY_RETENTION"),
        ("top_routes", 0, "MONITORING_HISTORY_TOP_ROUTES"),
        ("dashboard_refresh_seconds", -1, "MONITORING_DASHBOARD_REFRESH"),
    ],
)
def test_history_settings_are_validated(field: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        HistorySettings(**{field: value})  # type: ignore[arg-type]


def test_history_settings_from_the_environment() -> None:
    config = MonitoringConfig.from_env({"MONITORING_HISTORY_RETENTION": "7200",
                                        "MONITORING_HISTORY_TOP_ROUTES": "50",
                                        "MONITORING_DASHBOARD_REFRESH": "2.5"})
    assert (config.history.retention_seconds, config.history.top_routes,
            config.history.dashboard_refresh_seconds) == (7200, 50, 2.5)
    defaults = MonitoringConfig()
    assert (
        defaults.history.retention_seconds,
        defaults.history.top_routes,
        defaults.history.dashboard_refresh_seconds,
    ) == (3600, 20, 5)


class SyntheticSampler:
    """Builds what the real Sampler builds for 200 busy routes (fast: tracemalloc slows the
    real registry walk to minutes). Cumulative totals and 15 buckets per route, as exported."""

    BOUNDS = (*MonitoringConfig().metrics.duration_buckets, math.inf)

    def __init__(self, clock: Clock, routes: int) -> None:
        self.clock = clock
        self.routes = [f"GET /api/resource{i}/{{id}}" for i in range(routes)]
        self.step = 0

    def take(self) -> Sample:
        self.step += 1
        n = self.step
        sample = Sample(time=self.clock(), requests=400.0 * n, errors=30.0 * n,
                        duration_sum=2.0 * n, duration_count=400.0 * n, in_progress=3,
                        cpu_percent=12.5, memory_percent=40.0, disk_percent={"/": 50.0},
                        process_rss_bytes=80e6)
        for i, key in enumerate(self.routes):
            count = float(n * (1 + i % 3))
            buckets = tuple((bound, count * min(1.0, (j + 1) / 8))
                            for j, bound in enumerate(self.BOUNDS))
            errors = float(n * (i % 2))
            sample.routes[key] = RouteTotals(count, errors, count * 0.01, count, buckets,
                                             {200: count - errors, 500: errors})
        sample.buckets = tuple((bound, 400.0 * n * min(1.0, (j + 1) / 8))
                               for j, bound in enumerate(self.BOUNDS))
        return sample


def test_an_hour_of_history_with_200_routes_stays_under_10_mb() -> None:
    """docs/dashboard.md's figure: an hour at a 5 s interval, 200 routes all busy, default top 20.

    Measures what the sample buffer and the history hold at the end (tracemalloc), through
    Monitor.take_sample, so per-sample and per-point costs are both counted.
    """
    monitor, clock = make(
        history=HistorySettings(sample_interval_seconds=5, retention_seconds=3600))
    monitor.sampler = SyntheticSampler(clock, routes=200)  # type: ignore[assignment]
    monitor.take_sample()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(721 + 10):  # more than an hour: the deques are full and rolling
            clock.advance(5)
            monitor.take_sample()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(monitor.history) == monitor.history.max_points == 721
    assert all(len(p.routes) == 20 for p in monitor.history)
    print(f"\nhistory + sample buffer, 1 h at 5 s, 200 routes: {held / 1e6:.2f} MB")
    assert held < 10_000_000


def test_history_without_a_monitor() -> None:
    history = History(retention_seconds=30, interval=10)
    assert history.max_points == 4
    assert history.latest() is None
    assert history.columns()["time"] == []


def test_alert_loop_samples_in_between_do_not_split_or_corrupt_points() -> None:
    monitor, clock = make(history=HistorySettings(sample_interval_seconds=30))
    monitor.take_sample()
    for _ in range(3):  # the alert loop samples every 10 s; those carry no history point
        clock.advance(10)
        record(monitor, "/busy", 200, 0.05, 10)
        monitor.take_sample(history=False)
    clock.advance(0.001)
    monitor.take_sample()
    [point] = monitor.history.points()
    assert point.requests == 30
    assert point.seconds == pytest.approx(30.001)
    # The start sample kept its per-route totals although the buffer stripped them.
    [route] = point.routes
    assert route.requests == 30
