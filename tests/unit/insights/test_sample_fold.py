"""The sampler's fold of the request table: what a sample says, worked out here from the
requests themselves (not from another fold), for one process and for several workers' files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.sampling.inputs import (
    CacheSnapshot,
    DatabaseSnapshot,
    RequestSnapshot,
    SampleInputs,
    UserSnapshot,
)
from asgi_monitor.sampling.merged import MergedReader
from asgi_monitor.sampling.samples import Sample, Sampler
from asgi_monitor.store.merge import MergedFiles
from asgi_monitor.store.multiprocess import (
    MultiprocessRequestMetrics,
    NativeMultiprocessRequestMetrics,
)
from asgi_monitor.store.settings import StoreSettings
from asgi_monitor.store.single import OVERFLOW, NativeRequestMetrics, RequestMetrics

BOUNDS = (0.01, 0.1, 1.0)
Request = tuple[str, str, int, str, float]  # method, route, status, scheme, seconds

# Several methods, statuses (2xx, 4xx, 5xx) and schemes; /a answers three statuses over two
# schemes, /c one; durations on a bound, between bounds and past the last one.
REQUESTS: list[Request] = [
    ("GET", "/a", 200, "http", 0.005), ("GET", "/a", 200, "https", 0.1),
    ("GET", "/a", 404, "http", 0.05), ("GET", "/a", 500, "http", 2.0),
    ("POST", "/a", 201, "http", 0.01), ("GET", "/b", 503, "https", 0.5),
    ("OTHER", "/c", 200, "http", 0.0), ("GET", "/a", 200, "http", 0.02),
]
# Past a cap of 6 label sets: counted under <overflow>, by method and status.
OVERFLOWED: list[Request] = [
    ("GET", "/d", 200, "http", 0.2), ("GET", "/e", 200, "http", 5.0),
    ("GET", "/f", 500, "http", 0.001), ("POST", "/g", 200, "http", 0.3),
]


def expected(requests: list[Request], cap: int) -> dict[str, object]:
    """The sample's request figures, by the documented rules: the first ``cap`` (method, route,
    status) label sets keep their route, later ones count under <overflow>; a route's figures
    sum its statuses and schemes; buckets are cumulative, +Inf last."""
    kept: list[tuple[str, str, int]] = []
    routes: dict[str, dict[str, object]] = {}
    everything = [0.0] * (len(BOUNDS) + 1)
    total = {"requests": 0.0, "errors": 0.0, "client_errors": 0.0, "count": 0.0, "sum": 0.0}
    for method, route, status, _, seconds in requests:
        if (method, route, status) not in kept:
            if len(kept) < cap:
                kept.append((method, route, status))
            else:
                route = OVERFLOW
        name = f"{method} {route}"
        found = routes.setdefault(name, {"requests": 0.0, "errors": 0.0, "sum": 0.0,
                                         "per_bucket": [0.0] * (len(BOUNDS) + 1),
                                         "statuses": {}})
        bucket = next((i for i, bound in enumerate(BOUNDS) if seconds <= bound), len(BOUNDS))
        found["requests"] += 1  # type: ignore[operator]
        found["sum"] += seconds  # type: ignore[operator]
        found["per_bucket"][bucket] += 1  # type: ignore[index]
        statuses = found["statuses"]
        statuses[status] = statuses.get(status, 0.0) + 1  # type: ignore[union-attr,attr-defined]
        everything[bucket] += 1
        total["requests"] += 1
        total["count"] += 1
        total["sum"] += seconds
        if status >= 500:
            found["errors"] += 1  # type: ignore[operator]
            total["errors"] += 1
        elif status >= 400:
            total["client_errors"] += 1
    return {"routes": routes, "buckets": cumulative(everything), **total}


def cumulative(per_bucket: list[float]) -> tuple[tuple[float, float], ...]:
    running, out = 0.0, []
    for bound, count in zip((*BOUNDS, float("inf")), per_bucket, strict=True):
        running += count
        out.append((bound, running))
    return tuple(out)


def check(sample: Sample, want: dict[str, object]) -> None:
    assert sample.requests == want["requests"]
    assert sample.errors == want["errors"]
    assert sample.client_errors == want["client_errors"]
    assert sample.duration_count == want["count"]
    assert sample.duration_sum == pytest.approx(want["sum"])
    assert sample.buckets == want["buckets"]
    routes = want["routes"]
    assert isinstance(routes, dict)
    assert set(sample.routes) == set(routes)
    for name, route in routes.items():
        got = sample.routes[name]
        assert (got.requests, got.errors, got.duration_count) == (
            route["requests"], route["errors"], route["requests"]), name
        assert got.duration_sum == pytest.approx(route["sum"]), name
        assert got.statuses == route["statuses"], name
        assert got.buckets == cumulative(route["per_bucket"]), name
        # Floats, as a page or the JSON API shows them.
        assert all(type(count) is float for _, count in got.buckets), name


def settings(cap: int) -> StoreSettings:
    return StoreSettings(duration_buckets=BOUNDS, size_buckets=(100.0,), max_series=cap)


def sampler_of(read: Callable[[], RequestSnapshot]) -> Sampler:
    return Sampler(lambda: SampleInputs(read(), DatabaseSnapshot(), CacheSnapshot(),
                                        UserSnapshot()))


def record(store: RequestMetrics | MultiprocessRequestMetrics, requests: list[Request]) -> None:
    for method, route, status, scheme, seconds in requests:
        store.record(method, route, status, scheme, seconds, seconds / 2, 10, 100)


def test_one_process_sample_from_the_store_table() -> None:
    store = RequestMetrics(settings(cap=6))
    record(store, REQUESTS + OVERFLOWED)
    assert ("GET", OVERFLOW, 200, "http") in store.snapshot().table.keys
    check(sampler_of(store.snapshot).take(), expected(REQUESTS + OVERFLOWED, cap=6))


def test_an_empty_store_gives_an_empty_sample() -> None:
    sample = sampler_of(RequestMetrics(settings(cap=6)).snapshot).take()
    assert (sample.requests, sample.duration_count, sample.buckets, sample.routes) == (
        0, 0, (), {})


def test_a_route_changed_since_the_last_sample_is_folded_again() -> None:
    """Unchanged routes keep the buckets made for the previous sample: every other one is
    folded from the table as it is now."""
    store = RequestMetrics(settings(cap=100))
    sampler = sampler_of(store.snapshot)
    record(store, REQUESTS)
    first = sampler.take()
    later: list[Request] = [("GET", "/a", 404, "https", 0.5), ("GET", "/b", 503, "https", 0.001),
                            ("GET", "/new", 200, "http", 0.05)]
    record(store, later)
    second = sampler.take()
    check(second, expected(REQUESTS + later, cap=100))
    assert second.routes["OTHER /c"].buckets is first.routes["OTHER /c"].buckets
    assert second.routes["GET /a"].buckets != first.routes["GET /a"].buckets
    check(sampler.take(), expected(REQUESTS + later, cap=100))


def test_several_workers_sample_the_merged_table(tmp_path: Path) -> None:
    """Two workers' files, merged: the same figures as one process that served both."""
    workers = [MultiprocessRequestMetrics(str(tmp_path), settings(cap=100)) for _ in range(2)]
    record(workers[0], REQUESTS[:5])
    record(workers[1], REQUESTS[5:] + REQUESTS[:2])
    merged = MergedFiles(str(tmp_path), settings(cap=100), compact=False)
    sampler = sampler_of(lambda: merged.sample()[0])
    check(sampler.take(), expected(REQUESTS + REQUESTS[:2], cap=100))
    record(workers[0], OVERFLOWED[:1])
    check(sampler.take(), expected(REQUESTS + REQUESTS[:2] + OVERFLOWED[:1], cap=100))


