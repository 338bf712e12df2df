"""The demo: the README's health examples answer, and its environment defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from support import client

from asgi_monitor import build_monitor
from asgi_monitor.demo.app import create_app
from asgi_monitor.demo.run import demo_config, demo_environment
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


def test_the_demo_declares_two_slos_unless_given_a_file(tmp_path: Path) -> None:
    env = demo_environment(8000, email=False)
    config = demo_config(env)
    assert [(s.name, s.sli.kind, s.period_days) for s in config.slo.all()] == [
        ("availability", "availability", 7), ("latency", "latency", 7)]
    monitor = build_monitor(config, CollectorRegistry())
    # The retention the demo keeps evaluates both alerts of a 7-day period.
    assert sorted(r for r in monitor.alerts.rules if r.startswith("slo_")) == [
        "slo_availability_burn_1h_5m", "slo_availability_burn_6h_30m",
        "slo_latency_burn_1h_5m", "slo_latency_burn_6h_30m"]
    (tmp_path / "slos.json").write_text('{"slos": [{"name": "mine"}]}')
    mine = demo_config({**env, "MONITORING_SLO_FILE": str(tmp_path / "slos.json")})
    assert [s.name for s in mine.slo.all()] == ["mine"]
