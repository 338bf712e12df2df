"""The alert manager's own metrics, read on scrape: evaluation failures, notifications, alerts."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .manager import AlertManager
from .models import AlertState

__all__ = ["AlertMetrics"]


class AlertMetrics(Collector):
    def __init__(self, manager: AlertManager, prefix: str = "") -> None:
        self._manager = manager
        self._prefix = prefix

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        p, manager = self._prefix, self._manager
        failures = CounterMetricFamily(
            f"{p}asgi_monitor_alert_evaluation_failures",
            "Alert rule evaluations that raised or timed out (read as no data).",
            labels=("rule",))
        for rule, count in sorted(manager.evaluation_failures.items()):
            failures.add_metric((rule,), count)
        notifications = CounterMetricFamily(
            f"{p}asgi_monitor_alert_notifications",
            "Alert notifications by channel and outcome (after retries).",
            labels=("channel", "outcome"))
        for (channel, ok), count in sorted(manager.notification_counts.items()):
            notifications.add_metric((channel, "sent" if ok else "failed"), count)
        active = GaugeMetricFamily(f"{p}asgi_monitor_alerts",
                                   "Alerts currently pending or firing.", labels=("state",))
        alerts = manager.active()
        for state in (AlertState.PENDING, AlertState.FIRING):
            active.add_metric((state.value,), sum(a.state is state for a in alerts))
        yield from (failures, notifications, active)
