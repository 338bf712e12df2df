"""The SLO severities page and ticket: shown as such by every channel, ranked, logged and
coloured as critical and warning."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.alerting import AlertSeverity
from asgi_monitor.alerting.channels import ConsoleChannel
from asgi_monitor.alerting.models import Alert, AlertState
from asgi_monitor.alerting.payloads import alertmanager_alerts, slack_message
from asgi_monitor.config import SystemSettings
from asgi_monitor.web.snapshot import overall_status, status_class


def burn(severity: AlertSeverity) -> Alert:
    return Alert("slo_api_burn_1h_5m", severity, AlertState.FIRING, "burning",
                 labels={"slo": "api"})


@pytest.mark.parametrize(("severity", "level", "log_level", "icon"), [
    (AlertSeverity.PAGE, AlertSeverity.CRITICAL, logging.ERROR, ":red_circle:"),
    (AlertSeverity.TICKET, AlertSeverity.WARNING, logging.WARNING, ":warning:"),
])
async def test_page_and_ticket_go_through_the_channels_as_such(
    severity: AlertSeverity, level: AlertSeverity, log_level: int, icon: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert severity.level is level and level.level is level
    alert = burn(severity)
    with caplog.at_level(logging.INFO, logger="asgi_monitor.alerts"):
        await ConsoleChannel().deliver(alert)
    (record,) = caplog.records
    assert record.levelno == log_level and f"[{severity.value}]" in record.getMessage()
    (sent,) = alertmanager_alerts(alert, now=datetime.now(timezone.utc), resend_interval=60,
                                  external_url="", alerts_path="/api/alerts")
    assert sent["labels"]["severity"] == severity.value
    slack = slack_message(alert, external_url="", alerts_path="/api/alerts")
    fields = [f["text"] for f in slack["blocks"][1]["fields"]]
    assert icon in str(slack) and f"*Severity:*\n{severity.value}" in fields
    assert status_class(severity.value) == level.value


def test_a_firing_page_makes_the_badge_critical_and_sorts_with_critical() -> None:
    monitor = build_monitor(MonitoringConfig(system=SystemSettings(metrics=False)),
                            CollectorRegistry())
    alerts = [burn(AlertSeverity.TICKET), burn(AlertSeverity.WARNING), burn(AlertSeverity.PAGE)]
    monitor.alerts.active = lambda: alerts  # type: ignore[method-assign]
    status = overall_status(monitor)
    assert status["status"] == "critical"
    assert status["firing"] == {"page": 1, "ticket": 1, "warning": 1}
