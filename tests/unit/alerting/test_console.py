"""The console channel: a resolution is logged where its firing was."""

from __future__ import annotations

import logging

import pytest

from asgi_monitor.alerting import AlertSeverity
from asgi_monitor.alerting.channels import ConsoleChannel
from asgi_monitor.alerting.models import Alert, AlertState


@pytest.mark.parametrize("severity", list(AlertSeverity))
async def test_resolved_is_logged_at_the_level_of_firing(
    severity: AlertSeverity, caplog: pytest.LogCaptureFixture
) -> None:
    # WARNING: the level a default logging set-up shows; INFO alerts are below it both ways.
    caplog.set_level(logging.WARNING, logger="asgi_monitor.alerts")
    alert = Alert("slow_responses", severity, AlertState.FIRING, "slow")
    await ConsoleChannel().deliver(alert)
    alert.state = AlertState.RESOLVED
    await ConsoleChannel().deliver(alert)
    records = [r for r in caplog.records if r.name == "asgi_monitor.alerts"]
    if severity is AlertSeverity.INFO:
        assert records == []
        return
    firing, resolved = records
    assert resolved.levelno == firing.levelno
    assert "FIRING" in firing.getMessage() and "RESOLVED" in resolved.getMessage()
