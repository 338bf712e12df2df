"""The alert manager's own metrics, read on scrape: evaluation failures, notifications, alerts."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .leader import LeaderLock
from .manager import AlertManager
from .models import AlertState

__all__ = ["AlertMetrics"]


class AlertMetrics(Collector):
    def __init__(self, manager: AlertManager, prefix: str = "", *,
                 leader: LeaderLock | None = None) -> None:
        self._manager = manager
        self._prefix = prefix
        self._leader = leader

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
        # Per channel name (two webhooks add up): a stuck channel is a growing depth and age.
        depth = GaugeMetricFamily(f"{p}asgi_monitor_alert_channel_queue_depth",
                                  "Notifications waiting or being sent, per channel.",
                                  labels=("channel",))
        oldest = GaugeMetricFamily(
            f"{p}asgi_monitor_alert_channel_oldest_queued_seconds",
            "Age of the oldest notification a channel has not delivered yet (0 when idle).",
            labels=("channel",))
        dropped = CounterMetricFamily(
            f"{p}asgi_monitor_alert_notifications_dropped",
            "Notifications dropped because their channel's queue was full (oldest first).",
            labels=("channel",))
        by_name: dict[str, tuple[int, float, int]] = {}
        for s in manager.channel_status():
            d, age, lost = by_name.get(s.channel, (0, 0.0, 0))
            by_name[s.channel] = (d + s.depth, max(age, s.oldest_age_seconds), lost + s.dropped)
        for channel, (d, age, lost) in sorted(by_name.items()):
            depth.add_metric((channel,), d)
            oldest.add_metric((channel,), age)
            dropped.add_metric((channel,), lost)
        yield from (failures, notifications, active, depth, oldest, dropped)
        if self._leader is not None and self._leader.path is not None:
            # Per worker (read in the one that answers the scrape): above 0, no worker has been
            # seen evaluating the rules for over two intervals.
            yield GaugeMetricFamily(
                f"{p}asgi_monitor_alerting_leaderless_seconds",
                "Seconds this worker has seen no worker evaluate the alert rules, once over two "
                "alert intervals (0 while a leader is seen).",
                value=self._leader.leaderless_seconds())