def test_the_reader_of_exposed_families_gives_the_same_sample() -> None:
    """Exposed families keep histograms per route and counts per status: read back by name,
    they fold to the same figures as the store's table."""
    monitor = build_monitor(
        MonitoringConfig(health=HealthSettings(default_checks=False),
                         system=SystemSettings(metrics=False),
                         metrics=MetricsSettings(duration_buckets=BOUNDS, max_series=6)),
        CollectorRegistry())
    record(monitor.collector.requests, REQUESTS + OVERFLOWED)  # type: ignore[arg-type]
    reader = MergedReader(prefix="", declared={f.name for f in monitor.registry.collect()})
    families = Sampler(lambda: reader.read(monitor.registry.collect())).take()
    check(families, expected(REQUESTS + OVERFLOWED, cap=6))


def test_the_snapshot_still_lists_series_and_latency() -> None:
    """What the OTLP export reads: per series its count and cumulative duration buckets."""
    store = RequestMetrics(settings(cap=100))
    record(store, REQUESTS[:2])
    snapshot = store.snapshot()
    assert snapshot.series == (("GET", "/a", 200, 1.0), ("GET", "/a", 200, 1.0))
    assert [(h.scheme, h.count, h.total, h.buckets) for h in snapshot.latency] == [
        ("http", 1.0, 0.005, ((0.01, 1.0), (0.1, 1.0), (1.0, 1.0), (float("inf"), 1.0))),
        ("https", 1.0, 0.1, ((0.01, 0.0), (0.1, 1.0), (1.0, 1.0), (float("inf"), 1.0)))]


