"""Values checked where they enter: whole-value patterns, bounded label text, strict URLs and
the OTLP interval. Each case names the variable in its ConfigError."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import ConfigError, MetricError, MonitoringConfig
from asgi_monitor.alerting.identity import Identity
from asgi_monitor.build import metrics_parts
from asgi_monitor.collector import MetricsCollector
from asgi_monitor.config import MetricsSettings, OTLPSettings, ServiceSettings

# The limit on label text, written here rather than imported, so that moving it fails a test.
MAX_LABEL_VALUE_CHARS = 256


@pytest.mark.parametrize(("variable", "value"), [
    # "$" with re.match also matches before a trailing newline: each of these got through.
    ("MONITORING_NAMESPACE", "shop\n"),
    ("MONITORING_CONSTANT_LABELS", "env\n=prod"),
    ("MONITORING_SKIP_METHODS", "GET\n"),
    ("MONITORING_SKIP_METHODS", "GÉT"),
])
def test_a_trailing_newline_or_a_foreign_letter_is_refused(variable: str, value: str) -> None:
    # From code: the environment parser strips the ends of a value.
    section = {"MONITORING_NAMESPACE": "namespace", "MONITORING_CONSTANT_LABELS":
               "constant_labels", "MONITORING_SKIP_METHODS": "skip_methods"}[variable]
    code_value: object = value
    if section == "constant_labels":
        code_value = {value.partition("=")[0]: "prod"}
    elif section == "skip_methods":
        code_value = (value,)
    with pytest.raises(ConfigError, match=variable):
        MetricsSettings(**{section: code_value})


def test_custom_metric_and_label_names_are_checked_whole() -> None:
    settings, registry = MetricsSettings(), CollectorRegistry()
    metrics = MetricsCollector(settings, registry, metrics_parts(settings, registry))
    with pytest.raises(MetricError):
        metrics.increment_counter("signups_total\n")
    with pytest.raises(MetricError):
        metrics.increment_counter("signups_total", labels={"plan\n": "pro"})
    metrics.increment_counter("signups_total", labels={"plan": "pro"})


@pytest.mark.parametrize("variable", ["MONITORING_SERVICE_NAME", "MONITORING_INSTANCE"])
@pytest.mark.parametrize("value", [
    "shop\nBcc: everyone@example.com",  # a newline in a mail Subject
    "shop\x1b[31m",  # an escape sequence in a terminal's log
    "shop\x85",  # C1 next line
    "x" * (MAX_LABEL_VALUE_CHARS + 1),
])
def test_service_and_instance_are_bounded_plain_text(variable: str, value: str) -> None:
    field = "service_name" if variable == "MONITORING_SERVICE_NAME" else "instance"
    with pytest.raises(ConfigError, match=variable) as raised:
        ServiceSettings(**{field: value})
    # The error says what was wrong without echoing 257 characters back.
    assert len(str(raised.value)) < 400


@pytest.mark.parametrize("variable", ["MONITORING_SERVICE_NAME", "MONITORING_INSTANCE"])
def test_the_longest_plain_service_and_instance_are_accepted(variable: str) -> None:
    value = "é" * MAX_LABEL_VALUE_CHARS
    config = MonitoringConfig.from_env({variable: value})
    assert value in (config.service.service_name, config.service.instance)


def test_an_app_title_that_would_break_a_label_is_passed_over() -> None:
    class App:
        title = "Shop\nBcc: x@example.com"

    identity = Identity(ServiceSettings())
    identity.name_after(App())
    assert "\n" not in identity.labels()["service"]


@pytest.mark.parametrize("value", ["x" * (MAX_LABEL_VALUE_CHARS + 1), "prod\tEU", "prod\x7f"])
def test_constant_label_values_are_bounded_plain_text(value: str) -> None:
    with pytest.raises(ConfigError, match="MONITORING_CONSTANT_LABELS"):
        MetricsSettings(constant_labels={"env": value})


def test_a_constant_label_value_at_the_limit_is_accepted() -> None:
    value = "v" * MAX_LABEL_VALUE_CHARS
    assert MetricsSettings(constant_labels={"env": value}).constant_labels == (("env", value),)


@pytest.mark.parametrize("name", ["job", "instance"])
def test_job_and_instance_are_refused_as_constant_labels(name: str) -> None:
    with pytest.raises(ConfigError, match="MONITORING_CONSTANT_LABELS") as raised:
        MonitoringConfig.from_env({"MONITORING_CONSTANT_LABELS": f"{name}=shop"})
    assert f"exported_{name}" in str(raised.value) and "scrape target" in str(raised.value)


@pytest.mark.parametrize("url", [
    "http://a b/v1/metrics", "http://x:99999/", "http://[::1", "http://x:0/", "http://x:port/",
    "http:///v1/metrics", "ftp://x/", "collector:4318", "http://[not-an-ip]/",
    "http://x/\nHost: evil",
])
def test_an_otlp_endpoint_must_parse_whole(url: str) -> None:
    with pytest.raises(ConfigError, match="MONITORING_OTLP_ENDPOINT"):
        OTLPSettings(endpoint=url)


@pytest.mark.parametrize("url", [
    "HTTP://X/", "Https://collector:4318/v1/metrics", "http://[::1]:4318/v1/metrics",
    "http://10.0.0.7:65535/", "http://collector/v1/metrics?tenant=a",
])
def test_a_valid_otlp_endpoint_is_accepted_whatever_the_scheme_case(url: str) -> None:
    assert MonitoringConfig.from_env({"MONITORING_OTLP_ENDPOINT": url}).otlp.endpoint == url


@pytest.mark.parametrize("interval", ["0.001", "0.999", "0", "-1"])
def test_an_otlp_interval_under_a_second_is_refused(interval: str) -> None:
    with pytest.raises(ConfigError, match="MONITORING_OTLP_INTERVAL.*>= 1"):
        MonitoringConfig.from_env({"MONITORING_OTLP_ENDPOINT": "http://c:4318/v1/metrics",
                                   "MONITORING_OTLP_INTERVAL": interval})


def test_an_otlp_interval_of_one_second_is_accepted() -> None:
    config = MonitoringConfig.from_env({"MONITORING_OTLP_INTERVAL": "1"})
    assert config.otlp.interval_seconds == 1.0
