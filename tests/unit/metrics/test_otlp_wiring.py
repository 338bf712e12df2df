"""The OTLP export runs only with an endpoint, and its data equals the sampler's snapshot."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.config import ConfigError, OTLPSettings


async def test_no_endpoint_no_export() -> None:
    monitor = build_monitor(MonitoringConfig(), CollectorRegistry())
    async with monitor.running():
        assert "otlp" not in monitor.task_names


def test_an_endpoint_must_be_a_url() -> None:
    with pytest.raises(ConfigError, match="MONITORING_OTLP_ENDPOINT"):
        MonitoringConfig.from_env({"MONITORING_OTLP_ENDPOINT": "collector:4318"})


def test_metrics_data_from_a_snapshot() -> None:
    pytest.importorskip("opentelemetry.sdk.metrics.export")
    from asgi_monitor.exports.otlp import metrics_data

    monitor = build_monitor(MonitoringConfig(otlp=OTLPSettings(endpoint="http://c:4318/v1/metrics")),
                            CollectorRegistry())
    monitor.requests.record("OTHER", "/a", 502, "http", 0.2, 0.1, 0, 10)
    monitor.requests.record("GET", "/a", 200, "https", 0.02, 0.01, 0, 10)
    data = metrics_data(monitor.sampler.read(), resource={"service.name": "shop"},
                        start_ns=1, now_ns=2)
    [resource] = data.resource_metrics
    assert resource.resource.attributes["service.name"] == "shop"
    metrics = {m.name: m for m in resource.scope_metrics[0].metrics}
    # Status and scheme on the duration histogram; no request counter (its count is one).
    assert "http.server.requests" not in metrics
    points = {(p.attributes["http.request.method"], p.attributes["http.response.status_code"],
               p.attributes["url.scheme"], p.attributes.get("error.type")):
              (p.count, p.sum, sum(p.bucket_counts))
              for p in metrics["http.server.request.duration"].data.data_points}
    assert points == {("_OTHER", 502, "http", "502"): (1, pytest.approx(0.2), 1),
                      ("GET", 200, "https", None): (1, pytest.approx(0.02), 1)}


def test_streams_in_the_export() -> None:
    pytest.importorskip("opentelemetry.sdk.metrics.export")
    from asgi_monitor.exports.otlp import metrics_data

    monitor = build_monitor(MonitoringConfig(otlp=OTLPSettings(endpoint="http://c:4318/v1/metrics")),
                            CollectorRegistry())
    monitor.requests.record_stream("GET", "/events", 42.0)
    monitor.requests.record_stream("GET", "/events", 700.0)
    monitor.requests.record_stream("OTHER", "/feed", 1.0)
    monitor.requests.streams_open.add(3)
    data = metrics_data(monitor.sampler.read(), resource={"service.name": "shop"},
                        start_ns=1, now_ns=2)
    metrics = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}
    stream = metrics["http.server.stream.duration"]
    assert stream.unit == "s"
    points = {(p.attributes["http.request.method"], p.attributes["http.route"]):
              (p.count, p.sum, sum(p.bucket_counts), len(p.bucket_counts) - len(p.explicit_bounds))
              for p in stream.data.data_points}
    assert points == {("GET", "/events"): (2, pytest.approx(742.0), 2, 1),
                      ("_OTHER", "/feed"): (1, pytest.approx(1.0), 1, 1)}
    # The long bounds: an hour-long stream has a bucket of its own.
    assert 3600.0 in next(iter(stream.data.data_points)).explicit_bounds
    [open_now] = metrics["http.server.active_streams"].data.data_points
    assert open_now.value == 3
    assert metrics["http.server.active_streams"].data.is_monotonic is False
