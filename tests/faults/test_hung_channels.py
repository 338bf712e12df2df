"""A channel that hangs stalls nothing else: a real HTTP server that accepts and never answers
as the webhook, next to a working channel, under a running monitor.

Evaluation only queues; each channel's worker delivers its own queue. The stuck channel shows in
its queue metrics and the non-critical ``alert_channels`` health check; its full queue drops the
oldest notifications and counts them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry
from support import HangingSink, HttpSink, sample

from asgi_monitor import (
    AlertSettings,
    HealthSettings,
    MonitoringConfig,
    SystemSettings,
    WebhookSettings,
    build_monitor,
)
from asgi_monitor.alerting import AlertSeverity
from asgi_monitor.health.models import HealthStatus
from asgi_monitor.monitor import Monitor


def monitor_for(registry: CollectorRegistry, webhook: str, slack: str | None = None,
                **alerts: Any) -> Monitor:
    settings: dict[str, Any] = {
        "default_rules": False, "console_enabled": False, "check_interval_seconds": 0.05,
        "channel_timeout_seconds": 5, "channel_retries": 2, **alerts}
    return build_monitor(MonitoringConfig(
        alerts=AlertSettings(**settings),
        webhooks=WebhookSettings(url=webhook, slack_url=slack),
        health=HealthSettings(default_checks=True, interval_seconds=3600),
        system=SystemSettings(metrics=False)), registry)


def rules(monitor: Monitor, holds: dict[str, bool]) -> None:
    for name in holds:
        monitor.alerts.register_rule(name, f"{name} is wrong", lambda n=name: holds[n],
                                     AlertSeverity.CRITICAL)


async def until(condition: Any, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_a_hung_webhook_delays_no_other_rules_notification() -> None:
    registry = CollectorRegistry()
    async with HangingSink() as hung, HttpSink() as slack:
        monitor = monitor_for(registry, hung.url, slack.url)
        holds = {"first_rule": True, "second_rule": False}
        rules(monitor, holds)
        async with monitor.running():
            await hung.wait_for(1)  # the webhook holds first_rule's notification, unanswered
            await slack.wait_for(1)
            holds["second_rule"] = True
            # Within a second, although the webhook's timeouts and retries take 16.5 s.
            await slack.wait_for(2, timeout=1.0)
            assert "second_rule" in slack.json(1)["text"]
            # The webhook's own queue holds second_rule's notification behind the hung one.
            await until(lambda: sample(registry, "asgi_monitor_alert_channel_queue_depth",
                                       channel="webhook") == 2)
            assert len(hung.requests) == 1
            await until(lambda: sample(registry, "asgi_monitor_alert_notifications_total",
                                       channel="slack", outcome="sent") == 2)
            assert sample(registry, "asgi_monitor_alert_channel_queue_depth",
                          channel="slack") == 0
            oldest = sample(registry, "asgi_monitor_alert_channel_oldest_queued_seconds",
                            channel="webhook")
            assert oldest is not None and oldest > 0
            assert sample(registry, "asgi_monitor_alert_channel_oldest_queued_seconds",
                          channel="slack") == 0
            assert [a.rule for a in monitor.alerts.active()] == ["first_rule", "second_rule"]
        assert monitor.task_names == []  # the channel workers stopped with the monitor


async def test_a_full_queue_drops_the_oldest_counts_them_and_warns() -> None:
    registry = CollectorRegistry()
    async with HangingSink() as hung:
        monitor = monitor_for(registry, hung.url, channel_queue_size=2, channel_retries=0,
                              channel_timeout_seconds=30)
        rules(monitor, {f"rule_{n}": True for n in range(5)})
        async with monitor.running():
            # One evaluation queues five: the last two stay, one of them is being sent.
            await hung.wait_for(1)
            assert sample(registry, "asgi_monitor_alert_notifications_dropped_total",
                          channel="webhook") == 3
            assert sample(registry, "asgi_monitor_alert_channel_queue_depth",
                          channel="webhook") == 2
            assert b'"alertname":"rule_3"' in hung.requests[0][3]  # the oldest went first

            check = monitor.health.checks["alert_channels"]
            assert check.critical is False and "readiness" not in check.groups
            result = await monitor.health.run_check("alert_channels")
            assert result.status is HealthStatus.WARNING
            assert "webhook: 2 queued" in result.message
            assert "webhook: 3 dropped" in result.message
            assert result.details["webhook"]["dropped"] == 3


async def test_failing_deliveries_turn_the_check_to_warning() -> None:
    registry = CollectorRegistry()
    async with HangingSink() as hung:
        monitor = monitor_for(registry, hung.url, channel_retries=0,
                              channel_timeout_seconds=0.1)
        rules(monitor, {"one": True})
        async with monitor.running():
            assert (await monitor.health.run_check("alert_channels")).status \
                is HealthStatus.HEALTHY
            for name in ("two", "three"):
                monitor.alerts.register_rule(name, "d", lambda: True)
            await until(lambda: sample(registry, "asgi_monitor_alert_notifications_total",
                                       channel="webhook", outcome="failed") == 3)
            result = await monitor.health.run_check("alert_channels")
            assert result.status is HealthStatus.WARNING
            assert result.message == "webhook: last 3 deliveries failed"
            assert sample(registry, "asgi_monitor_alert_channel_queue_depth",
                          channel="webhook") == 0
