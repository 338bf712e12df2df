"""No configured secret ever leaves the process: not in a response, a header, a log line or a repr.

Walks every endpoint ``endpoints()`` returns, so endpoints added by later issues are scanned too.
"""

from __future__ import annotations

import base64
import json
import logging

import httpx
import pytest
from prometheus_client import CollectorRegistry
from support import concrete_path, hello

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import EmailSettings, GateSettings, WebhookSettings
from asgi_monitor.web.app import endpoints

# Distinctive values, so a hit cannot be a coincidence.
SECRETS = {
    "admin_token": "SCAN-admin-token-7f3a9c1e",
    "admin_password": "SCAN-admin-password-b52d08",
    "smtp_password": "SCAN-smtp-password-e61f47",
    "metrics_token": "SCAN-metrics-token-9a0c3d",
    "alert_webhook_url": "http://127.0.0.1:9/SCAN-webhook-path-41c2",
    "alert_webhook_secret": "SCAN-webhook-hmac-0d77",
    "alert_slack_webhook_url": "http://127.0.0.1:9/services/SCAN-slack-8e3b",
    "alertmanager_url": "http://SCAN-am-user:SCAN-am-pass-1f0e@127.0.0.1:9",
}
USER = "scan-ops"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def secret_config() -> MonitoringConfig:
    return MonitoringConfig(
        # Four requests per endpoint outgrow the default burst; this test is about secrets.
        gate=GateSettings(admin_username=USER, rate_limit_per_second=0,
                          admin_token=SECRETS["admin_token"],
                          admin_password=SECRETS["admin_password"],
                          metrics_token=SECRETS["metrics_token"]),
        email=EmailSettings(server="smtp.example.com", username="mailer",
                            from_address="monitor@example.com", enabled=True,
                            password=SECRETS["smtp_password"]),
        webhooks=WebhookSettings(url=SECRETS["alert_webhook_url"],
                                 secret=SECRETS["alert_webhook_secret"],
                                 slack_url=SECRETS["alert_slack_webhook_url"],
                                 alertmanager_url=SECRETS["alertmanager_url"]),
    )


def leaked(text: str) -> list[str]:
    variants = {name: (value, base64.b64encode(value.encode()).decode())
                for name, value in SECRETS.items()}
    return [name for name, forms in variants.items() if any(form in text for form in forms)]


def test_repr_and_public_dict_hide_every_secret() -> None:
    config = secret_config()
    assert leaked(repr(config)) == []
    assert leaked(str(config)) == []
    assert leaked(json.dumps(config.public_dict())) == []
    shown = config.public_dict()
    for section, name in (("gate", "admin_token"), ("gate", "admin_password"),
                          ("gate", "metrics_token"), ("email", "password"), ("webhooks", "url"),
                          ("webhooks", "secret"), ("webhooks", "slack_url"),
                          ("webhooks", "alertmanager_url")):
        assert shown[section][name] == "**********"


@pytest.mark.anyio
async def test_no_endpoint_output_or_log_line_holds_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    middleware = MonitoringMiddleware(
        hello, monitor=build_monitor(secret_config(), CollectorRegistry()))
    auths: list[dict[str, str]] = [
        {},
        {"Authorization": f"Bearer {SECRETS['admin_token']}"},
        {"Authorization": "Basic " + base64.b64encode(
            f"{USER}:{SECRETS['admin_password']}".encode()).decode()},
        {"Authorization": f"Bearer {SECRETS['metrics_token']}"},
    ]
    transport = httpx.ASGITransport(app=middleware, client=("1.2.3.4", 123))
    seen: list[str] = []
    statuses: dict[tuple[str, str], set[int]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for endpoint in endpoints(middleware.monitor):
            path = concrete_path(endpoint.path, middleware.monitor)
            for method in endpoint.methods:
                for headers in auths:
                    response = await client.request(method, path, headers=headers)
                    statuses.setdefault((endpoint.access, path), set()).add(
                        response.status_code)
                    seen.append(response.text)
                    seen.extend(f"{k}: {v}" for k, v in response.headers.items())
    # Every admin endpoint was really served (not just refused) with valid credentials.
    for (access, path), codes in statuses.items():
        if access == "admin":
            assert 200 in codes, path
    seen.append(caplog.text)
    seen.extend(repr(record.__dict__) for record in caplog.records)
    assert leaked("\n".join(seen)) == []
