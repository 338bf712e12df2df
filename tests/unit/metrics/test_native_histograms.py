"""Native histograms: the bucket indexes, the schema reduction, the merge, and the protobuf
exposition that carries them (decoded with the ``protobuf`` package, independently of ours)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, Summary
from prometheus_client.parser import text_string_to_metric_families
from support import PACKAGE_ROOT, SUPPORT, client, starlette_app
from support.metrics_proto import TYPES, decode, native_buckets

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.errors import ConfigError
from asgi_monitor.store.merge import MergedFiles, MergedFilesCollector
from asgi_monitor.store.multiprocess import NativeMultiprocessRequestMetrics
from asgi_monitor.store.native import (
    NativeBuckets,
    NativeSnapshot,
    bucket_index,
    merge_native,
    upper_bound,
)
from asgi_monitor.store.protobuf import (
    CONTENT_TYPE,
    _write,
    accepts_protobuf,
    encode_protobuf,
)
from asgi_monitor.store.protobuf_scrape import RenderedBytes
from asgi_monitor.store.settings import StoreSettings
from asgi_monitor.store.single import (
    NativeRequestMetrics,
    RequestMetrics,
    RequestMetricsCollector,
)
from asgi_monitor.store.worker_file import native_layout


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Any:
        return iter(self._families)


PROMETHEUS_ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                     "encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1")
VALUES = [0.0003, 0.0011, 0.004, 0.004, 0.02, 0.125, 0.5, 1.0, 2.0, 7.3, 42.0]


@pytest.mark.parametrize("schema", [-4, -1, 0, 1, 3, 8])
def test_a_value_falls_in_the_bucket_whose_bounds_hold_it(schema: int) -> None:
    for value in [*VALUES, 1e-6, 3.3e-5, 0.999, 1.001, 123.456, 1e4]:
        index = bucket_index(value, schema)
        assert upper_bound(index - 1, schema) < value <= upper_bound(index, schema)
    # A power of two is the upper bound of its own bucket.
    assert bucket_index(1.0, schema) == 0
    assert bucket_index(0.5, 3) == -8 and bucket_index(2.0, 3) == 8


def test_observe_counts_each_value_where_bucket_index_puts_it() -> None:
    buckets = NativeBuckets(3, 0.0001, 160)
    for value in [*VALUES, 0.00005, 0.0, math.nan]:
        buckets.observe(value)
    assert buckets.zero_count == 3  # below the threshold, zero and NaN
    assert buckets.counts == dict(Tally(bucket_index(v, 3) for v in VALUES))


def test_over_the_bucket_limit_the_schema_is_reduced_until_it_fits() -> None:
    buckets = NativeBuckets(3, 2.0 ** -128, 4)
    for value in VALUES:
        buckets.observe(value)
    assert len(buckets.counts) <= 4 and buckets.schema < 3
    # Each value is where it belongs at the reduced schema, nothing lost.
    assert buckets.counts == dict(Tally(bucket_index(v, buckets.schema) for v in VALUES))
    # One more value keeps counting at the reduced schema.
    schema = buckets.schema
    buckets.observe(0.0003)
    assert buckets.schema == schema
    assert sum(buckets.counts.values()) == len(VALUES) + 1


def test_a_merge_sums_at_the_lowest_schema() -> None:
    fine = NativeBuckets(3, 2.0 ** -128, 160)
    coarse = NativeBuckets(1, 2.0 ** -128, 160)
    for value in VALUES[:5]:
        fine.observe(value)
    for value in VALUES[5:]:
        coarse.observe(value)
    coarse.observe(0.0)
    merged = merge_native([fine.snapshot(), None, coarse.snapshot()], 160)
    assert merged == NativeSnapshot(1, 2.0 ** -128, 1,
                                    dict(Tally(bucket_index(v, 1) for v in VALUES)))
    # Over the limit, reduced further.
    small = merge_native([fine.snapshot(), coarse.snapshot()], 3)
    assert small is not None and len(small.counts) <= 3 and small.schema < 1
    assert sum(small.counts.values()) == len(VALUES)


def test_the_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="native_histogram_schema"):
        MetricsSettings(native_histogram_schema=9)
    with pytest.raises(ConfigError, match="native_histogram_max_buckets"):
        MetricsSettings(native_histogram_max_buckets=0)
    with pytest.raises(ConfigError, match="native_histogram_zero_threshold"):
        MetricsSettings(native_histogram_zero_threshold=-1.0)


def _store(native: bool) -> tuple[RequestMetrics, CollectorRegistry]:
    settings = StoreSettings(duration_buckets=(0.01, 0.1, 1.0), size_buckets=(100.0,),
                             max_series=100, native_histograms=native)
    store = (NativeRequestMetrics if native else RequestMetrics)(settings)
    registry = CollectorRegistry()
    registry.register(RequestMetricsCollector(store))
    return store, registry


def test_the_protobuf_histogram_carries_classic_and_native_buckets() -> None:
    store, registry = _store(native=True)
    for i, value in enumerate(VALUES):
        # Two statuses of one route: the classic families sum them, the native ones too.
        store.record("GET", "/a", 200 if i % 2 else 500, "http", value, value / 2, 10, 20)
    families = {f.name: f for f in decode(encode_protobuf(registry))}
    duration = families["http_request_duration_seconds"]
    assert TYPES[duration.type] == "HISTOGRAM"
    [metric] = duration.metric
    assert {(p.name, p.value) for p in metric.label} == {("method", "GET"), ("route", "/a")}
    h = metric.histogram
    assert h.sample_count == len(VALUES) and h.sample_sum == pytest.approx(sum(VALUES))
    assert [(b.upper_bound, b.cumulative_count) for b in h.bucket] == [
        (0.01, 4), (0.1, 5), (1.0, 8)]
    assert h.schema == 3 and h.zero_threshold == 2.0 ** -128 and h.zero_count == 0
    assert native_buckets(h) == dict(Tally(bucket_index(v, 3) for v in VALUES))
    ttfb = families["http_time_to_first_byte_seconds"].metric[0].histogram
    assert native_buckets(ttfb) == dict(Tally(bucket_index(v / 2, 3) for v in VALUES))
    # The body sizes stay classic.
    size = families["http_request_size_bytes"].metric[0].histogram
    assert not size.positive_span and size.zero_threshold == 0


def test_off_the_store_and_the_protobuf_are_classic() -> None:
    store, registry = _store(native=False)
    store.record("GET", "/a", 200, "http", 0.02, 0.01, 10, 20)
    assert type(store) is RequestMetrics
    h = {f.name: f for f in decode(encode_protobuf(registry))}[
        "http_request_duration_seconds"].metric[0].histogram
    assert h.sample_count == 1 and not h.positive_span and h.zero_threshold == 0


def _text_samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_created")}


def _proto_samples(body: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    # The protobuf families written back as the text format's samples.
    out = set()
    for family in decode(body):
        for metric in family.metric:
            labels = tuple(sorted((p.name, p.value) for p in metric.label))
            kind = TYPES[family.type]
            if kind in ("COUNTER", "GAUGE", "UNTYPED"):
                value = getattr(metric, kind.lower()).value
                out.add((family.name, labels, value))
            elif kind == "HISTOGRAM":
                h = metric.histogram
                for b in h.bucket:
                    le = tuple(sorted((*labels, ("le", _go(b.upper_bound)))))
                    out.add((f"{family.name}_bucket", le, float(b.cumulative_count)))
                out.add((f"{family.name}_bucket", tuple(sorted((*labels, ("le", "+Inf")))),
                         float(h.sample_count)))
                out.add((f"{family.name}_count", labels, float(h.sample_count)))
                out.add((f"{family.name}_sum", labels, h.sample_sum))
            elif kind == "SUMMARY":
                s = metric.summary
                out.add((f"{family.name}_count", labels, float(s.sample_count)))
                out.add((f"{family.name}_sum", labels, s.sample_sum))
    return out


def _go(bound: float) -> str:
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
async def test_the_protobuf_scrape_carries_every_sample_of_the_text_scrape(naming: str) -> None:
    registry = CollectorRegistry()
    config = MonitoringConfig(
        metrics=MetricsSettings(native_histograms=True, metric_names=naming),
        health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False))
    app = MonitoringMiddleware(starlette_app(),
                               monitor=build_monitor(config, registry))
    # The app's own metrics of every kind the registry may hold.
    Counter("shop_orders", "Orders.", ["kind"], registry=registry).labels("a").inc(3)
    Gauge("shop_queue", "Queue.", registry=registry).set(7)
    Histogram("shop_wait_seconds", "Wait.", registry=registry).observe(0.2)
    Summary("shop_rows", "Rows.", registry=registry).observe(12)
    Info("shop_build", "Build.", registry=registry).info({"version": "1.2"})
    async with client(app) as http:
        for _ in range(3):
            assert (await http.get("/")).status_code == 200
        await http.get("/missing")
        text = await http.get("/api/metrics")
        proto = await http.get("/api/metrics", headers={"accept": PROMETHEUS_ACCEPT})
    assert proto.headers["content-type"] == CONTENT_TYPE
    assert text.headers["content-type"].startswith("text/plain")
    expected = _text_samples(text.text)
    # The text scrape counted itself; the protobuf one came after it.
    got = {s for s in _proto_samples(proto.content) if "/api/metrics" not in str(s)}
    expected = {s for s in expected if "/api/metrics" not in str(s)}
    assert expected <= got, sorted(expected - got)[:5]
    natives = [m.histogram for f in decode(proto.content)
               if f.name in ("http_request_duration_seconds",
                             "http_server_request_duration_seconds") for m in f.metric]
    assert natives and all(h.schema == 3 and native_buckets(h) for h in natives)


@pytest.mark.parametrize(("accept", "protobuf"), [
    (PROMETHEUS_ACCEPT, True),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited", True),
    ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", False),
    ("", False),
    ("*/*", False),
    # Not the delimited MetricFamily stream, or not preferred, or refused.
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
     False),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited;q=0.2,application/openmetrics-text;version=1.0.0;q=0.9", False),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited;q=0", False),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited;q=junk", False),
])
def test_protobuf_is_chosen_only_when_preferred(accept: str, protobuf: bool) -> None:
    assert accepts_protobuf(accept) is protobuf


def _worker_settings() -> StoreSettings:
    defaults = MetricsSettings()
    return StoreSettings(duration_buckets=defaults.duration_buckets,
                         size_buckets=defaults.size_buckets, max_series=100,
                         native_histograms=True)


def _merged_natives(files: MergedFiles) -> dict[str, Any]:
    registry = CollectorRegistry()
    registry.register(MergedFilesCollector(files))
    families = {f.name: f for f in decode(encode_protobuf(registry))}
    return {name: families[name].metric[0].histogram
            for name in ("http_request_duration_seconds", "http_time_to_first_byte_seconds")}


def test_worker_files_keep_a_fixed_range_merged_and_compacted(tmp_path: Path) -> None:
    # 50 microseconds and 300 seconds are outside the file's range (100 us to 100 s): they
    # count in its first and last bucket.
    ones, twos = VALUES[:6] + [0.00005], VALUES[6:] + [300.0]
    # A real worker process, gone (its file is folded by a compaction), and a live one here.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": PACKAGE_ROOT}
    done = subprocess.run(
        [sys.executable, str(SUPPORT / "store_worker.py"),
         json.dumps({"native": True, "durations": ones})],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    live = NativeMultiprocessRequestMetrics(str(tmp_path), _worker_settings())
    try:
        for value in twos:
            live.record("GET", "/a", 404, "http", value, value, 1, 1)
        schema, low, width, _ = native_layout(3, 2.0 ** -128)
        assert schema == 3 and upper_bound(low - 1, 3) < 1e-4 <= upper_bound(low, 3)

        def expected(value: float) -> int:
            return min(max(bucket_index(value, 3), low), low + width - 1)

        want = dict(Tally(expected(v) for v in ones + twos))
        files = MergedFiles(str(tmp_path), _worker_settings(), compact=False)
        for folded in (False, True):
            natives = _merged_natives(files)
            for histogram in natives.values():
                assert histogram.schema == 3 and histogram.sample_count == len(ones + twos)
                assert native_buckets(histogram) == want
            # The sampler's view (the dashboard, OTLP) has them too.
            seen: Tally[int] = Tally()
            for latency in files.request_snapshot(files.read()).latency:  # 200 and 404
                assert latency.native is not None and latency.native[0] == 3
                seen.update(dict(latency.native[3]))
            assert dict(seen) == want
            if not folded:
                assert files.compact() == 1
    finally:
        live.close()


def test_worker_buckets_over_the_limit_are_merged_to_a_lower_schema(tmp_path: Path) -> None:
    settings = StoreSettings(duration_buckets=(0.1,), size_buckets=(100.0,), max_series=100,
                             native_histograms=True, native_max_buckets=3)
    store = NativeMultiprocessRequestMetrics(str(tmp_path), settings)
    try:
        for value in VALUES:
            store.record("GET", "/a", 200, "http", value, value, 1, 1)
        files = MergedFiles(str(tmp_path), settings, compact=False)
        histogram = _merged_natives(files)["http_request_duration_seconds"]
        counts = native_buckets(histogram)
        assert len(counts) <= 3 and histogram.schema < 3
        assert counts == dict(Tally(bucket_index(v, histogram.schema) for v in VALUES))
    finally:
        store.close()


def test_a_reader_without_native_histograms_leaves_native_files_out(tmp_path: Path) -> None:
    store = NativeMultiprocessRequestMetrics(str(tmp_path), _worker_settings())
    try:
        store.record("GET", "/a", 200, "http", 0.02, 0.01, 1, 1)
        plain = StoreSettings(duration_buckets=(0.01, 0.1, 1.0), size_buckets=(100.0,),
                              max_series=100)
        merged = MergedFiles(str(tmp_path), plain, compact=False).read()
        assert merged.skipped == {"buckets": 1} and not merged.offsets
    finally:
        store.close()


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
@pytest.mark.parametrize("native", [False, True])
def test_the_direct_writer_writes_what_the_families_give(naming: str, native: bool) -> None:
    """The request families written straight from the store are the messages the generic
    encoder makes of request_families' families (exemplars and constant labels included)."""
    settings = StoreSettings(duration_buckets=(0.01, 0.1, 1.0), size_buckets=(100.0,),
                             max_series=100, naming=naming, native_histograms=native,
                             constant_labels=(("service", "shop"),))
    store = (NativeRequestMetrics if native else RequestMetrics)(settings)
    for i, value in enumerate(VALUES):
        store.record_exemplar("GET", f"/r/{i % 3}", (200, 503)[i % 2], "https", value,
                              value / 3, 10 * i, 2000 * i,
                              {"trace_id": f"{i:032x}"} if i % 4 == 0 else None)
    store.begin("POST")
    [rendered, *websockets] = store.protobuf()
    assert isinstance(rendered, RenderedBytes)
    generic = bytearray()
    for family in store.collect():
        if family.samples:
            _write(generic, family)
    direct = rendered.data + encode_protobuf(_Families(websockets))
    assert decode(direct) == decode(bytes(generic))