def native_count(native: object) -> float:
    assert isinstance(native, tuple)
    _, counts, zero = native
    return float(sum(counts.values()) + zero)


def test_native_histograms_ride_along_the_table(tmp_path: Path) -> None:
    """With native histograms on, each series' native buckets are in the table beside its
    block; the sample's and each route's native totals count every request once. Off, the
    table has none and the sample neither."""
    on = StoreSettings(duration_buckets=BOUNDS, size_buckets=(100.0,), max_series=100,
                       native_histograms=True)
    stores = [NativeRequestMetrics(on),
              NativeMultiprocessRequestMetrics(str(tmp_path), on)]
    merged = MergedFiles(str(tmp_path), on, compact=False)
    reads: list[Callable[[], RequestSnapshot]] = [stores[0].snapshot,
                                                  lambda: merged.sample()[0]]
    for store, read in zip(stores, reads, strict=True):
        record(store, REQUESTS)
        table = read().table
        assert table.native is not None and len(table.native) == len(table.keys)
        sample = sampler_of(read).take()
        assert native_count(sample.native) == len(REQUESTS)
        for name, route in expected(REQUESTS, cap=100)["routes"].items():  # type: ignore[union-attr]
            assert native_count(sample.routes[name].native) == route["requests"], name
        assert [h.native for h in read().latency] == list(table.native)
    off = RequestMetrics(settings(cap=100))
    record(off, REQUESTS)
    assert off.snapshot().table.native is None
    sample = sampler_of(off.snapshot).take()
    assert sample.native is None
    assert all(route.native is None for route in sample.routes.values())


def test_request_labels_are_folded_per_label_values(tmp_path: Path) -> None:
    """Per (method, route, label values): the requests, 5xx, duration count and cumulative
    buckets of its series (every status and scheme), in one process and across workers."""
    labelled = StoreSettings(duration_buckets=BOUNDS, size_buckets=(100.0,), max_series=100,
                             label_names=("tenant",))
    tenants = ["a", "b", "a", "b", "a", "a", "b", "a"]
    want: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = {}
    per_bucket: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = {}
    for (method, route, status, _, seconds), tenant in zip(REQUESTS, tenants, strict=True):
        key = (method, route, (("tenant", tenant),))
        found = want.setdefault(key, [0.0, 0.0])
        found[0] += 1
        found[1] += status >= 500
        bucket = next((i for i, bound in enumerate(BOUNDS) if seconds <= bound), len(BOUNDS))
        per_bucket.setdefault(key, [0.0] * (len(BOUNDS) + 1))[bucket] += 1
    stores = [RequestMetrics(labelled), MultiprocessRequestMetrics(str(tmp_path), labelled)]
    merged = MergedFiles(str(tmp_path), labelled, compact=False)
    reads: list[Callable[[], RequestSnapshot]] = [stores[0].snapshot,
                                                  lambda: merged.sample()[0]]
    for store, read in zip(stores, reads, strict=True):
        for (method, route, status, scheme, seconds), tenant in zip(REQUESTS, tenants,
                                                                    strict=True):
            store.record_labelled(method, route, status, scheme, (tenant,), seconds,
                                  seconds / 2, 10, 100, None)
        sample = sampler_of(read).take()
        assert set(sample.labelled) == set(want)
        for key, (requests, errors) in want.items():
            got = sample.labelled[key]
            assert (got.requests, got.errors, got.duration_count) == (
                requests, errors, requests), key
            assert got.buckets == cumulative(per_bucket[key]), key
        # The route totals sum the label values.
        check(sample, expected(REQUESTS, cap=100))
        assert {h.labels for h in read().latency} == {(("tenant", "a"),), (("tenant", "b"),)}


def test_streams_are_copied_to_the_sample() -> None:
    store = RequestMetrics(settings(cap=100))
    store.record_stream("GET", "/events", 3.0)
    sample = sampler_of(store.snapshot).take()
    assert [(s.method, s.route, s.count) for s in sample.streams] == [("GET", "/events", 1.0)]
    assert sample.streams == store.snapshot().streams
