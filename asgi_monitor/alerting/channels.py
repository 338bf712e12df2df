"""Notification channels: console, e-mail, webhook, Slack and Alertmanager.

Every channel has a timeout per attempt and retries with exponential backoff
(``backoff * 2**n`` seconds between attempts); :meth:`Channel.deliver` never raises and returns
the outcome that the manager records on the alert (``channel``, ``ok``, ``at``, ``error``). Each
channel has its own queue and worker (delivery.py), so a slow or failing one delays or blocks no
other. URLs of webhooks are secrets: they never appear in an outcome or a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

# httpx and aiosmtplib are imported by the channels that send with them, when they first send:
# most apps enable neither, and `import asgi_monitor` stays light.
from ..config.alerts import AlertSettings, EmailSettings, WebhookSettings
from ..secret import MASK, Secret
from .models import Alert, AlertSeverity
from .payloads import (
    ALERTS_PATH,
    alertmanager_alerts,
    email_message,
    slack_message,
    status,
    webhook_message,
)

__all__ = ["AlertmanagerChannel", "Channel", "ConsoleChannel", "EmailChannel", "SlackChannel",
           "WebhookChannel", "build_channels", "sign"]

logger = logging.getLogger("asgi_monitor.alerts")

SIGNATURE_HEADER = "X-Asgi-Monitor-Signature"
TIMESTAMP_HEADER = "X-Asgi-Monitor-Timestamp"


class ChannelError(Exception):
    """A delivery failed in a way worth a short message (e.g. an HTTP status)."""


class Channel:
    """Base class: subclasses implement :meth:`send` (raise on failure)."""

    name = "channel"
    # Channels that want the alert again while it keeps firing (Alertmanager expects re-sends),
    # independently of the rule's cooldown; None for the others.
    resend_interval: float | None = None

    def __init__(self, *, timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
                 send_resolved: bool = True, external_url: str = "",
                 alerts_path: str = ALERTS_PATH,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.send_resolved = send_resolved
        self.external_url = external_url
        self.alerts_path = alerts_path  # generatorURL and links: external_url + alerts_path
        self._sleep = sleep

    async def send(self, alert: Alert) -> None:
        raise NotImplementedError

    def secrets(self) -> tuple[str, ...]:
        """Values to blank out of error messages."""
        return ()

    async def deliver(self, alert: Alert) -> dict[str, Any]:
        error = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                await self._sleep(self.backoff * 2 ** (attempt - 1))
            attempts += 1
            try:
                await asyncio.wait_for(self.send(alert), self.timeout)
            except asyncio.TimeoutError:
                error = f"timed out after {self.timeout:g}s"
            except Exception as exc:
                error = self._describe(exc)
            else:
                return _outcome(self.name, True, None, attempts)
        logger.warning("alert %s: channel %s failed after %d attempt(s): %s", alert.rule,
                       self.name, attempts, error)
        return _outcome(self.name, False, error, attempts)

    def _describe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in self.secrets():
            if secret:
                text = text.replace(secret, MASK)
        return text


def _outcome(channel: str, ok: bool, error: str | None, attempts: int) -> dict[str, Any]:
    return {"channel": channel, "ok": ok, "at": datetime.now(timezone.utc).isoformat(),
            "error": error, "attempts": attempts}


class ConsoleChannel(Channel):
    """One log line per notification on the ``asgi_monitor.alerts`` logger."""

    name = "console"
    _LEVELS = {AlertSeverity.INFO: logging.INFO, AlertSeverity.WARNING: logging.WARNING,
               AlertSeverity.CRITICAL: logging.ERROR}

    async def send(self, alert: Alert) -> None:
        # A resolution at the firing's level: whoever sees the one (a WARNING threshold, log
        # alerting on ERROR) must see the other, or the alert looks like it never ended.
        level = self._LEVELS[alert.severity.level]
        value = "" if alert.value is None else f" (value {alert.value:g})"
        service, instance = alert.labels.get("service", ""), alert.labels.get("instance", "")
        origin = f" {service}@{instance}" if service or instance else ""
        logger.log(level, "alert %s %s [%s]%s: %s%s", alert.rule, status(alert).upper(),
                   alert.severity.value, origin, alert.summary, value,
                   extra={"alert": alert.rule, "alert_state": status(alert),
                          "severity": alert.severity.value, "service": service,
                          "instance": instance})


class EmailChannel(Channel):
    """Plain-text e-mail through aiosmtplib (implicit TLS or STARTTLS)."""

    name = "email"

    def __init__(self, *, hostname: str, port: int, sender: str, recipients: tuple[str, ...],
                 username: str = "", password: Secret | None = None, use_tls: bool = False,
                 start_tls: bool = True, ca_file: str = "", **options: Any) -> None:
        super().__init__(**options)
        self.hostname = hostname
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.username = username
        self.password = password
        self.use_tls = use_tls
        self.start_tls = start_tls
        self.ca_file = ca_file or None  # None: aiosmtplib verifies against the system CAs

    def secrets(self) -> tuple[str, ...]:
        return (self.password.get_secret_value(),) if self.password else ()

    async def send(self, alert: Alert) -> None:
        import aiosmtplib
        message = email_message(alert, sender=self.sender, recipients=self.recipients,
                                external_url=self.external_url, alerts_path=self.alerts_path)
        await aiosmtplib.send(
            message, sender=self.sender, recipients=list(self.recipients),
            hostname=self.hostname, port=self.port, username=self.username or None,
            password=self.password.get_secret_value() if self.password else None,
            use_tls=self.use_tls, start_tls=False if self.use_tls else self.start_tls,
            cert_bundle=self.ca_file, timeout=self.timeout)


class _HTTPChannel(Channel):
    """POSTs JSON to a URL held as a :class:`Secret`; a non-2xx answer is a failure."""

    def __init__(self, url: Secret, **options: Any) -> None:
        super().__init__(**options)
        self.url = url

    def secrets(self) -> tuple[str, ...]:
        # The whole URL, and the parts that carry the credential if only a part is echoed.
        url = self.url.get_secret_value()
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return tuple(p for p in (url, path if len(path) > 1 else "", parts.password or "",
                                 parts.username or "") if p)

    def body(self, alert: Alert) -> Any:
        raise NotImplementedError

    def headers(self, content: bytes) -> dict[str, str]:
        return {}

    def target(self) -> str:
        return self.url.get_secret_value()

    async def send(self, alert: Alert) -> None:
        import httpx
        content = json.dumps(self.body(alert), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "asgi_monitor",
                   **self.headers(content)}
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.post(self.target(), content=content, headers=headers)
        if not response.is_success:
            # Only the status: the URL is a secret and the body may echo it.
            raise ChannelError(f"HTTP {response.status_code}")


def sign(secret: str, timestamp: str, content: bytes) -> str:
    """The signature header's value: ``sha256=`` HMAC-SHA256 of ``"<timestamp>." + body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + content, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class WebhookChannel(_HTTPChannel):
    """Alertmanager's v4 webhook JSON, optionally signed (see :func:`sign`)."""

    name = "webhook"

    def __init__(self, url: Secret, *, secret: Secret | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self.secret = secret

    def secrets(self) -> tuple[str, ...]:
        return (*super().secrets(), *((self.secret.get_secret_value(),) if self.secret else ()))

    def body(self, alert: Alert) -> Any:
        return webhook_message(alert, external_url=self.external_url,
                               alerts_path=self.alerts_path)

    def headers(self, content: bytes) -> dict[str, str]:
        if not self.secret:
            return {}
        # The timestamp is signed too, so a captured request cannot be replayed later.
        timestamp = str(int(time.time()))
        return {TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.secret.get_secret_value(), timestamp, content)}