def test_otlp_exports_an_exponential_histogram_of_the_same_buckets() -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    from asgi_monitor.exports.otlp import _encode, metrics_data

    config = MonitoringConfig(metrics=MetricsSettings(native_histograms=True),
                              health=HealthSettings(default_checks=False),
                              system=SystemSettings(metrics=False))
    monitor = build_monitor(config, CollectorRegistry())
    for value in VALUES:
        monitor.requests.record("GET", "/a", 200, "http", value, value, 0, 10)
    monitor.requests.record("GET", "/a", 200, "http", 0.0, 0.0, 0, 10)  # the zero bucket
    data = metrics_data(monitor.sampler.read(), resource={"service.name": "shop"},
                        start_ns=1, now_ns=2)
    request = ExportMetricsServiceRequest()
    request.ParseFromString(_encode(data))
    [metric] = [m for m in request.resource_metrics[0].scope_metrics[0].metrics
                if m.name == "http.server.request.duration"]
    [point] = metric.exponential_histogram.data_points
    assert point.scale == 3 and point.count == len(VALUES) + 1 and point.zero_count == 1
    assert point.sum == pytest.approx(sum(VALUES))
    # OTLP's bucket offset + i is Prometheus' index offset + i + 1.
    exported = {point.positive.offset + i + 1: count
                for i, count in enumerate(point.positive.bucket_counts) if count}
    assert exported == dict(Tally(bucket_index(v, 3) for v in VALUES))


