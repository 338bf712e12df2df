"""MONITORING_METRIC_NAMES: the same stored series under classic and OpenTelemetry names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric

from asgi_monitor import MonitoringConfig
from asgi_monitor.build import metrics_parts
from asgi_monitor.collector import MetricsCollector
from asgi_monitor.config import ConfigError, MetricsSettings
from asgi_monitor.exports.metric_names import OTEL_NAMES, metric_name
from asgi_monitor.store.families import HISTOGRAMS
from asgi_monitor.store.single import HELP, HTTP_REQUESTS


def recorded(naming: str, **settings: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    chosen = MetricsSettings(metric_names=naming, **settings)  # type: ignore[arg-type]
    metrics = MetricsCollector(chosen, registry, metrics_parts(chosen, registry))
    store = metrics.requests
    store.record("GET", "/items/{id}", 200, "http", 0.02, 0.01, 0, 120)
    store.record("GET", "/items/{id}", 503, "http", 0.3, 0.2, 0, 40)
    store.record("GET", "/items/{id}", 200, "https", 0.002, 0.001, 0, 8)
    store.record("OTHER", "<unmatched>", 404, "http", 0.001, 0.001, 10, 0)
    store.begin("POST")
    store.begin("PROPFIND")
    return registry


def otel(method: str, route: str, status: str, scheme: str = "http", **extra: str,
         ) -> dict[str, str]:
    error = {"error_type": status} if status.startswith("5") else {}
    return {"http_request_method": method, "http_route": route,
            "http_response_status_code": status, "url_scheme": scheme, **error, **extra}


def test_classic_is_the_default_and_exposes_no_otel_names() -> None:
    assert MonitoringConfig().metrics.metric_names == "classic"
    text = generate_latest(recorded("classic")).decode()
    assert "http_requests_total{" in text
    assert "http_server_" not in text


def test_otel_names_and_labels() -> None:
    r = recorded("otel")
    text = generate_latest(r).decode()
    assert "# TYPE http_requests_total" not in text
    assert "# TYPE http_request_duration_seconds" not in text
    # The conventions count requests with the duration histogram: no request counter.
    assert "http_server_requests" not in text
    assert r.get_sample_value("asgi_monitor_series_dropped_total", {
        "metric": "http_server_request_duration_seconds_count"}) == 0
    # Status and scheme on the histograms, as the conventions have them.
    assert r.get_sample_value("http_server_request_duration_seconds_count",
                              otel("GET", "/items/{id}", "200")) == 1
    assert r.get_sample_value("http_server_request_duration_seconds_count",
                              otel("GET", "/items/{id}", "200", "https")) == 1
    assert r.get_sample_value("http_server_request_duration_seconds_sum",
                              otel("GET", "/items/{id}", "503")) == pytest.approx(0.3)
    assert r.get_sample_value("http_server_request_duration_seconds_bucket",
                              {**otel("GET", "/items/{id}", "200"), "le": "0.025"}) == 1
    # A non-standard method is `_OTHER`; error_type is the status of a 5xx, absent otherwise.
    assert r.get_sample_value("http_server_request_duration_seconds_count", otel(
        "_OTHER", "<unmatched>", "404")) == 1
    assert r.get_sample_value("http_server_request_duration_seconds_count", {
        "http_request_method": "GET", "http_route": "/items/{id}", "url_scheme": "http",
        "http_response_status_code": "503", "error_type": "503"}) == 1
    assert 'error_type=""' not in text
    assert r.get_sample_value("http_server_response_body_size_bytes_sum",
                              otel("GET", "/items/{id}", "503")) == 40
    assert r.get_sample_value("http_server_request_body_size_bytes_count",
                              otel("_OTHER", "<unmatched>", "404")) == 1
    # Kept per method only (no scheme): a scheme would cost every request a lookup.
    assert r.get_sample_value("http_server_active_requests",
                              {"http_request_method": "POST"}) == 1
    assert r.get_sample_value("http_server_active_requests",
                              {"http_request_method": "_OTHER"}) == 1
    # No counterpart in the conventions: the classic family, summed over status and scheme.
    assert r.get_sample_value("http_time_to_first_byte_seconds_count",
                              {"method": "GET", "route": "/items/{id}"}) == 3
    assert "# TYPE http_server_request_duration_seconds histogram" in text
    assert "# TYPE http_server_active_requests gauge" in text


def _values(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in registry.collect():
        for s in family.samples:
            # The dropped-series counter names the families in its label (checked above).
            if not s.name.endswith("_created") and "series_dropped" not in s.name:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


_CLASSIC_LABELS = {"http_request_method": "method", "http_route": "route",
                   "http_response_status_code": "status"}


def test_otel_values_sum_to_the_classic_ones() -> None:
    classic = _values(recorded("classic"))
    otel_values = _values(recorded("otel"))
    assert _values(recorded("both")) == {**classic, **otel_values}
    # Each otel sample summed over what classic names leave out (status and scheme for the
    # histograms, the scheme for the request count) is the classic sample.
    summed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for (name, labels), value in otel_values.items():
        if not name.startswith("http_server_"):
            assert classic[(name, labels)] == value  # time to first byte, WebSocket, ...
            continue
        d = {_CLASSIC_LABELS.get(k, k): v for k, v in labels
             if k not in ("url_scheme", "error_type")}
        if d.get("method") == "_OTHER":
            d["method"] = "OTHER"
        for classic_name in _classic_names(name):
            kept = d if classic_name.startswith("http_requests_total") else {
                k: v for k, v in d.items() if k != "status"}
            key = (classic_name, tuple(sorted(kept.items())))
            summed[key] = summed.get(key, 0.0) + value
    assert summed.keys() <= classic.keys()
    for key, value in summed.items():
        assert classic[key] == pytest.approx(value), key


def _classic_names(otel_name: str) -> list[str]:
    names = [classic + otel_name[len(new):] for classic, new in OTEL_NAMES.items()
             if otel_name.startswith(new)]
    if otel_name == "http_server_request_duration_seconds_count":
        names.append("http_requests_total")
    return names


def test_classic_exposition_is_prometheus_clients_for_the_same_traffic() -> None:
    """Classic names show what they showed when the store kept histograms per route: the
    exposition prometheus_client's own Counter and Histogram write for the same requests (less
    their `_created` samples, which the store never had)."""
    traffic = [("GET", "/items/{id}", 200, "http", 0.25, 0.125, 0, 1024),
               ("GET", "/items/{id}", 503, "http", 0.5, 0.25, 16, 64),
               ("GET", "/items/{id}", 200, "https", 0.0078125, 0.00390625, 0, 2048),
               ("POST", "/orders", 201, "https", 3.0, 1.5, 512, 128),
               ("GET", "/items/{id}", 200, "http", 0.000244140625, 0.0001220703125, 0, 0)]
    # Durations that are sums of powers of two: their float sums do not depend on the order
    # they are added in, so per-status sums add up to the per-route sum exactly.
    settings = MetricsSettings()
    ours = CollectorRegistry()
    store = metrics_parts(settings, ours).store.requests
    reference = CollectorRegistry()
    total = Counter("http_requests", HELP[HTTP_REQUESTS], ("method", "route", "status"),
                    registry=reference)
    histograms = [Histogram(name, doc, ("method", "route"), registry=reference,
                            buckets=settings.size_buckets if in_bytes
                            else settings.duration_buckets)
                  for name, doc, in_bytes in HISTOGRAMS]
    for method, route, status, scheme, *observed in traffic:
        store.record(method, route, status, scheme, *observed)  # type: ignore[arg-type]
        total.labels(method, route, str(status)).inc()
        for histogram, value in zip(histograms, observed, strict=True):
            histogram.labels(method, route).observe(value)

    def text(registry: CollectorRegistry, names: set[str]) -> str:
        lines = generate_latest(_Only(registry, names)).decode().splitlines()
        return "\n".join(line for line in lines if "_created" not in line)

    names = {"http_requests", *(name for name, _, _ in HISTOGRAMS)}
    assert text(ours, names) == text(reference, names)
    assert 'http_requests_total{method="GET",route="/items/{id}",status="200"} 3.0' in text(
        ours, names)


class _Only:
    def __init__(self, registry: CollectorRegistry, names: set[str]) -> None:
        self._registry = registry
        self._names = names

    def collect(self) -> Iterator[Metric]:
        return (f for f in self._registry.collect() if f.name in self._names)


def test_constant_labels_and_namespace_follow() -> None:
    r = recorded("otel", namespace="shop", constant_labels={"service": "shop"})
    assert r.get_sample_value("shop_http_server_request_duration_seconds_count",
                              otel("GET", "/items/{id}", "200", service="shop")) == 1


def test_an_unknown_naming_is_refused() -> None:
    with pytest.raises(ConfigError, match="MONITORING_METRIC_NAMES|metric_names"):
        MonitoringConfig.from_env({"MONITORING_METRIC_NAMES": "openmetrics"})


@pytest.mark.parametrize(("classic", "naming", "expected"), [
    ("http_requests_total", "otel", "http_server_request_duration_seconds_count"),
    ("http_request_duration_seconds_bucket", "otel", "http_server_request_duration_seconds_bucket"),
    ("http_requests_in_progress", "otel", "http_server_active_requests"),
    ("http_request_duration_seconds_count", "both", "http_request_duration_seconds_count"),
    ("http_time_to_first_byte_seconds_bucket", "otel", "http_time_to_first_byte_seconds_bucket"),
    ("db_queries_total", "otel", "db_queries_total"),
    ("http_stream_duration_seconds_bucket", "otel", "http_server_stream_duration_seconds_bucket"),
    ("http_stream_duration_seconds_count", "both", "http_stream_duration_seconds_count"),
    ("http_streams_open", "otel", "http_server_active_streams"),
])
def test_metric_name(classic: str, naming: str, expected: str) -> None:
    assert metric_name(classic, naming) == expected
