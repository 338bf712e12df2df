"""The SLOs API (admin): the SLI, burn rates and budget left of each SLO, from real requests."""

from __future__ import annotations

from typing import Any

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


async def half_fail(scope: Any, receive: Any, send: Any) -> None:
    status = 500 if scope["path"].endswith("/fail") else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


async def test_dashboard_panel_first_paint_and_history_under_a_root_path() -> None:
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN), system=SystemSettings(metrics=False),
        alerts=AlertSettings(default_rules=False, console_enabled=False),
        slo=SLOSettings(objectives=(SLO("checkout", objective_percent=60, period_days=7),)))
    wrapped = MonitoringMiddleware(half_fail, monitor=build_monitor(config, CollectorRegistry()))
    wrapped.monitor.take_sample()
    transport = httpx.ASGITransport(app=wrapped, root_path="/prefix")
    async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for path in ["/"] * 8 + ["/fail"] * 2:
            await c.get(f"/prefix{path}")
        wrapped.monitor.take_sample()
        html = (await c.get("/prefix/admin/monitoring")).text
        (slo,) = (await c.get("/prefix/api/slos")).json()["slos"]
    # 2 of 10 failed: 20 % of a 40 % budget spent, half left.
    assert slo["budget"]["remaining_percent"] == 50.0
    # The windows of its four alerts; nothing to divide at the first point.
    assert slo["history"]["burn_rates"] == {w: [None, 0.5] for w in
                                            ("5m", "30m", "1h", "2h", "6h", "1d", "3d")}
    assert len(slo["history"]["time"]) == 2
    assert 'data-slos-url="/prefix/api/slos"' in html
    panel = html.split('data-slo="checkout"', 1)[1].split("</figure>", 1)[0]
    assert 'value="50.0" data-budget-bar' in panel
    assert "<strong data-budget-value>50.0 %</strong>" in panel
    assert ("page at 3.36× over 1h/5m; page at 1.4× over 6h/30m; ticket at 0.7× over 1d/2h; "
            "ticket at 0.2333× over 3d/6h") in panel


async def test_no_slo_no_panel() -> None:
    async with client(app()) as c:
        html = (await c.get("/admin/monitoring")).text
    assert "data-slos-url" not in html and "data-slo=" not in html
