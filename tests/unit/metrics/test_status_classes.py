"""MONITORING_STATUS_CLASSES: the status label as its class on every request family, the series
of one class summed, in one process and merged from worker files, in every naming, written
directly as prometheus_client writes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, values
from prometheus_client.exposition import choose_encoder

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import AlertSettings, HealthSettings, MetricsSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store.exposition import encode
from asgi_monitor.store.multiprocess import MultiprocessRequestMetrics
from asgi_monitor.store.settings import StoreSettings

ACCEPTS = ("", "application/openmetrics-text;version=1.0.0")


@pytest.fixture
def multiproc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    yield monkeypatch


def monitor(**metrics: Any) -> Monitor:
    return build_monitor(
        MonitoringConfig(metrics=MetricsSettings(status_classes=True, **metrics),
                         health=HealthSettings(default_checks=False),
                         alerts=AlertSettings(default_rules=False),
                         system=SystemSettings(metrics=False)),
        CollectorRegistry())


def fill(store: Any) -> None:
    for status in (200, 201, 204, 404, 499, 500, 503):
        store.record("GET", "/a", status, "http", 0.01, 0.001, 0, 10)
    store.record_exemplar("GET", "/a", 200, "http", 0.3, 0.001, 0, 10, {"trace_id": "t1"})
    store.record_exemplar("GET", "/a", 201, "http", 0.3, 0.001, 0, 10, {"trace_id": "t2"})


def check(registry: CollectorRegistry, naming: str, times: int) -> None:
    for accept in ACCEPTS:
        encoder, content_type = choose_encoder(accept)
        assert encode(registry, encoder, content_type) == encoder(registry), accept
    read = registry.get_sample_value
    if naming != "otel":
        counts = {status: read("http_requests_total", {"method": "GET", "route": "/a",
                                                       "status": status})
                  for status in ("2xx", "4xx", "5xx", "200")}
        assert counts == {"2xx": 5 * times, "4xx": 2 * times, "5xx": 2 * times, "200": None}
    if naming != "classic":
        otel = {"http_request_method": "GET", "http_route": "/a", "url_scheme": "http"}
        assert read("http_server_request_duration_seconds_count",
                    {**otel, "http_response_status_code": "5xx", "error_type": "5xx"}) == (
            2 * times)
        assert read("http_server_request_duration_seconds_count",
                    {**otel, "http_response_status_code": "2xx"}) == 5 * times
    encoder, content_type = choose_encoder("application/openmetrics-text;version=1.0.0")
    text = encode(registry, encoder, content_type).decode()
    assert 'trace_id="t2"' in text and 'trace_id="t1"' not in text  # the newest of the class


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_one_process_shows_status_classes(naming: str) -> None:
    built = monitor(metric_names=naming, exemplars=True)
    fill(built.collector.requests)
    check(built.registry, naming, 1)
    # The in-process figures keep the codes.
    statuses = {status for _, _, status, _ in built.collector.requests.snapshot().series}
    assert statuses == {200, 201, 204, 404, 499, 500, 503}


@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_merged_worker_files_show_status_classes(
        multiproc_env: pytest.MonkeyPatch, tmp_path: Path, naming: str) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    built = monitor(metric_names=naming, exemplars=True)
    settings = built.config.metrics
    other = MultiprocessRequestMetrics(str(tmp_path), StoreSettings(
        duration_buckets=settings.duration_buckets, size_buckets=settings.size_buckets,
        max_series=50))
    fill(built.collector.requests)
    fill(other)
    registry = built.scrape_registry()
    for accept in ACCEPTS:
        encoder, content_type = choose_encoder(accept)
        assert encode(registry, encoder, content_type) == encoder(registry), accept
    read = registry.get_sample_value
    if naming != "otel":
        assert read("http_requests_total",
                    {"method": "GET", "route": "/a", "status": "2xx"}) == 10
        assert read("http_requests_total",
                    {"method": "GET", "route": "/a", "status": "4xx"}) == 4
    other.close()


def test_status_classes_from_the_environment() -> None:
    assert MonitoringConfig.from_env({"MONITORING_STATUS_CLASSES": "true"}).metrics.status_classes
    assert not MonitoringConfig.from_env({}).metrics.status_classes
