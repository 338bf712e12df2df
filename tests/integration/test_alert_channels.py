"""Channels against real servers on loopback: e-mail (aiosmtpd), webhook and Slack (HTTP)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hmac
import logging
import socket
import ssl
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from support import Clock, HttpSink, channels_for, free_port, require_binary

from asgi_monitor import ConfigError, MonitoringConfig
from asgi_monitor.alerting import AlertManager, AlertSeverity
from asgi_monitor.alerting.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ConsoleChannel,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
    sign,
)
from asgi_monitor.alerting.models import Alert, AlertState, fingerprint
from asgi_monitor.config import AlertSettings, EmailSettings, WebhookSettings
from asgi_monitor.secret import Secret

WEBHOOK_SECRET = "hmac-secret-5b1d"


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def firing_alert(**changes: Any) -> Alert:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    alert = Alert("high_error_rate", AlertSeverity.CRITICAL, AlertState.FIRING,
                  "HTTP 5xx error rate above 5% over 5 min", labels={"team": "web"},
                  annotations={"runbook_url": "https://runbooks.example/errors"}, value=12.5,
                  active_since=start, fired_at=start)
    for name, value in changes.items():
        setattr(alert, name, value)
    return alert


def email_config(port: int, webhooks: WebhookSettings | None = None,
                 **smtp: Any) -> MonitoringConfig:
    settings: dict[str, Any] = {
        "enabled": True, "server": "127.0.0.1", "port": port,
        "from_address": "monitor@example.com",
        "recipients": ("ops@example.com", "dev@example.com"), "starttls": False}
    return MonitoringConfig(
        email=EmailSettings(**{**settings, **smtp}), webhooks=webhooks or WebhookSettings(),
        alerts=AlertSettings(console_enabled=False, channel_timeout_seconds=5, channel_retries=0))


async def test_email_delivered_to_a_real_smtp_server(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    manager = AlertManager(channels=channels_for(email_config(port)))
    manager.register_rule("disk_full", "Disk almost full", lambda: (3.5, True),
                          AlertSeverity.CRITICAL)
    await manager.evaluate()
    await manager.flush()
    [(recipients, message)] = mailbox.messages
    assert recipients == ["ops@example.com", "dev@example.com"]
    assert message["Subject"] == "[FIRING] disk_full (critical): Disk almost full"
    assert message["From"] == "monitor@example.com"
    assert message["To"] == "ops@example.com, dev@example.com"
    body = message.get_content()
    assert "Rule:        disk_full" in body and "Value:       3.5" in body
    assert manager.active()[0].notifications[0]["ok"] is True
    assert manager.stats()["notifications"] == {"email": {"sent": 1, "failed": 0}}


async def test_email_recipients_default_to_from_email(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    config = MonitoringConfig(
        email=EmailSettings(
            enabled=True,
            server="127.0.0.1",
            port=port,
            from_address="monitor@example.com",
            starttls=False))
    [email_channel] = [c for c in channels_for(config) if c.name == "email"]
    assert (await email_channel.deliver(firing_alert()))["ok"] is True
    assert mailbox.messages[0][0] == ["monitor@example.com"]


async def test_email_to_a_port_where_nothing_listens_fails_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with HttpSink() as sink:
        config = email_config(free_port(), webhooks=WebhookSettings(url=sink.url))
        manager = AlertManager(channels=channels_for(config))
        manager.register_rule("r", "d", lambda: True)
        await manager.evaluate()
        await manager.flush()
        assert len(sink.requests) == 1  # the webhook was not held up by the dead SMTP server
    outcomes = {n["channel"]: n for n in manager.active()[0].notifications}
    assert outcomes["webhook"]["ok"] is True
    assert outcomes["email"]["ok"] is False
    assert outcomes["email"]["error"]
    assert manager.stats()["notifications"]["email"] == {"sent": 0, "failed": 1}
    assert any("channel email failed" in r.getMessage() for r in caplog.records)


async def test_email_requires_starttls_by_default(smtp: tuple[Mailbox, int]) -> None:
    # The test server offers no STARTTLS: a channel that insists must fail, not send in clear.
    mailbox, port = smtp
    channel = EmailChannel(hostname="127.0.0.1", port=port, sender="m@example.com",
                           recipients=("o@example.com",), username="u",
                           password=Secret("smtp-pass-77"), retries=0, timeout=5)
    outcome = await channel.deliver(firing_alert())
    assert outcome["ok"] is False
    assert "smtp-pass-77" not in str(outcome)
    assert mailbox.messages == []


async def test_webhook_posts_alertmanager_v4_json() -> None:
    async with HttpSink() as sink:
        channel = WebhookChannel(Secret(sink.url + "/hook"),
                                 external_url="https://app.example")
        assert (await channel.deliver(firing_alert()))["ok"] is True
        resolved = firing_alert(state=AlertState.RESOLVED,
                                resolved_at=datetime(2026, 1, 2, 4, 0, tzinfo=timezone.utc))
        assert (await channel.deliver(resolved))["ok"] is True
    method, path, headers, _ = sink.requests[0]
    assert (method, path, headers["content-type"]) == ("POST", "/hook", "application/json")
    body = sink.json(0)
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver",
                         "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                         "alerts"}
    labels = {"alertname": "high_error_rate", "severity": "critical", "team": "web"}
    assert body["version"] == "4"
    assert body["groupKey"] == '{}:{alertname="high_error_rate"}'
    assert body["status"] == "firing"
    assert body["receiver"] == "asgi_monitor"
    assert body["groupLabels"] == {"alertname": "high_error_rate"}
    assert body["commonLabels"] == labels
    assert body["commonAnnotations"]["summary"] == "HTTP 5xx error rate above 5% over 5 min"
    assert body["commonAnnotations"]["runbook_url"] == "https://runbooks.example/errors"
    assert body["externalURL"] == "https://app.example"
    [alert] = body["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt",
                          "generatorURL", "fingerprint"}
    assert alert["status"] == "firing"
    assert alert["labels"] == labels
    assert alert["startsAt"] == "2026-01-02T03:04:05Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"  # Go's zero time: not ended
    assert alert["generatorURL"] == "https://app.example/api/alerts"
    assert alert["fingerprint"] == fingerprint(labels)
    assert SIGNATURE_HEADER.lower() not in sink.requests[0][2]
    again = sink.json(1)
    assert again["status"] == again["alerts"][0]["status"] == "resolved"
    assert again["alerts"][0]["endsAt"] == "2026-01-02T04:00:00Z"


def test_fingerprint_is_alertmanagers_fnv1a() -> None:
    # Alertmanager's fingerprint of an empty label set is FNV-1a's offset basis.
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint({"a": "b"}) != fingerprint({"a": "c"})
    assert len(fingerprint({"alertname": "x"})) == 16


async def test_webhook_hmac_signature_verifies() -> None:
    async with HttpSink() as sink:
        channel = WebhookChannel(Secret(sink.url), secret=Secret(WEBHOOK_SECRET))
        assert (await channel.deliver(firing_alert()))["ok"] is True
    _, _, headers, body = sink.requests[0]
    timestamp = headers[TIMESTAMP_HEADER.lower()]
    received = headers[SIGNATURE_HEADER.lower()]
    # What a receiver does: recompute over "<timestamp>." + raw body, compare in constant time.
    import hashlib
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received, expected)
    assert received == sign(WEBHOOK_SECRET, timestamp, body)
    assert received != sign("wrong", timestamp, body)


async def test_webhook_error_status_is_a_failure_without_the_url() -> None:
    async with HttpSink(status=503) as sink:
        secret_url = sink.url + "/T0000/very-secret-path"
        channel = WebhookChannel(Secret(secret_url), retries=1, backoff=0.01)
        outcome = await channel.deliver(firing_alert())
    assert len(sink.requests) == 2  # retried once
    assert outcome["ok"] is False
    assert outcome["error"] == "ChannelError: HTTP 503"
    assert "very-secret-path" not in str(outcome)


async def test_connection_error_message_hides_the_url(caplog: pytest.LogCaptureFixture) -> None:
    secret_url = f"http://127.0.0.1:{free_port()}/secret-token-xyz"
    outcome = await WebhookChannel(Secret(secret_url), retries=0).deliver(firing_alert())
    assert outcome["ok"] is False
    assert "secret-token-xyz" not in str(outcome)
    assert "secret-token-xyz" not in caplog.text


async def test_slack_incoming_webhook_format() -> None:
    async with HttpSink(body=b"ok") as sink:
        channel = SlackChannel(Secret(sink.url + "/services/T/B/X"))
        assert (await channel.deliver(firing_alert()))["ok"] is True
    body = sink.json()
    assert body["text"] == ("[FIRING] high_error_rate (critical): "
                            "HTTP 5xx error rate above 5% over 5 min")
    assert body["blocks"][0]["type"] == "section"
    assert ":red_circle:" in body["blocks"][0]["text"]["text"]
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert "*Rule:*\nhigh_error_rate" in fields and "*Value:*\n12.5" in fields
    assert "<https://runbooks.example/errors|Runbook>" in body["blocks"][2]["elements"][0]["text"]


async def test_console_channel_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asgi_monitor.alerts")
    await ConsoleChannel().deliver(firing_alert())
    await ConsoleChannel().deliver(firing_alert(state=AlertState.RESOLVED))
    firing, resolved = [r for r in caplog.records if r.name == "asgi_monitor.alerts"]
    assert firing.levelno == logging.ERROR
    assert firing.getMessage() == ("alert high_error_rate FIRING [critical]: HTTP 5xx error rate "
                                   "above 5% over 5 min (value 12.5)")
    assert resolved.levelno == logging.ERROR and "RESOLVED" in resolved.getMessage()


async def test_channels_for_and_secrets_stay_masked() -> None:
    config = MonitoringConfig(
        webhooks=WebhookSettings(
            url="https://hooks.example/abc",
            secret=WEBHOOK_SECRET,
            slack_url="https://hooks.slack.com/services/T/B/X",
            alertmanager_url="http://127.0.0.1:9093"),
        alerts=AlertSettings(channel_timeout_seconds=3, channel_retries=4, send_resolved=False))
    channels = channels_for(config)
    assert [c.name for c in channels] == ["console", "webhook", "slack", "alertmanager"]
    assert all(c.timeout == 3 and c.retries == 4 and not c.send_resolved for c in channels)
    shown = repr(config) + str(config.public_dict())
    for secret in ("hooks.example/abc", WEBHOOK_SECRET, "services/T/B/X", "9093"):
        assert secret not in shown


async def test_manager_with_a_clock_sends_on_fire_and_resolve() -> None:
    async with HttpSink() as sink:
        clock = Clock()
        manager = AlertManager(clock=clock, monotonic=clock,
                               channels=[WebhookChannel(Secret(sink.url))])
        state = {"holds": True}
        manager.register_rule("r", "d", lambda: state["holds"])
        await manager.evaluate()
        await manager.flush()
        state["holds"] = False
        clock.advance(10)
        await manager.evaluate()
        await manager.flush()
    assert [sink.json(i)["status"] for i in range(2)] == ["firing", "resolved"]
    assert sink.json(1)["alerts"][0]["endsAt"] == datetime.fromtimestamp(
        clock.now, timezone.utc).isoformat().replace("+00:00", "Z")


# -- TLS: a real aiosmtpd server with a certificate made for the test --------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = require_binary("openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tls_context(certificate: tuple[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@contextlib.contextmanager
def tls_smtp(certificate: tuple[str, str], *, implicit: bool) -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    context = tls_context(certificate)
    options: dict[str, Any] = (
        {"ssl_context": context} if implicit
        # STARTTLS offered and required before MAIL FROM, as a real relay would.
        else {"tls_context": context, "require_starttls": True})
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    if implicit:
        # aiosmtpd's readiness probe wraps its socket with the server's own context, which a
        # client cannot use; probe as a client that trusts the test certificate instead.
        def trigger() -> None:
            client = ssl.create_default_context(cafile=certificate[0])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1024)  # the 220 greeting

        controller._trigger_server = trigger  # type: ignore[method-assign]
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit TLS", "STARTTLS"])
async def test_email_over_tls_with_a_private_ca(certificate: tuple[str, str],
                                                implicit: bool) -> None:
    cert, _ = certificate
    with tls_smtp(certificate, implicit=implicit) as (mailbox, port):
        config = email_config(port, use_tls=implicit, starttls=not implicit,
                              ca_file=cert, server="localhost")
        [channel] = [c for c in channels_for(config) if c.name == "email"]
        outcome = await channel.deliver(firing_alert())
    assert outcome["ok"] is True, outcome
    [(recipients, message)] = mailbox.messages
    assert recipients == ["ops@example.com", "dev@example.com"]
    assert str(message["Subject"]).strip().startswith("[FIRING] high_error_rate")


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit TLS", "STARTTLS"])
async def test_email_refuses_a_certificate_it_cannot_verify(certificate: tuple[str, str],
                                                            implicit: bool) -> None:
    # Without SMTP_CA_FILE the self-signed certificate is not trusted: no mail, a recorded
    # failure, never a fallback to an unverified connection.
    with tls_smtp(certificate, implicit=implicit) as (mailbox, port):
        config = email_config(port, use_tls=implicit, starttls=not implicit,
                              server="localhost")
        [channel] = [c for c in channels_for(config) if c.name == "email"]
        outcome = await channel.deliver(firing_alert())
    assert outcome["ok"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in outcome["error"] or "certificate" in outcome["error"]
    assert mailbox.messages == []


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SMTP_CA_FILE"):
        MonitoringConfig.from_env({"SMTP_CA_FILE": str(tmp_path / "missing.pem")})