@pytest.mark.parametrize("route", [None, "GET /a"])
def test_the_dashboard_quantiles_come_from_the_native_buckets(route: str | None) -> None:
    from asgi_monitor.sampling.samples import Window

    config = MonitoringConfig(metrics=MetricsSettings(native_histograms=True),
                              health=HealthSettings(default_checks=False),
                              system=SystemSettings(metrics=False))
    monitor = build_monitor(config, CollectorRegistry())
    monitor.requests.record("GET", "/a", 200, "http", 9.0, 0.1, 0, 10)  # before the window
    start = monitor.sampler.take()
    # 0.3 s sits between the classic bounds 0.25 and 0.5: they would read p50 as ~0.375.
    latencies = [0.3] * 60 + [0.03] * 30 + [2.2] * 10
    for i, value in enumerate(latencies):
        monitor.requests.record("GET", "/a", (200, 500)[i % 2], "http", value, value, 0, 10)
    window = Window(start, monitor.sampler.take())
    ordered = sorted(latencies)
    for q in (0.5, 0.95, 0.99, 0.2):
        true = ordered[math.ceil(q * len(ordered)) - 1]
        found = window.latency_quantile(q, route)
        assert found is not None and true / 2 ** (1 / 8) <= found <= true * 2 ** (1 / 8), (q, found)


