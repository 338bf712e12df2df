"""The SLOs API (admin): the SLI, burn rates and budget left of each SLO, from real requests."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry
from support import hello

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import AlertSettings, GateSettings, SLOSettings, SystemSettings
from asgi_monitor.slo import SLO

TOKEN = "api-test-token-123456"


def app(*slos: SLO) -> MonitoringMiddleware:
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN),
        alerts=AlertSettings(default_rules=False, console_enabled=False),
        system=SystemSettings(metrics=False), slo=SLOSettings(objectives=slos))
    return MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))


def client(wrapped: MonitoringMiddleware, token: str = TOKEN) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t",
                             headers={"Authorization": f"Bearer {token}"})


async def test_slis_burn_rates_and_budget_from_requests() -> None:
    wrapped = app(SLO("all", objective_percent=99))
    wrapped.monitor.take_sample()
    async with client(wrapped) as c:
        for _ in range(5):
            assert (await c.get("/")).status_code == 200
        wrapped.monitor.take_sample()
        body = (await c.get("/api/slos")).json()
    assert body["retention_seconds"] == 259200 and body["in_process_alerts"] is True
    (slo,) = body["slos"]
    assert slo["name"] == "all" and slo["kind"] == "availability"
    assert list(slo["windows"]) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    assert slo["windows"]["5m"] == {"sli_percent": 100.0, "burn_rate": 0.0}
    assert slo["budget"]["remaining_percent"] == 100.0
    assert [a["long_window"] for a in slo["alerts"]] == ["1h", "6h", "1d", "3d"]
    assert sorted(wrapped.monitor.alerts.rules) == [
        "slo_all_burn_1d_2h", "slo_all_burn_1h_5m", "slo_all_burn_3d_6h", "slo_all_burn_6h_30m"]


async def test_admin_only_and_empty_without_slos() -> None:
    wrapped = app()
    async with client(wrapped, token="wrong-token-123456") as c:
        assert (await c.get("/api/slos")).status_code == 401
    async with client(wrapped) as c:
        assert (await c.get("/api/slos")).json() == {
            "slos": [], "retention_seconds": 0, "in_process_alerts": False}
