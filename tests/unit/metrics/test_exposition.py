"""The request families written directly (asgi_monitor.store.exposition) are byte for byte what
prometheus_client's encoders write for the same registry, in one process and merged from worker
files, in every naming and in each format an Accept header can ask for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, values
from prometheus_client.exposition import choose_encoder

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store.exposition import Rendered, direct_format, encode
from asgi_monitor.store.merge import MergedFiles
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.settings import StoreSettings
from asgi_monitor.store.single import RequestMetrics, RequestMetricsCollector

ACCEPTS = (
    "",
    "text/plain",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text",
    "application/openmetrics-text;version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    # Escapings that rename: everything goes through prometheus_client.
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "text/plain;version=1.0.0;escaping=values",
)
# Label values that need escaping, and values that prometheus_client writes with an exponent.
AWKWARD_ROUTE = '/q/"x"\\y\nz'


@pytest.fixture
def multiproc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    # multiprocess_dir() switches prometheus_client's value storage; put it back afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    yield monkeypatch


def monitor(**metrics: Any) -> Monitor:
    return build_monitor(
        MonitoringConfig(metrics=MetricsSettings(**metrics),
                         health=HealthSettings(default_checks=False),
                         alerts=AlertSettings(default_rules=False),
                         system=SystemSettings(metrics=False)),
        CollectorRegistry())


def fill(record: Any, offset: int = 0) -> None:
    for n in range(6):
        record("GET", f"/items/{n % 3}", 200 + 100 * (n % 4), "http", 0.0003 * (n + 1) + offset,
               0.0001, 10 * n, 100)
    record("POST", AWKWARD_ROUTE, 503, "https", 0.2, 0.1, 3_000_000, 40_000_000)
    record("OTHER", "/items/1", 200, "http", 12.5, 0.001, 0, 0)
    for _ in range(3):
        record("GET", "/items/0", 200, "http", 0.01, 0.002, 2_000_000, 7_000_000)


def fill_streams(store: Any) -> None:
    # Over a cap of 4 or 5: the last ones overflow.
    for n in range(6):
        store.record_stream("GET", f"/events/{n}", 0.5 * n)
    store.record_stream("POST", AWKWARD_ROUTE, 4000.0)
    store.record_stream("OTHER", "/events/0", 1.0)
    store.streams_open.add(2)


def assert_same(registry: CollectorRegistry) -> None:
    for accept in ACCEPTS:
        encoder, content_type = choose_encoder(accept)
        expected = encoder(registry)
        assert encode(registry, encoder, content_type) == expected, accept


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
@pytest.mark.parametrize("labels", [(), (("service", "shop"), ("zone", 'a"b'), ("app", "x"))])
def test_one_process_writes_what_prometheus_client_writes(
        naming: str, labels: tuple[tuple[str, str], ...]) -> None:
    built = monitor(metric_names=naming, constant_labels=labels, namespace="shop", max_series=4)
    store = built.collector.requests
    fill(store.record)
    store.begin("GET")
    store.begin("BREW")
    route = store.websocket_accepted("/ws")
    store.websocket_closed(route, 42.0)
    store.websocket_accepted("/ws/{room}")
    fill_streams(store)
    Counter("app_things", "Things, the app's own", ["kind"],
            registry=built.registry).labels("a").inc(3)
    assert_same(built.registry)


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_exemplars_in_openmetrics_as_prometheus_client_writes_them(naming: str) -> None:
    built = monitor(metric_names=naming, exemplars=True)
    store = built.collector.requests
    store.record_exemplar("GET", "/a", 200, "http", 0.0003, 0.0001, 0, 1, {"trace_id": "t1"})
    store.record_exemplar("GET", "/a", 500, "http", 0.0004, 0.0001, 0, 1,
                          {"trace_id": 'q"\\', "span_id": "s"})
    store.record_exemplar("GET", "/a", 200, "https", 0.007, 0.0001, 0, 1, {"trace_id": "t3"})
    store.record_exemplar("GET", "/b", 200, "http", 0.007, 0.0001, 0, 1, None)
    assert_same(built.registry)
    encoder, content_type = choose_encoder("application/openmetrics-text")
    assert b' # {trace_id="t3"} 0.007 ' in encode(built.registry, encoder, content_type)


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_merged_worker_files_write_what_prometheus_client_writes(
        multiproc_env: pytest.MonkeyPatch, tmp_path: Path, naming: str) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    built = monitor(metric_names=naming, constant_labels={"env": "prod"}, max_series=5)
    settings = built.config.metrics
    other = MultiprocessRequestMetrics(str(tmp_path), StoreSettings(
        duration_buckets=settings.duration_buckets, size_buckets=settings.size_buckets,
        max_series=5))
    fill(built.collector.requests.record)
    fill(other.record, offset=1)
    fill_streams(built.collector.requests)
    fill_streams(other)
    built.collector.increment_counter("signups_total", labels={"plan": "pro"})
    built.collector.set_gauge("queue_depth", 3)
    built.collector.record_histogram("job_seconds", 1.5)
    registry = built.scrape_registry()
    assert_same(registry)
    # The text held both workers' requests: 2 x 11, the overflow included.
    encoder, content_type = choose_encoder("")
    text = encode(registry, encoder, content_type).decode()
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("http_request_duration_seconds_count"))
    if naming != "otel":
        assert counted == 22
        assert 'http_streams_open{env="prod"} 4.0' in text
    if naming != "classic":
        assert 'http_server_active_streams{env="prod"} 4.0' in text
        assert 'http_server_stream_duration_seconds_count{env="prod",http_request_method="_OTHER",http_route="<overflow>"} 2.0' in text  # noqa: E501
    assert 'route="<overflow>"' in text or "http_route=\"<overflow>\"" in text


def test_registering_the_merged_collector_reads_no_file(
        multiproc_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    built = monitor()
    merged = built.collector.merged
    assert merged is not None
    reads = []
    original = merged.read

    def counted() -> Any:
        reads.append(1)
        return original()

    multiproc_env.setattr(merged, "read", counted)
    registry = built.scrape_registry()
    assert reads == []  # registered (and so described) without a merge
    encoder, content_type = choose_encoder("")
    encode(registry, encoder, content_type)
    assert reads == [1]  # the scrape itself: one merge, not one per describe and collect


def test_building_a_monitor_reads_no_file(multiproc_env: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    # build_monitor runs where the app starts, often on the event loop: the sampler learns the
    # families this process declares on its first read, which runs in a thread.
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    reads: list[int] = []
    original = MergedFiles.read

    def counted(self: MergedFiles) -> Any:
        reads.append(1)
        return original(self)

    multiproc_env.setattr(MergedFiles, "read", counted)
    built = monitor()
    assert reads == []
    built.collector.requests.record("GET", "/a", 200, "http", 0.1, 0.1, 0, 0)
    inputs = built.sampler.read()
    assert reads  # the first sample merged the files
    assert sum(count for *_, count in inputs.requests.series) == 1


def test_other_readers_of_the_registry_get_families() -> None:
    built = monitor()
    built.collector.requests.record("GET", "/a", 200, "http", 0.1, 0.1, 0, 0)
    assert direct_format() is None
    families = list(built.registry.collect())
    assert not any(isinstance(f, Rendered) for f in families)
    assert built.registry.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "/a", "status": "200"}) == 1


async def test_the_endpoint_serves_the_direct_text() -> None:
    built = monitor()
    app = MonitoringMiddleware(lambda scope, receive, send: None, monitor=built)  # type: ignore[arg-type,return-value]
    built.collector.requests.record("GET", AWKWARD_ROUTE, 200, "http", 0.1, 0.1, 0, 0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        for accept in ACCEPTS:
            response = await client.get("/api/metrics", headers={"accept": accept})
            assert response.status_code == 200, accept
            encoder, content_type = choose_encoder(accept)
            assert response.headers["content-type"] == content_type
            # The scrape's own request is in the registry as the response is sent, not before:
            # compare the families of the recorded request only.
            expected = [line for line in encoder(built.registry).decode().splitlines()
                        if "/q/" in line]
            assert [line for line in response.text.splitlines() if "/q/" in line] == expected
            assert expected


def test_the_request_families_are_not_built_for_a_scrape(
        multiproc_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    single = monitor()
    single.collector.requests.record("GET", "/a", 200, "http", 0.1, 0.1, 0, 0)
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    several = monitor()
    several.collector.requests.record("GET", "/a", 200, "http", 0.1, 0.1, 0, 0)

    def refused(series: Any, *args: Any, **kwargs: Any) -> Any:
        # Described with no series when registered; built with series, for a scrape.
        assert not list(series), "prometheus_client families built for a direct scrape"
        return iter(())

    multiproc_env.setattr("asgi_monitor.store.merge.request_families", refused)
    multiproc_env.setattr("asgi_monitor.store.single.request_families", refused)
    encoder, content_type = choose_encoder("application/openmetrics-text")
    for registry in (single.registry, several.scrape_registry()):
        text = encode(registry, encoder, content_type).decode()
        assert 'http_requests_total{method="GET",route="/a",status="200"} 1.0\n' in text
        assert text.endswith("# EOF\n") and text.count("# EOF") == 1


def test_names_outside_the_plain_set_go_through_prometheus_client() -> None:
    # A namespace with a colon (legal in Prometheus, renamed by some escapings): not written
    # directly, so every Accept header still gets exactly what prometheus_client writes.
    store = RequestMetrics(StoreSettings(
        namespace="shop:v2", duration_buckets=(0.1, 1.0), size_buckets=(100.0,), max_series=10))
    registry = CollectorRegistry()
    registry.register(RequestMetricsCollector(store))
    store.record("GET", "/a", 200, "http", 0.2, 0.1, 0, 10)
    assert store.exposition(False) is None
    assert_same(registry)
