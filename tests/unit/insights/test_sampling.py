"""Samples and windows: rates and latency quantiles computed from the components' snapshots."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, values
from support import Clock

from asgi_monitor import MetricError, MonitoringConfig, build_monitor
from asgi_monitor.build import sampler_of
from asgi_monitor.config import (
    AlertSettings,
    HealthSettings,
    HistorySettings,
    MetricsSettings,
    SystemSettings,
)
from asgi_monitor.instrumentation import database
from asgi_monitor.monitor import Monitor
from asgi_monitor.sampling.inputs import SampleInputs, SystemSnapshot
from asgi_monitor.sampling.merged import READ_FAMILIES, MergedReader
from asgi_monitor.sampling.samples import Sample, SampleBuffer, Sampler, quantile, quantile_shown


def record(monitor: Monitor, route: str, status: int, seconds: float, times: int) -> None:
    series = monitor.collector.requests.series("GET", route, status, "http")
    for _ in range(times):
        series.observe(seconds, seconds / 2, 0, 100)


def make() -> tuple[Monitor, Sampler, Clock]:
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False)),
        CollectorRegistry())
    clock = Clock(1_000_000.0)
    return monitor, sampler_of(monitor.collector, clock=clock, monotonic=clock), clock


def test_window_rates_ratios_and_quantiles() -> None:
    monitor, sampler, clock = make()
    buffer = SampleBuffer(retention_seconds=600)
    record(monitor, "/a", 200, 0.02, 10)
    buffer.add(sampler.take())
    clock.advance(60)
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
    config = MonitoringConfig(
                 health=HealthSettings(default_checks=False),
                 system=SystemSettings(metrics=False),
                 history=HistorySettings(sample_interval_seconds=0.01))
    monitor = build_monitor(config, CollectorRegistry())
    import asyncio

    async with monitor.running():
        await asyncio.sleep(0.1)
    assert len(monitor.samples) >= 3


def activity(monitor: Monitor) -> None:
    record(monitor, "/a", 200, 0.02, 10)
    record(monitor, "/a", 503, 3.0, 2)
    record(monitor, "/b", 404, 0.3, 7)
    monitor.collector.database.record("q", 0.01, ok=False)
    monitor.collector.database.record("q", 0.01)
    monitor.collector.users.login_failed("bad_credentials")
    monitor.collector.users.login_succeeded()
    monitor.collector.cache.hit("c")
    monitor.collector.cache.miss("c")
    monitor.collector.cache.miss("d")


def check(sample: Sample) -> None:
    assert (sample.requests, sample.errors, sample.client_errors) == (19, 2, 7)
    assert sample.duration_count == 19
    assert sample.duration_sum == pytest.approx(10 * 0.02 + 2 * 3.0 + 7 * 0.3)
    assert sample.routes["GET /a"].requests == 12 and sample.routes["GET /a"].errors == 2
    assert (sample.db_queries, sample.db_errors) == (2, 1)
    assert (sample.logins, sample.login_failures) == (2, 1)
    assert (sample.cache_hits, sample.cache_misses) == (1, 2)


def test_component_snapshots_equal_the_merged_reader_over_the_same_families() -> None:
    """The single-process path (each component's snapshot()) and the reader of families by name
    (what several workers use) agree on the same metrics."""
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False)),
        CollectorRegistry())
    clock = Clock(1_000_000.0)
    activity(monitor)
    monitor.collector.requests.in_progress["GET"].add(3)
    direct = sampler_of(monitor.collector, clock=clock, monotonic=clock).take()
    reader = MergedReader(prefix="",
                          declared={f.name for f in monitor.registry.collect()})
    merged = Sampler(lambda: reader.read(monitor.registry.collect()), clock=clock,
                     monotonic=clock).take()
    assert direct == merged
    check(direct)
    assert direct.in_progress == 3
    monitor.collector.requests.in_progress["GET"].add(-3)


async def test_an_off_loop_read_runs_in_a_thread_and_gives_the_same_sample() -> None:
    """What several workers use: the merged read in a worker thread, this process' system
    resources on the loop's thread; the sample equals a read on the loop."""
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False)),
        CollectorRegistry())
    activity(monitor)
    reader = MergedReader(prefix="",
                          declared={f.name for f in monitor.registry.collect()})
    threads: dict[str, int] = {}

    def read() -> SampleInputs:
        threads["read"] = threading.get_ident()
        return reader.read(monitor.registry.collect())

    def system() -> SystemSnapshot:
        threads["system"] = threading.get_ident()
        return SystemSnapshot(cpu_percent=5.0, disk_percent=(("/", 40.0),))

    clock = Clock(1_000_000.0)
    sampler = Sampler(read, clock=clock, monotonic=clock, system=system, off_loop=True)
    off_loop = await sampler.take_async()
    assert threads["read"] != threading.get_ident() == threads["system"]
    on_loop = sampler.take()
    assert threads["read"] == threading.get_ident()
    assert off_loop == on_loop
    check(off_loop)
    assert (off_loop.cpu_percent, off_loop.disk_percent) == (5.0, {"/": 40.0})
    assert sampler.read().system == system()


