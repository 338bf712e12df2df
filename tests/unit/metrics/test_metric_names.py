"""MONITORING_METRIC_NAMES: the same stored series under classic and OpenTelemetry names."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asgi_monitor import MonitoringConfig
from asgi_monitor.collector import MetricsCollector
from asgi_monitor.config import ConfigError, MetricsSettings
from asgi_monitor.metric_names import metric_name


def recorded(naming: str, **settings: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = MetricsCollector(MetricsSettings(metric_names=naming, **settings),  # type: ignore[arg-type]
                               registry)
    store = metrics.requests
    store.record("GET", "/items/{id}", 200, 0.02, 0.01, 0, 120)
    store.record("GET", "/items/{id}", 503, 0.3, 0.2, 0, 40)
    store.record("OTHER", "<unmatched>", 404, 0.001, 0.001, 10, 0)
    store.begin("POST")
    store.begin("PROPFIND")
    return registry


def otel(method: str, route: str, **extra: str) -> dict[str, str]:
    return {"http_request_method": method, "http_route": route, "url_scheme": "http", **extra}


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
    assert r.get_sample_value("asgi_monitor_series_dropped_total",
                              {"metric": "http_server_requests_total"}) == 0
    assert r.get_sample_value("http_server_request_duration_seconds_count",
                              otel("GET", "/items/{id}")) == 2
    assert r.get_sample_value("http_server_request_duration_seconds_sum",
                              otel("GET", "/items/{id}")) == pytest.approx(0.32)
    assert r.get_sample_value("http_server_request_duration_seconds_bucket",
                              {**otel("GET", "/items/{id}"), "le": "0.025"}) == 1
    # A non-standard method is `_OTHER`; error_type is the status of a 5xx, empty otherwise.
    assert r.get_sample_value("http_server_requests_total", otel(
        "_OTHER", "<unmatched>", http_response_status_code="404", error_type="")) == 1
    assert r.get_sample_value("http_server_requests_total", otel(
        "GET", "/items/{id}", http_response_status_code="503", error_type="503")) == 1
    assert r.get_sample_value("http_server_response_body_size_bytes_sum",
                              otel("GET", "/items/{id}")) == 160
    assert r.get_sample_value("http_server_request_body_size_bytes_count",
                              otel("_OTHER", "<unmatched>")) == 1
    active = {"url_scheme": "http"}
    assert r.get_sample_value("http_server_active_requests",
                              {"http_request_method": "POST", **active}) == 1
    assert r.get_sample_value("http_server_active_requests",
                              {"http_request_method": "_OTHER", **active}) == 1
    # No counterpart in the conventions: the classic family, unchanged.
    assert r.get_sample_value("http_time_to_first_byte_seconds_count",
                              {"method": "GET", "route": "/items/{id}"}) == 2
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


_COMMON = {"method": "m", "route": "r", "status": "s", "http_request_method": "m",
           "http_route": "r", "http_response_status_code": "s"}


def _common(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], *, classic: bool,
            ) -> dict[tuple[str, ...], float]:
    """Both namings' samples in one spelling: the otel name, neutral label names."""
    out = {}
    for (name, labels), value in values.items():
        renamed = metric_name(name, "otel") != name or name.startswith("http_server_")
        d = dict(labels)
        if renamed:
            d = {_COMMON.get(k, k): v for k, v in d.items() if k not in ("url_scheme",
                                                                           "error_type")}
        if classic and renamed and d.get("m") == "OTHER":
            d["m"] = "_OTHER"
        out[(metric_name(name, "otel"), *sorted(f"{k}={v}" for k, v in d.items()))] = value
    return out


def test_values_are_equal_across_modes() -> None:
    classic = _values(recorded("classic"))
    otel_values = _values(recorded("otel"))
    assert _values(recorded("both")) == {**classic, **otel_values}
    assert _common(classic, classic=True) == _common(otel_values, classic=False)
    assert len(otel_values) == len(classic)


def test_constant_labels_and_namespace_follow() -> None:
    r = recorded("otel", namespace="shop", constant_labels={"service": "shop"})
    assert r.get_sample_value("shop_http_server_request_duration_seconds_count",
                              otel("GET", "/items/{id}", service="shop")) == 2


def test_an_unknown_naming_is_refused() -> None:
    with pytest.raises(ConfigError, match="MONITORING_METRIC_NAMES|metric_names"):
        MonitoringConfig.from_env({"MONITORING_METRIC_NAMES": "openmetrics"})


@pytest.mark.parametrize(("classic", "naming", "expected"), [
    ("http_requests_total", "otel", "http_server_requests_total"),
    ("http_request_duration_seconds_bucket", "otel", "http_server_request_duration_seconds_bucket"),
    ("http_requests_in_progress", "otel", "http_server_active_requests"),
    ("http_request_duration_seconds_count", "both", "http_request_duration_seconds_count"),
    ("http_time_to_first_byte_seconds_bucket", "otel", "http_time_to_first_byte_seconds_bucket"),
    ("db_queries_total", "otel", "db_queries_total"),
])
def test_metric_name(classic: str, naming: str, expected: str) -> None:
    assert metric_name(classic, naming) == expected
