"""What each channel sends: Alertmanager's webhook and API shapes, Slack's, an e-mail.

Shapes follow Alertmanager's own code: the webhook ``Message`` (``notify/webhook/webhook.go``:
``version`` "4", ``groupKey``, ``truncatedAlerts`` plus ``template.Data``: ``status``,
``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``,
``alerts[]`` with ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL``, ``fingerprint``), and the ``postableAlerts`` of ``POST /api/v2/alerts``.
We notify per alert, so each message is one group holding one alert, grouped as
``deploy/alertmanager.yml`` groups: by ``alertname``, ``service`` and ``instance``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

from .models import Alert, AlertState

__all__ = ["alertmanager_alerts", "email_message", "slack_message", "status",
           "webhook_message"]

RECEIVER = "asgi_monitor"
ALERTS_PATH = "/api/alerts"  # PathSettings.alerts' default
GROUP_BY = ("alertname", "service", "instance")
# Go's zero time, which Alertmanager writes as endsAt of an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"


def status(alert: Alert) -> str:
    return "resolved" if alert.state is AlertState.RESOLVED else "firing"


def _rfc3339(moment: datetime | None) -> str:
    if moment is None:
        return ZERO_TIME
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _annotations(alert: Alert) -> dict[str, str]:
    annotations = {"summary": alert.summary, **alert.annotations}
    if alert.description and "description" not in annotations:
        annotations["description"] = alert.description
    if alert.value is not None:
        annotations.setdefault("value", f"{alert.value:g}")
    return annotations


def _generator_url(external_url: str, alerts_path: str = ALERTS_PATH) -> str:
    """Where the alert can be seen: the alerts API under the app's public URL."""
    return external_url.rstrip("/") + alerts_path if external_url else ""


def webhook_message(alert: Alert, *, external_url: str = "", alerts_path: str = ALERTS_PATH,
                    receiver: str = RECEIVER) -> dict[str, Any]:
    """Alertmanager's v4 webhook JSON for one alert."""
    labels = alert.identity
    group = {name: labels[name] for name in GROUP_BY if name in labels}
    key = ", ".join(f"{name}={json.dumps(value)}" for name, value in sorted(group.items()))
    return {
        "version": "4",
        "groupKey": f"{{}}:{{{key}}}",
        "truncatedAlerts": 0,
        "status": status(alert),
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": _annotations(alert),
        "externalURL": external_url,
        "alerts": [{
            "status": status(alert),
            "labels": labels,
            "annotations": _annotations(alert),
            "startsAt": _rfc3339(alert.fired_at or alert.active_since),
            "endsAt": _rfc3339(alert.resolved_at),
            "generatorURL": _generator_url(external_url, alerts_path),
            "fingerprint": alert.fingerprint,
        }],
    }


def alertmanager_alerts(alert: Alert, *, now: datetime, resend_interval: float,
                        external_url: str = "",
                        alerts_path: str = ALERTS_PATH) -> list[dict[str, Any]]:
    """The body of Alertmanager's ``POST /api/v2/alerts``.

    As Prometheus does, a firing alert carries an ``endsAt`` a few resend intervals ahead, so
    Alertmanager resolves it by itself if we stop re-sending (a dead process); a resolved one
    carries the time it resolved.
    """
    ends = alert.resolved_at or now + timedelta(seconds=4 * resend_interval)
    return [{
        "labels": alert.identity,
        "annotations": _annotations(alert),
        "startsAt": _rfc3339(alert.fired_at or alert.active_since or now),
        "endsAt": _rfc3339(ends),
        "generatorURL": _generator_url(external_url, alerts_path),
    }]


_SLACK_ICON = {"resolved": ":white_check_mark:", "critical": ":red_circle:",
               "warning": ":warning:", "info": ":information_source:"}


def _headline(alert: Alert) -> str:
    word = status(alert).upper()
    service = alert.labels.get("service")
    where = f" on {service}" if service else ""
    return f"[{word}] {alert.rule}{where} ({alert.severity.value}): {alert.summary}"


def _origin(alert: Alert) -> list[tuple[str, str]]:
    return [(name.capitalize(), alert.labels[name]) for name in ("service", "instance")
            if alert.labels.get(name)]


def slack_message(alert: Alert, *, external_url: str = "",
                  alerts_path: str = ALERTS_PATH) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notifications, fallback) and ``blocks``."""
    state = status(alert)
    icon = _SLACK_ICON["resolved" if state == "resolved" else alert.severity.level.value]
    fields = [f"*Rule:*\n{alert.rule}", f"*Severity:*\n{alert.severity.value}"]
    fields += [f"*{name}:*\n{value}" for name, value in _origin(alert)]
    if alert.value is not None:
        fields.append(f"*Value:*\n{alert.value:g}")
    since = alert.fired_at or alert.active_since
    if since is not None:
        fields.append(f"*Since:*\n{_rfc3339(since)}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{_headline(alert)}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    details = alert.description or alert.annotations.get("description", "")
    runbook = alert.annotations.get("runbook_url")
    link = _generator_url(external_url, alerts_path)
    context = [text for text in (details, f"<{runbook}|Runbook>" if runbook else "",
                                 f"<{link}|Alerts>" if link else "")
               if text]
    if context:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": text} for text in context]})
    return {"text": _headline(alert), "blocks": blocks}


def email_message(alert: Alert, *, sender: str, recipients: tuple[str, ...],
                  external_url: str = "", alerts_path: str = ALERTS_PATH) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = _headline(alert)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    lines = [
        _headline(alert),
        "",
        f"Rule:        {alert.rule}",
        f"Severity:    {alert.severity.value}",
        f"Status:      {status(alert)}",
    ]
    lines += [f"{name + ':':<13}{value}" for name, value in _origin(alert)]
    if alert.value is not None:
        lines.append(f"Value:       {alert.value:g}")
    lines.append(f"Since:       {_rfc3339(alert.fired_at or alert.active_since)}")
    if alert.resolved_at is not None:
        lines.append(f"Resolved at: {_rfc3339(alert.resolved_at)}")
    if alert.description:
        lines += ["", alert.description]
    for name, value in sorted(alert.annotations.items()):
        lines.append(f"{name}: {value}")
    if external_url:
        lines += ["", f"Alerts: {_generator_url(external_url, alerts_path)}"]
    message.set_content("\n".join(lines) + "\n")
    return message
