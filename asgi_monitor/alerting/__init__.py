"""Alerting: rules over the collected metrics and health, with notification channels.

::

    from asgi_monitor import get_alert_manager
    from asgi_monitor.alerting import AlertSeverity

    get_alert_manager().register_rule("custom_alert", "Custom condition detected", condition,
                                      AlertSeverity.WARNING, cooldown_minutes=10)

Channels live in :mod:`.channels`, the default rules in :mod:`.rules`, silences in
:mod:`.silences`, the single-sender lock in :mod:`.leader`, the file lock both take in
:mod:`.locks`, the sender's alerts shared with the other workers in :mod:`.published`, and the
safe opening of those files (a shared directory is untrusted) in :mod:`.files`.
"""

from __future__ import annotations

from .channels import Channel
from .manager import AlertManager
from .models import Alert, AlertRule, AlertSeverity, AlertState, Silence

__all__ = ["Alert", "AlertManager", "AlertRule", "AlertSeverity", "AlertState", "Channel",
           "Silence"]
