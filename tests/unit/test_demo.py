"""The demo: the monitoring guide's health examples answer, and its environment defaults."""

from __future__ import annotations

import pytest
from support import client

from asgi_monitor.demo.app import create_app
from asgi_monitor.demo.run import demo_environment
from asgi_monitor.monitor import Monitor


@pytest.mark.parametrize("name", ["database", "cache"])
async def test_the_guide_health_checks_answer_on_the_demo(monitor: Monitor, name: str) -> None:
    app = create_app()
    async with monitor.running(), client(app) as c:
        await monitor.health.run_check(name)
        response = await c.get(f"/api/health/{name}")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_an_empty_exported_variable_keeps_the_demo_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITORING_ADMIN_PASSWORD", "")
    monkeypatch.setenv("ALERT_WINDOW_SECONDS", "45")
    env = demo_environment(8000, email=False)
    assert env["MONITORING_ADMIN_PASSWORD"]
    assert env["ALERT_WINDOW_SECONDS"] == "45"