class SlackChannel(_HTTPChannel):
    """A Slack incoming webhook (``text`` plus ``blocks``)."""

    name = "slack"

    def body(self, alert: Alert) -> Any:
        return slack_message(alert, external_url=self.external_url,
                             alerts_path=self.alerts_path)


class AlertmanagerChannel(_HTTPChannel):
    """Pushes to an Alertmanager (``POST /api/v2/alerts``), re-sent while the alert fires.

    Alertmanager then does the grouping, routing, silences and its own repeat interval.
    """

    name = "alertmanager"

    def __init__(self, url: Secret, *, resend_interval: float = 60.0, **options: Any) -> None:
        super().__init__(url, **options)
        self.resend_interval = resend_interval

    def target(self) -> str:
        return self.url.get_secret_value().rstrip("/") + "/api/v2/alerts"

    def body(self, alert: Alert) -> Any:
        assert self.resend_interval is not None
        return alertmanager_alerts(alert, now=datetime.now(timezone.utc),
                                   resend_interval=self.resend_interval,
                                   external_url=self.external_url,
                                   alerts_path=self.alerts_path)


def build_channels(alerts: AlertSettings, email: EmailSettings, webhooks: WebhookSettings,
                   *, alerts_path: str = ALERTS_PATH) -> list[Channel]:
    """The channels the configuration enables; ``alerts_path`` is where the alerts API answers
    (``PathSettings.alerts``), for the links the messages carry."""
    options: dict[str, Any] = {"timeout": alerts.channel_timeout_seconds,
                               "retries": alerts.channel_retries,
                               "send_resolved": alerts.send_resolved,
                               "external_url": alerts.external_url,
                               "alerts_path": alerts_path}
    channels: list[Channel] = []
    if alerts.console_enabled:
        channels.append(ConsoleChannel(**options))
    if email.enabled:
        channels.append(EmailChannel(
            hostname=email.server, port=email.port, sender=email.from_address,
            recipients=email.recipients or (email.from_address,), username=email.username,
            password=email.password, use_tls=email.use_tls,
            start_tls=email.starttls, ca_file=email.ca_file, **options))
    if webhooks.url:
        channels.append(WebhookChannel(webhooks.url,
                                       secret=webhooks.secret, **options))
    if webhooks.slack_url:
        channels.append(SlackChannel(webhooks.slack_url, **options))
    if webhooks.alertmanager_url:
        channels.append(AlertmanagerChannel(webhooks.alertmanager_url, **options))
    return channels
