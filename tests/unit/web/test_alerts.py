"""The alerts API (admin): active, history with a validated limit, stats and silences."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from support import hello

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.alerting import AlertSeverity
from asgi_monitor.config import AlertSettings, GateSettings, SystemSettings

TOKEN = "api-test-token-123456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app() -> MonitoringMiddleware:
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN, admin_username="ops", admin_password="pw-123"),
        alerts=AlertSettings(default_rules=False, console_enabled=False),
        system=SystemSettings(metrics=False))
    return MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))


def client(app: MonitoringMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                             headers=AUTH)


async def test_active_history_and_stats(app: MonitoringMiddleware) -> None:
    alerts = app.monitor.alerts
    state = {"holds": True}
    alerts.register_rule("db_down", "Database down", lambda: state["holds"],
                         AlertSeverity.CRITICAL)
    alerts.register_rule("slow", "Slow", lambda: True, for_seconds=3600)
    await alerts.evaluate()
    async with client(app) as c:
        active = (await c.get("/api/alerts")).json()["alerts"]
        assert [(a["rule"], a["state"]) for a in active] == [("db_down", "firing"),
                                                             ("slow", "pending")]
        state["holds"] = False
        await alerts.evaluate()
        history = (await c.get("/api/alerts/history")).json()
        assert history["limit"] == 100
        assert [(a["rule"], a["state"]) for a in history["alerts"]] == [("db_down", "resolved")]
        stats = (await c.get("/api/alerts/stats")).json()
    assert stats["total"] == 1 and stats["pending"] == 1 and stats["firing"] == 0
    assert stats["by_severity"]["critical"] == 1
    assert stats["by_rule"] == {"db_down": 1}
    assert set(stats) >= {"notifications", "mean_time_to_resolve_seconds"}


@pytest.mark.parametrize("limit", ["abc", "0", "-3", "1.5", ""])
async def test_history_limit_must_be_a_whole_number_from_1(
    app: MonitoringMiddleware, limit: str
) -> None:
    async with client(app) as c:
        response = await c.get("/api/alerts/history", params={"limit": limit})
    assert response.status_code == 400
    assert "limit must be a whole number >= 1" in response.json()["error"]
    assert repr(limit) in response.json()["error"]


async def test_history_limit_is_capped(app: MonitoringMiddleware) -> None:
    async with client(app) as c:
        assert (await c.get("/api/alerts/history?limit=5")).json()["limit"] == 5
        assert (await c.get("/api/alerts/history?limit=999999")).json()["limit"] == 1000


async def test_silence_create_list_delete(app: MonitoringMiddleware) -> None:
    alerts = app.monitor.alerts
    alerts.register_rule("noisy", "Noisy", lambda: True)
    async with client(app) as c:
        response = await c.post("/api/alerts/silences", json={
            "rule": "noisy", "duration_minutes": 30, "comment": "deploying"},
            headers={"Authorization": "Basic b3BzOnB3LTEyMw=="})  # ops:pw-123
        assert response.status_code == 201
        silence = response.json()
        assert silence["matchers"] == {"alertname": "noisy"}
        assert silence["created_by"] == "ops"
        assert silence["comment"] == "deploying"
        listed = (await c.get("/api/alerts/silences")).json()["silences"]
        assert [s["id"] for s in listed] == [silence["id"]]

        await alerts.evaluate()
        assert alerts.active()[0].silenced is True

        by_labels = await c.post("/api/alerts/silences", json={
            "matchers": {"team": "db"}, "duration_seconds": 60})
        assert by_labels.status_code == 201
        assert by_labels.json()["created_by"] == "token"

        deleted = await c.delete(f"/api/alerts/silences/{silence['id']}")
        assert deleted.status_code == 200 and deleted.json() == {"expired": silence["id"]}
        again = await c.delete(f"/api/alerts/silences/{silence['id']}")
        assert again.status_code == 404
        assert "no current silence" in again.json()["error"]
        listed = (await c.get("/api/alerts/silences")).json()["silences"]
        assert [s["id"] for s in listed] == [by_labels.json()["id"]]


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "must be a JSON object"),
    ([1, 2], "must be a JSON object"),
    ({"duration_minutes": 5}, "give \"rule\""),
    ({"rule": "", "duration_minutes": 5}, "non-empty string"),
    ({"rule": "x"}, "exactly one of"),
    ({"rule": "x", "duration_minutes": 5, "duration_seconds": 5}, "exactly one of"),
    ({"rule": "x", "duration_minutes": 0}, "must be a number > 0"),
    ({"rule": "x", "duration_minutes": "5"}, "must be a number > 0"),
    ({"rule": "x", "duration_minutes": 5, "comment": 3}, "\"comment\" must be a string"),
    ({"matchers": {"a": 1}, "duration_minutes": 5}, "label name: value strings"),
    ({"rule": "x", "duration_minutes": 5, "until": "later"}, "unknown field(s) ['until']"),
])
async def test_bad_silence_requests_are_400(app: MonitoringMiddleware, body: Any,
                                            message: str) -> None:
    async with client(app) as c:
        if isinstance(body, str):
            response = await c.post("/api/alerts/silences", content=body,
                                    headers={"Content-Type": "application/json"})
        else:
            response = await c.post("/api/alerts/silences", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_alert_endpoints_are_admin_only(app: MonitoringMiddleware) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        for method, path in [("GET", "/api/alerts"), ("GET", "/api/alerts/history"),
                             ("GET", "/api/alerts/stats"), ("GET", "/api/alerts/silences"),
                             ("POST", "/api/alerts/silences"),
                             ("DELETE", "/api/alerts/silences/abc")]:
            assert (await c.request(method, path)).status_code == 401, path