def test_a_label_that_is_no_utf8_does_not_take_the_scrape_down() -> None:
    store, registry = _store(native=True)
    store.record("GET", "/caf\udce9", 200, "http", 0.02, 0.01, 10, 20)
    families = {f.name: f for f in decode(encode_protobuf(registry))}
    [metric] = families["http_request_duration_seconds"].metric
    assert ("route", "/caf?") in {(p.name, p.value) for p in metric.label}


async def test_the_metrics_port_serves_the_workers_native_histograms(tmp_path: Path) -> None:
    import httpx

    from asgi_monitor.web.sidecar import metrics_app

    store = NativeMultiprocessRequestMetrics(str(tmp_path), _worker_settings())
    try:
        for value in VALUES:
            store.record("GET", "/a", 200, "http", value, value, 1, 1)
        config = MonitoringConfig(metrics=MetricsSettings(native_histograms=True))
        transport = httpx.ASGITransport(app=metrics_app(config, str(tmp_path)))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            proto = await http.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})
            text = await http.get("/metrics")
    finally:
        store.close()
    assert proto.headers["content-type"] == CONTENT_TYPE
    assert text.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in decode(proto.content)}
    histogram = families["http_request_duration_seconds"].metric[0].histogram
    assert histogram.schema == 3 and histogram.sample_count == len(VALUES)
    assert native_buckets(histogram) == dict(Tally(bucket_index(v, 3) for v in VALUES))


