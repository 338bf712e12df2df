"""Which build runs: build_info (and target_info under OpenTelemetry names), and the health+json
answer naming the service, its version and release."""

from __future__ import annotations

import platform
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor._version import __version__
from asgi_monitor.config import HealthSettings, MetricsSettings, OTLPSettings, ServiceSettings


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def monitored(app: Any = _app, **sections: Any) -> MonitoringMiddleware:
    sections.setdefault("health", HealthSettings(default_checks=False))
    return MonitoringMiddleware(app, monitor=build_monitor(MonitoringConfig(**sections),
                                                           CollectorRegistry()))


async def scrape(mw: MonitoringMiddleware) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw),
                                 base_url="http://t") as c:
        text = (await c.get("/api/metrics")).text
    return {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}


async def test_build_info_names_the_service_version_release_and_runtime() -> None:
    mw = monitored(service=ServiceSettings(service_name="shop", version="1.4.2",
                                           release="9f3c2ab"),
                   metrics=MetricsSettings(namespace="acme"))
    sample = (await scrape(mw))["acme_build_info"]
    assert sample.value == 1.0
    assert sample.labels == {"service": "shop", "version": "1.4.2", "release": "9f3c2ab",
                             "python_version": platform.python_version(),
                             "asgi_monitor_version": __version__}


async def test_the_apps_own_version_and_title_when_none_is_configured() -> None:
    class TitledApp:  # what FastAPI(title=..., version=...) offers
        title = "Inventory"
        version = "3.2.1"

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await _app(scope, receive, send)

    labels = (await scrape(monitored(TitledApp())))["build_info"].labels
    assert (labels["service"], labels["version"], labels["release"]) == ("Inventory", "3.2.1", "")
    configured = monitored(TitledApp(), service=ServiceSettings(version="4.0.0"))
    assert (await scrape(configured))["build_info"].labels["version"] == "4.0.0"


@pytest.mark.frameworks
async def test_fastapi_version_is_the_fallback() -> None:
    from fastapi import FastAPI

    labels = (await scrape(monitored(FastAPI(title="Billing", version="2.7.0"))))[
        "build_info"].labels
    assert (labels["service"], labels["version"]) == ("Billing", "2.7.0")


@pytest.mark.parametrize(("naming", "target"), [("classic", False), ("otel", True),
                                                ("both", True)])
async def test_target_info_under_opentelemetry_names(naming: str, target: bool) -> None:
    mw = monitored(metrics=MetricsSettings(metric_names=naming),
                   service=ServiceSettings(service_name="shop", instance="shop-0",
                                           version="1.4.2"),
                   otlp=OTLPSettings(resource_attributes=(("deployment.environment", "prod"),)))
    samples = await scrape(mw)
    assert "build_info" in samples
    assert ("target_info" in samples) is target
    if target:
        assert samples["target_info"].value == 1.0
        assert samples["target_info"].labels == {
            "service_name": "shop", "service_instance_id": "shop-0",
            "service_version": "1.4.2", "deployment_environment": "prod"}


async def test_health_json_names_the_service_version_and_release() -> None:
    mw = monitored(service=ServiceSettings(service_name="shop", version="1.4.2",
                                           release="9f3c2ab"))
    mw.monitor.health.register_check("db", "", lambda: True)
    await mw.monitor.health.run_all()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://t") as c:
        body = (await c.get("/api/health", headers={"accept": "application/health+json"})).json()
        assert (body["serviceId"], body["version"], body["releaseId"]) == (
            "shop", "1.4.2", "9f3c2ab")
        bare = monitored(service=ServiceSettings(service_name="shop"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare),
                                 base_url="http://t") as c:
        body = (await c.get("/api/health", headers={"accept": "application/health+json"})).json()
    # Unknown is left out, as the draft's optional fields are, rather than sent empty.
    assert body["serviceId"] == "shop" and "version" not in body and "releaseId" not in body
