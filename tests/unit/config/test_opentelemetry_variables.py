"""OpenTelemetry's own variables for the OTLP export and the service's identity: read as the
SDK's spec says, behind our MONITORING_* ones."""

from __future__ import annotations

import pytest

from asgi_monitor import ConfigError, MonitoringConfig
from asgi_monitor.config import OTLPSettings


def otlp(environ: dict[str, str]) -> OTLPSettings:
    return MonitoringConfig.from_env(environ).otlp


@pytest.mark.parametrize(("environ", "endpoint"), [
    # The general variable is a base URL: the metrics path is appended, with or without a slash.
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
     "http://collector:4318/v1/metrics"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example/otlp/"},
     "https://otlp.example/otlp/v1/metrics"),
    # The per-signal one is the URL as given, and wins over the general one.
    ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:4318/custom",
      "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}, "http://m:4318/custom"),
    # Ours wins over both.
    ({"MONITORING_OTLP_ENDPOINT": "http://ours:4318/v1/metrics",
      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:4318/custom",
      "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}, "http://ours:4318/v1/metrics"),
    ({}, ""),
])
def test_endpoint_precedence(environ: dict[str, str], endpoint: str) -> None:
    assert otlp(environ).endpoint == endpoint


def test_interval_timeout_and_headers_in_their_units_and_order() -> None:
    settings = otlp({"OTEL_METRIC_EXPORT_INTERVAL": "15000", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
                     "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "4000",
                     "OTEL_EXPORTER_OTLP_HEADERS": "a=general",
                     "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "api-key=abc%2Cdef, tenant = shop"})
    assert (settings.interval_seconds, settings.timeout_seconds) == (15.0, 4.0)
    assert settings.header_pairs() == {"api-key": "abc,def", "tenant": "shop"}
    ours = otlp({"MONITORING_OTLP_INTERVAL": "30", "OTEL_METRIC_EXPORT_INTERVAL": "15000",
                 "MONITORING_OTLP_TIMEOUT": "3", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
                 "MONITORING_OTLP_HEADERS": "x=1", "OTEL_EXPORTER_OTLP_HEADERS": "a=general"})
    assert (ours.interval_seconds, ours.timeout_seconds) == (30.0, 3.0)
    assert ours.header_pairs() == {"x": "1"}
    defaults = otlp({})
    assert (defaults.interval_seconds, defaults.timeout_seconds, defaults.headers) == (
        60.0, 10.0, None)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("OTEL_METRIC_EXPORT_INTERVAL", "500", "a number of milliseconds >= 1000"),
    ("MONITORING_OTLP_INTERVAL", "0.5", "a number of seconds >= 1"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "a number"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "an http:// or https:// URL"),
    ("OTEL_RESOURCE_ATTRIBUTES", "prod", "key=value pairs"),
])
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        MonitoringConfig.from_env({variable: value})
    assert variable in str(raised.value) or "otlp.endpoint" in str(raised.value)
    assert message in str(raised.value)


def test_headers_are_a_secret_never_shown() -> None:
    config = MonitoringConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "api-key=topsecret"})
    assert "topsecret" not in repr(config.otlp) and "topsecret" not in str(config.public_dict())
    with pytest.raises(ConfigError) as raised:
        MonitoringConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "topsecret"})
    assert "OTEL_EXPORTER_OTLP_HEADERS" in str(raised.value)
    assert "topsecret" not in str(raised.value)


def test_resource_attributes_name_the_service_and_its_version_last() -> None:
    attributes = "service.name=from-resource,service.version=2.0.1,deployment.environment=prod"
    config = MonitoringConfig.from_env({"OTEL_RESOURCE_ATTRIBUTES": attributes})
    assert (config.service.service_name, config.service.version) == ("from-resource", "2.0.1")
    assert ("deployment.environment", "prod") in config.otlp.resource_attributes
    config = MonitoringConfig.from_env({
        "OTEL_RESOURCE_ATTRIBUTES": attributes, "OTEL_SERVICE_NAME": "otel-name",
        "MONITORING_SERVICE_VERSION": "2.1.0", "MONITORING_RELEASE": "9f3c2ab"})
    assert (config.service.service_name, config.service.version, config.service.release) == (
        "otel-name", "2.1.0", "9f3c2ab")
