from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MetricError, MonitoringConfig
from asgi_monitor.build import metrics_parts
from asgi_monitor.collector import MetricsCollector
from asgi_monitor.config import MetricsSettings


def make(registry: CollectorRegistry, **config: object) -> MetricsCollector:
    settings = MonitoringConfig(**config).metrics  # type: ignore[arg-type]
    return MetricsCollector(settings, registry, metrics_parts(settings, registry))


def test_custom_metrics_created_on_first_use(registry: CollectorRegistry) -> None:
    metrics = make(registry)
    metrics.increment_counter("custom_events_total", labels={"event_type": "signup"})
    metrics.increment_counter("custom_events_total", labels={"event_type": "signup"}, value=2)
    metrics.set_gauge("active_connections", 42)
    metrics.record_histogram("operation_duration_seconds", 1.5)
    metrics.record_histogram("operation_duration_seconds", 0.2)
    assert registry.get_sample_value("custom_events_total", {"event_type": "signup"}) == 3
    assert registry.get_sample_value("active_connections") == 42
    assert registry.get_sample_value("operation_duration_seconds_count") == 2
    assert registry.get_sample_value("operation_duration_seconds_sum") == pytest.approx(1.7)


def test_custom_histogram_buckets(registry: CollectorRegistry) -> None:
    metrics = make(registry)
    metrics.record_histogram("job_seconds", 3, buckets=(1, 5))
    assert registry.get_sample_value("job_seconds_bucket", {"le": "1.0"}) == 0
    assert registry.get_sample_value("job_seconds_bucket", {"le": "5.0"}) == 1


@pytest.mark.parametrize("name", ["", "1abc", "has-dash", "spaces here", "é"])
def test_invalid_names_raise(registry: CollectorRegistry, name: str) -> None:
    with pytest.raises(MetricError, match="invalid metric name"):
        make(registry).increment_counter(name)


def test_invalid_label_name_raises(registry: CollectorRegistry) -> None:
    with pytest.raises(MetricError, match="invalid label name"):
        make(registry).increment_counter("x_total", labels={"bad-label": "v"})


def test_negative_increment_raises(registry: CollectorRegistry) -> None:
    with pytest.raises(MetricError, match="can only go up"):
        make(registry).increment_counter("x_total", value=-1)


def test_changed_label_set_raises(registry: CollectorRegistry) -> None:
    metrics = make(registry)
    metrics.increment_counter("x_total", labels={"a": "1"})
    with pytest.raises(MetricError, match="keeps one label set"):
        metrics.increment_counter("x_total", labels={"b": "1"})


def test_changed_type_raises(registry: CollectorRegistry) -> None:
    metrics = make(registry)
    metrics.set_gauge("thing", 1)
    with pytest.raises(MetricError, match="is a gauge, not a counter"):
        metrics.increment_counter("thing")


def test_name_clash_with_builtin_metric_raises(registry: CollectorRegistry) -> None:
    with pytest.raises(MetricError, match="cannot create"):
        make(registry).increment_counter("http_requests_total")


def test_custom_label_values_are_bounded(registry: CollectorRegistry) -> None:
    metrics = make(registry, metrics=MetricsSettings(max_series=10))
    for i in range(100):
        metrics.increment_counter("user_input_total", labels={"v": f"value-{i}"})
    values = {s.labels["v"] for m in registry.collect() if m.name == "user_input"
              for s in m.samples if s.name == "user_input_total"}
    assert len(values) == 11  # ten real values and the overflow series
    assert registry.get_sample_value("user_input_total", {"v": "<overflow>"}) == 90
    assert registry.get_sample_value("asgi_monitor_series_dropped_total",
                                     {"metric": "user_input_total"}) == 90


def test_raw_registry_is_reachable(registry: CollectorRegistry) -> None:
    metrics = make(registry)
    assert metrics.registry is registry


def test_internal_errors_are_counted_and_log_rate_limited(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = make(registry)
    for _ in range(5):
        metrics.internal_error("record", RuntimeError("boom"))
    assert registry.get_sample_value("asgi_monitor_internal_errors_total",
                                     {"where": "record"}) == 5
    assert len([r for r in caplog.records if "record" in r.getMessage()]) == 1
