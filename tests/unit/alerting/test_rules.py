"""The default rules fire on synthetic metrics and stay quiet below their thresholds."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support import Clock

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.alerting import AlertManager
from asgi_monitor.alerting.rules import DEFAULT_RULES, install_default_rules
from asgi_monitor.config import AlertSettings, HealthSettings, SystemSettings
from asgi_monitor.health.checker import HealthChecker
from asgi_monitor.health.models import HealthCheck, HealthStatus
from asgi_monitor.sampling.samples import Sample, SampleBuffer

T0 = 1_700_000_000.0


def setup(**config: Any) -> tuple[AlertManager, SampleBuffer, HealthChecker]:
    manager = AlertManager(clock=Clock(T0 + 600))
    samples = SampleBuffer(retention_seconds=3600)
    health = HealthChecker()
    settings = MonitoringConfig(**config)
    install_default_rules(manager, settings.alerts, settings.system, samples, health)
    return manager, samples, health


async def firing(manager: AlertManager) -> dict[str, float | None]:
    await manager.evaluate()
    return {a.rule: a.value for a in manager.active()}


def window(samples: SampleBuffer, start: dict[str, Any], end: dict[str, Any]) -> None:
    """Two samples 5 minutes apart: cumulative totals ``start`` then ``end``."""
    samples.add(Sample(time=T0, **start))
    samples.add(Sample(time=T0 + 300, **end))


def test_every_default_rule_is_installed_and_can_be_turned_off(make_monitor: Any) -> None:
    assert sorted(make_monitor().alerts.rules) == sorted(DEFAULT_RULES)
    assert make_monitor(alerts=AlertSettings(default_rules=False)).alerts.rules == {}


async def test_no_data_fires_nothing() -> None:
    manager, _, _ = setup()
    assert await firing(manager) == {}
    assert manager.evaluation_failures == {}


@pytest.mark.parametrize(("requests", "errors", "fires"), [
    (100, 10, True),     # 10% > 5%
    (100, 5, False),     # exactly 5%: not above
    (2, 1, False),       # 50%, but 2 requests are below the minimum of 20
    (20, 2, True),       # the minimum itself counts
    (0, 0, False),
])
async def test_high_error_rate(requests: int, errors: int, fires: bool) -> None:
    manager, samples, _ = setup()
    window(samples, {"requests": 1000, "errors": 10},
           {"requests": 1000 + requests, "errors": 10 + errors})
    active = await firing(manager)
    assert ("high_error_rate" in active) is fires
    if fires:
        assert active["high_error_rate"] == pytest.approx(100 * errors / requests)


async def test_error_rate_threshold_and_minimum_come_from_config() -> None:
    manager, samples, _ = setup(alerts=AlertSettings(error_rate_percent=50, min_requests=2))
    window(samples, {}, {"requests": 2, "errors": 1})
    assert "high_error_rate" not in await firing(manager)
    manager, samples, _ = setup(alerts=AlertSettings(error_rate_percent=40, min_requests=2))
    window(samples, {}, {"requests": 2, "errors": 1})
    assert "high_error_rate" in await firing(manager)


@pytest.mark.parametrize(("count", "total_seconds", "fires"), [
    (100, 150.0, True),   # 1.5 s average
    (100, 90.0, False),   # 0.9 s
    (5, 50.0, False),     # 10 s average, but only 5 requests
])
async def test_slow_responses(count: int, total_seconds: float, fires: bool) -> None:
    manager, samples, _ = setup()
    window(samples, {"duration_count": 10, "duration_sum": 1.0},
           {"duration_count": 10 + count, "duration_sum": 1.0 + total_seconds})
    active = await firing(manager)
    assert ("slow_responses" in active) is fires
    if fires:
        assert active["slow_responses"] == pytest.approx(total_seconds / count)


@pytest.mark.parametrize(("used", "fires"), [(90.0, True), (85.0, False), (40.0, False)])
async def test_high_memory(used: float, fires: bool) -> None:
    manager, samples, _ = setup()
    window(samples, {}, {"memory_percent": used})
    assert ("high_memory_usage" in await firing(manager)) is fires


@pytest.mark.parametrize(("disks", "fires", "free"), [
    ({"/": 90.0, "/data": 50.0}, True, 10.0),
    ({"/": 85.0}, False, None),      # exactly 15% free
    ({"/": 20.0}, False, None),
])
async def test_low_disk_space(disks: dict[str, float], fires: bool, free: float | None) -> None:
    manager, samples, _ = setup()
    window(samples, {}, {"disk_percent": disks})
    active = await firing(manager)
    assert ("low_disk_space" in active) is fires
    if fires:
        assert active["low_disk_space"] == pytest.approx(free)


@pytest.mark.parametrize(("failures", "fires"), [(11, True), (10, False), (0, False)])
async def test_login_failure_spike(failures: int, fires: bool) -> None:
    manager, samples, _ = setup()
    window(samples, {"login_failures": 3}, {"login_failures": 3 + failures})
    assert ("login_failure_spike" in await firing(manager)) is fires


@pytest.mark.parametrize(("queries", "errors", "fires"), [
    (100, 10, True), (100, 2, False), (3, 3, False)])
async def test_database_error_rate(queries: int, errors: int, fires: bool) -> None:
    manager, samples, _ = setup()
    window(samples, {}, {"db_queries": queries, "db_errors": errors})
    assert ("database_issues" in await firing(manager)) is fires


async def test_database_health_check_critical() -> None:
    manager, samples, health = setup()
    state = {"ok": True}
    health.register_check("database", "Primary DB", lambda: HealthCheck(
        "database", HealthStatus.HEALTHY if state["ok"] else HealthStatus.CRITICAL))
    await health.run_check("database")
    assert "database_issues" not in await firing(manager)
    state["ok"] = False
    await health.run_check("database")
    assert "database_issues" in await firing(manager)
    state["ok"] = True
    await health.run_check("database")
    assert "database_issues" not in await firing(manager)


async def test_error_rate_from_real_requests_through_the_sampler() -> None:
    monitor = build_monitor(
        MonitoringConfig(
            system=SystemSettings(metrics=False), health=HealthSettings(default_checks=False)),
        CollectorRegistry())
    ok = monitor.collector.requests.series("GET", "/items/{id}", 200, "http")
    failed = monitor.collector.requests.series("GET", "/items/{id}", 500, "http")
    monitor.take_sample()
    ok.observe(0.01, 0.005, 0, 10)
    failed.observe(0.01, 0.005, 0, 10)
    monitor.take_sample()
    # 1 error out of 2 requests pages nobody.
    await monitor.alerts.evaluate()
    assert monitor.alerts.active() == []
    for _ in range(30):
        failed.observe(0.01, 0.005, 0, 10)
    monitor.take_sample()
    await monitor.alerts.evaluate()
    [alert] = monitor.alerts.active()
    assert alert.rule == "high_error_rate"
    assert alert.value == pytest.approx(100 * 31 / 32)


@pytest.mark.parametrize(("seconds", "said"), [(30, "over 30 s"), (300, "over 5 min"),
                                               (5400, "over 90 min"), (9000, "over 2 h 30 min")])
def test_rule_descriptions_name_their_window_in_the_unit_people_say(seconds: int,
                                                                      said: str) -> None:
    manager, _, _ = setup(alerts=AlertSettings(window_seconds=seconds))
    description = manager.rules["high_error_rate"].description
    assert description.endswith(said), description
    assert "0.5 min" not in description
