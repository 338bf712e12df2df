"""The service and instance labels: where they come from, that they are fixed once used, and
that every channel's message carries them."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from asgi_monitor import (
    AlertSettings,
    MonitoringConfig,
    MonitoringMiddleware,
    PathSettings,
    ServiceSettings,
    WebhookSettings,
    build_monitor,
)
from asgi_monitor.alerting import AlertManager, AlertSeverity
from asgi_monitor.alerting.channels import ConsoleChannel
from asgi_monitor.alerting.identity import Identity, process_name
from asgi_monitor.alerting.models import Alert, AlertState
from asgi_monitor.alerting.payloads import (
    alertmanager_alerts,
    email_message,
    slack_message,
    webhook_message,
)


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, ""),
    ({"OTEL_SERVICE_NAME": "otel-shop"}, "otel-shop"),
    ({"MONITORING_SERVICE_NAME": "shop"}, "shop"),
    ({"MONITORING_SERVICE_NAME": "shop", "OTEL_SERVICE_NAME": "otel-shop"}, "shop"),
])
def test_service_name_from_the_environment(environ: dict[str, str], expected: str) -> None:
    assert MonitoringConfig.from_env(environ).service.service_name == expected


def test_instance_from_the_environment() -> None:
    config = MonitoringConfig.from_env({"MONITORING_INSTANCE": "web-1:8000"})
    assert config.service.instance == "web-1:8000"


@pytest.mark.frameworks
def test_configured_name_wins_over_the_title() -> None:
    from fastapi import FastAPI

    identity = Identity(ServiceSettings(service_name="shop", instance="web-1"))
    identity.name_after(FastAPI(title="Shop API"))
    assert identity.labels() == {"service": "shop", "instance": "web-1"}


@pytest.mark.frameworks
def test_title_then_process_name_then_host_name() -> None:
    from fastapi import FastAPI

    identity = Identity(ServiceSettings())
    identity.name_after(FastAPI(title="Shop API"))
    assert identity.labels() == {"service": "Shop API", "instance": socket.gethostname()}
    untitled = Identity(ServiceSettings())
    untitled.name_after(Starlette())  # no title attribute
    assert untitled.labels()["service"] == process_name() != ""


@pytest.mark.frameworks
def test_labels_are_fixed_once_used() -> None:
    from fastapi import FastAPI

    identity = Identity(ServiceSettings())
    identity.name_after(FastAPI(title="first"))
    identity.name_after(FastAPI(title="second"))  # a second wrapped app does not rename it
    first = identity.labels()
    assert first["service"] == "first"
    late = Identity(ServiceSettings())
    used = late.labels()
    late.name_after(FastAPI(title="too late"))  # an alert already carried the labels
    assert late.labels() == used


async def test_alerts_carry_the_labels_and_two_services_differ() -> None:
    fingerprints = []
    for service in ("shop", "billing"):
        identity = Identity(ServiceSettings(service_name=service, instance="host-a"))
        manager = AlertManager(identity=identity.labels)
        manager.register_rule("high_error_rate", "5xx", lambda: True, AlertSeverity.CRITICAL,
                              labels={"team": "web"})
        await manager.evaluate()
        [alert] = manager.active()
        assert alert.identity == {"alertname": "high_error_rate", "severity": "critical",
                                  "team": "web", "service": service, "instance": "host-a"}
        fingerprints.append(alert.fingerprint)
    assert fingerprints[0] != fingerprints[1]


async def test_a_rules_own_labels_win() -> None:
    manager = AlertManager(identity=lambda: {"service": "shop", "instance": "a"})
    manager.register_rule("r", "d", lambda: True, labels={"service": "payments-db"})
    await manager.evaluate()
    assert manager.active()[0].labels == {"service": "payments-db", "instance": "a"}


def firing(**labels: str) -> Alert:
    return Alert("high_error_rate", AlertSeverity.CRITICAL, AlertState.FIRING, "5xx above 5%",
                 labels={"service": "shop", "instance": "web-1", **labels})


def test_webhook_groups_by_alertname_service_and_instance() -> None:
    body = webhook_message(firing(), external_url="https://shop.example/",
                           alerts_path="/ops/alerts")
    assert body["groupLabels"] == {"alertname": "high_error_rate", "service": "shop",
                                   "instance": "web-1"}
    assert body["groupKey"] == ('{}:{alertname="high_error_rate", instance="web-1", '
                                'service="shop"}')
    [alert] = body["alerts"]
    assert alert["labels"]["service"] == "shop" and alert["labels"]["instance"] == "web-1"
    assert alert["generatorURL"] == "https://shop.example/ops/alerts"


def test_alertmanager_payload_carries_labels_and_the_alerts_path() -> None:
    from datetime import datetime, timezone
    [alert] = alertmanager_alerts(firing(), now=datetime.now(timezone.utc), resend_interval=60,
                                  external_url="https://shop.example", alerts_path="/ops/alerts")
    assert {"service": "shop", "instance": "web-1"}.items() <= alert["labels"].items()
    assert alert["generatorURL"] == "https://shop.example/ops/alerts"


def test_email_and_slack_name_the_service_and_instance() -> None:
    message = email_message(firing(), sender="a@x.example", recipients=("b@x.example",),
                            external_url="https://shop.example", alerts_path="/ops/alerts")
    assert message["Subject"] == "[FIRING] high_error_rate on shop (critical): 5xx above 5%"
    text = message.get_content()
    assert "Service:     shop\n" in text and "Instance:    web-1\n" in text
    assert "Alerts: https://shop.example/ops/alerts" in text
    slack = slack_message(firing(), external_url="https://shop.example",
                          alerts_path="/ops/alerts")
    fields = [f["text"] for f in slack["blocks"][1]["fields"]]
    assert "*Service:*\nshop" in fields and "*Instance:*\nweb-1" in fields
    assert "<https://shop.example/ops/alerts|Alerts>" in str(slack["blocks"][-1])


async def test_console_line_names_the_service_and_instance(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="asgi_monitor.alerts"):
        await ConsoleChannel().send(firing())
    [record] = caplog.records
    assert "high_error_rate FIRING [critical] shop@web-1: 5xx above 5%" in record.getMessage()
    assert (record.__dict__["service"], record.__dict__["instance"]) == ("shop", "web-1")


@pytest.mark.frameworks
def test_build_monitor_wires_paths_and_identity() -> None:
    from fastapi import FastAPI

    config = MonitoringConfig(
        paths=PathSettings(alerts="/ops/alerts"),
        alerts=AlertSettings(external_url="https://shop.example"),
        webhooks=WebhookSettings(alertmanager_url="http://am.example:9093"))
    monitor = build_monitor(config, CollectorRegistry())
    [*_, channel] = monitor.alerts.channels
    assert channel.alerts_path == "/ops/alerts"
    MonitoringMiddleware(FastAPI(title="Shop API"), monitor=monitor)
    assert monitor.identity.labels()["service"] == "Shop API"


@pytest.mark.frameworks
async def test_lifespan_scope_app_names_the_service() -> None:
    from fastapi import FastAPI

    # Under app.add_middleware() the middleware sees the inner stack; the app is in the scope.
    monitor = build_monitor(MonitoringConfig(), CollectorRegistry())

    async def inner(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    middleware = MonitoringMiddleware(inner, monitor=monitor)
    messages = iter([{"type": "lifespan.startup"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    await middleware({"type": "lifespan", "app": FastAPI(title="Shop API")}, receive, send)
    await monitor.stop()
    assert monitor.identity.labels()["service"] == "Shop API"