async def test_the_sampler_and_the_alert_loop_read_off_the_loop() -> None:
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False),
            history=HistorySettings(sample_interval_seconds=0.05),
            alerts=AlertSettings(check_interval_seconds=0.05)),
        CollectorRegistry())
    reader = MergedReader(prefix="",
                          declared={f.name for f in monitor.registry.collect()})
    threads: list[int] = []

    def read() -> SampleInputs:
        threads.append(threading.get_ident())
        return reader.read(monitor.registry.collect())

    monitor.sampler = Sampler(read, off_loop=True)
    async with monitor.running():
        for _ in range(200):
            # The sampler's reads make history points, the alert loop's samples without one.
            if len(monitor.history) >= 2 and len(monitor.samples) > len(monitor.history) + 1:
                break
            await asyncio.sleep(0.02)
    assert len(monitor.history) >= 2 and len(monitor.samples) > len(monitor.history) + 1
    assert threading.get_ident() not in threads


def test_system_snapshot_reaches_the_sample() -> None:
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False), system=SystemSettings(disk_paths=("/",))),
        CollectorRegistry())
    sample = sampler_of(monitor.collector).take()
    assert sample.memory_percent is not None and 0 < sample.memory_percent <= 100
    assert set(sample.disk_percent) == {"/"}
    assert sample.process_rss_bytes is not None and sample.process_rss_bytes > 0


@pytest.fixture
def multiproc_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # multiprocess_dir() switches prometheus_client's value storage; put it back afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_several_workers_sample_the_merged_files(multiproc_dir: Path) -> None:
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False),
            system=SystemSettings(metrics=False),
            metrics=MetricsSettings(namespace="shop")),
        CollectorRegistry())
    assert monitor.collector.multiprocess_dir == str(multiproc_dir)
    # Declared families with no series yet (no request, no query in any worker) are zero.
    empty = monitor.sampler.take()
    assert (empty.requests, empty.db_queries, empty.cache_hits, empty.logins) == (0, 0, 0, 0)
    activity(monitor)
    check(monitor.sampler.take())


def test_a_renamed_family_fails_loudly_instead_of_reading_zero(
        multiproc_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric declared under another name than the reader reads: before, the rule's input
    silently stayed 0; now the monitor refuses to start, naming the family."""
    monkeypatch.setattr(database, "DB_QUERIES", "db_statements")  # the declaration drifts
    with pytest.raises(MetricError, match="'db_queries'"):
        build_monitor(
            MonitoringConfig(
                health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False)),
            CollectorRegistry())


def test_a_renamed_family_does_not_matter_to_a_single_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One process reads the component's typed snapshot: no family name is involved."""
    monkeypatch.setattr(database, "DB_QUERIES", "db_statements")
    monitor = build_monitor(
        MonitoringConfig(
            health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False)),
        CollectorRegistry())
    monitor.collector.database.record("q", 0.01, ok=False)
    assert monitor.registry.get_sample_value(
        "db_statements_total", {"operation": "q", "status": "error"}) == 1
    sample = monitor.sampler.take()
    assert (sample.db_queries, sample.db_errors) == (1, 1)


def test_the_reader_names_every_family_it_misses() -> None:
    declared = set(READ_FAMILIES) - {"user_logins", "http_requests"}
    with pytest.raises(MetricError, match=r"\['http_requests', 'user_logins'\]"):
        MergedReader(prefix="", declared=declared)
    MergedReader(prefix="app_", declared={f"app_{name}" for name in READ_FAMILIES})


SIZES = ((100.0, 0.0), (1000.0, 0.0), (math.inf, 0.0))


def sizes(*counts: float) -> tuple[tuple[float, float], ...]:
    """Cumulative (bound, count) pairs of the 100 / 1000 / +Inf buckets from per-bucket counts."""
    out, running = [], 0.0
    for (bound, _), count in zip(SIZES, counts, strict=True):
        running += count
        out.append((bound, running))
    return tuple(out)


@pytest.mark.parametrize(("counts", "total", "q", "expected"), [
    # 20 bodies of 4 bytes: interpolation says 95 B; the first bucket proves only <= 100 B.
    ((20, 0, 0), 80.0, 0.95, (100.0, "le")),
    ((20, 0, 0), None, 0.5, (100.0, "le")),
    # 20 GETs without a body: a sum of 0 proves every value was 0.
    ((20, 0, 0), 0.0, 0.95, (0.0, None)),
    # 100 bodies of 101 B: interpolating p95 to 955 B needs a sum of at least 14,275 B.
    ((0, 100, 0), 10100.0, 0.95, (1000.0, "le")),
    # Spread over the bucket (sum allows it): the interpolation stands.
    ((0, 100, 0), 55000.0, 0.5, (550.0, None)),
    # Past the last finite bound: above it, not equal to it.
    ((0, 1, 99), 10**7, 0.95, (1000.0, "gt")),
])
def test_a_quantile_is_never_shown_above_what_the_buckets_and_sum_prove(
        counts: tuple[float, ...], total: float | None, q: float,
        expected: tuple[float, str | None]) -> None:
    shown = quantile_shown(q, sizes(*counts), total)
    assert shown is not None
    assert shown[0] == pytest.approx(expected[0]) and shown[1] == expected[1]


def test_an_empty_histogram_has_no_quantile_to_show() -> None:
    assert quantile_shown(0.95, ()) is None
    assert quantile_shown(0.95, sizes(0, 0, 0), 0.0) is None
