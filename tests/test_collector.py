from __future__ import annotations

from collections.abc import Callable

from asgi_monitor.monitor import Monitor


def test_custom_metric_labels_stay_bounded(make_monitor: Callable[..., Monitor]) -> None:
    monitor = make_monitor(max_series_per_metric=100)
    collector = monitor.collector
    for i in range(5000):
        collector.increment_counter("signups_total", labels={"plan": f"plan-{i}"})
    samples = [s for m in monitor.registry.collect() if m.name == "signups"
               for s in m.samples if s.name == "signups_total"]
    assert len(samples) == 101
    value = monitor.registry.get_sample_value
    assert value("signups_total", {"plan": "<overflow>"}) == 4900
    assert value("signups_total", {"plan": "plan-7"}) == 1
    assert value("asgi_monitor_series_dropped_total", {"metric": "signups_total"}) == 4900


def test_custom_gauge_and_histogram(monitor: Monitor) -> None:
    collector = monitor.collector
    collector.set_gauge("queue_depth", 4, labels={"queue": "mail"})
    collector.set_gauge("queue_depth", 2, labels={"queue": "mail"})
    collector.record_histogram("job_seconds", 1.5)
    value = monitor.registry.get_sample_value
    assert value("queue_depth", {"queue": "mail"}) == 2
    assert value("job_seconds_sum") == 1.5