def test_labelled_requests_keep_their_native_buckets_in_both_stores(tmp_path: Path) -> None:
    """With request labels and native histograms both on, a labelled series counts its native
    buckets as an unlabelled one does, in one process and in the worker files."""
    settings = StoreSettings(duration_buckets=MetricsSettings().duration_buckets,
                             size_buckets=(100.0,), max_series=100, native_histograms=True,
                             label_names=("tenant",))
    want = dict(Tally(bucket_index(v, 3) for v in VALUES))
    single = NativeRequestMetrics(settings)
    registry = CollectorRegistry()
    registry.register(RequestMetricsCollector(single))
    worker = NativeMultiprocessRequestMetrics(str(tmp_path), settings)
    try:
        for value in VALUES:
            for store in (single, worker):
                store.record_labelled("GET", "/a", 200, "http", ("acme",), value, value, 1, 1,
                                      None)
        files_registry = CollectorRegistry()
        files_registry.register(MergedFilesCollector(MergedFiles(str(tmp_path), settings,
                                                                 compact=False)))
        for scraped in (registry, files_registry):
            families = {f.name: f for f in decode(encode_protobuf(scraped))}
            [metric] = families["http_request_duration_seconds"].metric
            assert ("tenant", "acme") in {(p.name, p.value) for p in metric.label}
            assert metric.histogram.sample_count == len(VALUES)
            assert native_buckets(metric.histogram) == want
    finally:
        worker.close()
