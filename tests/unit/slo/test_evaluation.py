"""The burn-rate alerts in process: the workbook's behaviour over the monitor's own samples,
on a clock the test moves; what a retention can evaluate; what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support import Clock

from asgi_monitor import MonitoringConfig, build_monitor
from asgi_monitor.alerting import AlertManager
from asgi_monitor.alerting.models import AlertSeverity
from asgi_monitor.config import AlertSettings, SLOSettings
from asgi_monitor.errors import ConfigError
from asgi_monitor.sampling.samples import RouteTotals, Sample, SampleBuffer
from asgi_monitor.slo import SLI, SLO, Selector
from asgi_monitor.slo.evaluation import SLOTracker, evaluable_alerts, install_slo_rules


class Traffic:
    """Samples a minute apart of cumulative totals on GET / (and a quiet GET /other)."""

    def __init__(self, slos: tuple[SLO, ...], retention: float = 259200.0) -> None:
        self.clock = Clock()
        self.manager = AlertManager(clock=self.clock, monotonic=self.clock,
                                    identity=lambda: {"service": "shop", "instance": "web-1"})
        self.samples = SampleBuffer(retention_seconds=600)
        self.tracker = SLOTracker(slos, retention)
        install_slo_rules(self.manager, self.tracker, self.samples, cooldown_seconds=600)
        self.requests = self.errors = self.fast = 0.0

    async def minutes(self, count: int, requests: float, errors: float = 0.0,
                      slow: float = 0.0) -> None:
        for _ in range(count):
            self.clock.advance(60)
            self.requests += requests
            self.errors += errors
            self.fast += requests - slow
            buckets = ((0.25, self.fast), (float("inf"), self.requests))
            self.samples.add(Sample(time=self.clock(), monotonic=self.clock(), routes={
                "GET /": RouteTotals(requests=self.requests, errors=self.errors,
                                     duration_count=self.requests, buckets=buckets),
                "GET /other": RouteTotals(requests=1000, errors=1000)}))
            await self.manager.evaluate()

    def firing(self) -> set[str]:
        return {a.rule for a in self.manager.active()}


API = SLO("api", selector=Selector(routes=("/",)))
PAGE_FAST, PAGE_SLOW = "slo_api_burn_1h_5m", "slo_api_burn_6h_30m"
TICKET_FAST, TICKET_SLOW = "slo_api_burn_1d_2h", "slo_api_burn_3d_6h"


async def test_a_fast_burn_pages_within_minutes() -> None:
    traffic = Traffic((API,))
    await traffic.minutes(60, 100)
    assert traffic.firing() == set()
    await traffic.minutes(2, 100, errors=100)  # a burn rate of 1000
    assert traffic.firing() == {PAGE_FAST, PAGE_SLOW, TICKET_FAST, TICKET_SLOW}
    alert = next(a for a in traffic.manager.active() if a.rule == PAGE_FAST)
    assert alert.severity is AlertSeverity.CRITICAL
    assert alert.labels == {"service": "shop", "instance": "web-1", "slo": "api",
                            "slo_severity": "page", "long_window": "1h", "short_window": "5m"}
    ticket = next(a for a in traffic.manager.active() if a.rule == TICKET_FAST)
    assert ticket.severity is AlertSeverity.WARNING
    assert ticket.labels["slo_severity"] == "ticket"


async def test_a_slow_burn_opens_a_ticket_but_pages_nobody() -> None:
    traffic = Traffic((API,))
    await traffic.minutes(180, 1000, errors=5)  # 0.5 %: a burn rate of 5
    assert traffic.firing() == {TICKET_FAST, TICKET_SLOW}
    assert traffic.tracker.burn_rate("api", 3600) == pytest.approx(5)


async def test_a_short_burst_that_stops_resets_the_pages() -> None:
    traffic = Traffic((API,))
    await traffic.minutes(60, 100)
    await traffic.minutes(3, 100, errors=50)
    assert {PAGE_FAST, PAGE_SLOW} <= traffic.firing()
    await traffic.minutes(10, 100)
    assert PAGE_FAST not in traffic.firing() and PAGE_SLOW in traffic.firing()
    await traffic.minutes(30, 100)
    assert traffic.firing() == {TICKET_FAST, TICKET_SLOW}  # the budget it spent


async def test_a_latency_slo_counts_the_requests_under_its_threshold() -> None:
    slo = SLO("fast", SLI("latency", threshold_seconds=0.25), objective_percent=99)
    traffic = Traffic((slo,))
    await traffic.minutes(30, 100, slow=0.5)  # 0.5 % slow: a burn rate of 0.5
    assert traffic.firing() == set()
    assert traffic.tracker.error_ratio("fast", 300) == pytest.approx(0.005)
    await traffic.minutes(5, 100, slow=100)
    assert "slo_fast_burn_1h_5m" in traffic.firing()


async def test_no_traffic_no_alert_and_no_ratio() -> None:
    traffic = Traffic((SLO("quiet", selector=Selector(methods=("POST",))),))
    await traffic.minutes(10, 100, errors=100)
    assert traffic.firing() == set()
    assert traffic.tracker.error_ratio("quiet", 300) is None


@pytest.mark.parametrize(("retention", "windows"), [
    (3600, ["1h_5m"]),
    (86400, ["1h_5m", "6h_30m", "1d_2h"]),
    (259200, ["1h_5m", "6h_30m", "1d_2h", "3d_6h"]),
])
def test_the_retention_decides_which_alerts_are_evaluated(retention: float,
                                                          windows: list[str]) -> None:
    assert [a.name for a in evaluable_alerts(retention)] == windows
    monitor = build_monitor(MonitoringConfig(
        alerts=AlertSettings(default_rules=False),
        slo=SLOSettings(objectives=(API,), retention_seconds=retention)), CollectorRegistry())
    assert sorted(monitor.alerts.rules) == sorted(f"slo_api_burn_{w}" for w in windows)


def test_in_process_can_be_off() -> None:
    monitor = build_monitor(MonitoringConfig(
        alerts=AlertSettings(default_rules=False),
        slo=SLOSettings(objectives=(API,), in_process=False)), CollectorRegistry())
    assert monitor.alerts.rules == {}


@pytest.mark.parametrize(("config", "message"), [
    ({"slo": SLOSettings(objectives=(API,), retention_seconds=1800)},
     "MONITORING_SLO_RETENTION .* must be at least 3600"),
    ({"slo": SLOSettings(objectives=(API,)), "alerts": AlertSettings(check_interval_seconds=300)},
     "ALERT_CHECK_INTERVAL .* must be at most 150"),
    ({"slo": SLOSettings(objectives=(SLO("x", SLI(bad_status="5..|429")),))},
     "cannot be evaluated in process .*MONITORING_SLO_IN_PROCESS=false"),
])
def test_what_in_process_evaluation_cannot_honour_is_refused(config: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MonitoringConfig(**config)
    off = config["slo"]
    MonitoringConfig(**{**config, "slo": SLOSettings(objectives=off.objectives,
                                                     retention_seconds=off.retention_seconds,
                                                     in_process=False)})
