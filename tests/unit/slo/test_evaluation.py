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
    assert alert.severity is AlertSeverity.PAGE
    assert alert.identity == {"service": "shop", "instance": "web-1", "slo": "api",
                              "long_window": "1h", "short_window": "5m",
                              "alertname": PAGE_FAST, "severity": "page"}
    ticket = next(a for a in traffic.manager.active() if a.rule == TICKET_FAST)
    assert ticket.severity is AlertSeverity.TICKET
    assert ticket.identity["severity"] == "ticket"


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
    assert [a.name for a in evaluable_alerts(API, retention)] == windows
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


async def test_factors_follow_the_period_in_process_too() -> None:
    # The exported rules' case: a burn rate of 2 is a slow leak over 30 days (the 3d ticket
    # only) but pages over 7 days (6h/30m at 1.4), whose tickets (0.7 over 1d, 0.2333 over 3d)
    # open too; 1 day keeps the 1d/2h ticket only, at 0.1.
    weekly = SLO("weekly", selector=Selector(routes=("/",)), period_days=7)
    daily = SLO("daily", selector=Selector(routes=("/",)), period_days=1)
    traffic = Traffic((API, weekly, daily))
    weekly_rules = [f"slo_weekly_burn_{name}" for name in ("1h_5m", "6h_30m", "1d_2h", "3d_6h")]
    assert sorted(traffic.manager.rules) == sorted(
        [PAGE_FAST, PAGE_SLOW, TICKET_FAST, TICKET_SLOW, *weekly_rules, "slo_daily_burn_1d_2h"])
    await traffic.minutes(180, 1000, errors=2)
    assert traffic.firing() == {TICKET_SLOW, *weekly_rules[1:], "slo_daily_burn_1d_2h"}
    (page,) = [a for a in traffic.manager.active() if a.rule == "slo_weekly_burn_6h_30m"]
    assert page.severity is AlertSeverity.PAGE and "1.4x" in page.summary
    (ticket,) = [a for a in traffic.manager.active() if a.rule == "slo_weekly_burn_3d_6h"]
    assert ticket.severity is AlertSeverity.TICKET
    assert "at over 0.2333x over 3d and 6h (10% of it in 3d)" in ticket.summary


async def test_a_28_day_period_keeps_the_slow_ticket_under_1_in_process() -> None:
    # A burn rate of 0.95 spends 9.5 % of a 28-day budget in 3 days: over the 3d/6h ticket's
    # 0.9333, under every other factor; 30 days (factor 1) stays quiet.
    four_weeks = SLO("four-weeks", selector=Selector(routes=("/",)), period_days=28)
    traffic = Traffic((API, four_weeks))
    await traffic.minutes(180, 100_000, errors=95)
    assert traffic.firing() == {"slo_four-weeks_burn_3d_6h"}
    (ticket,) = traffic.manager.active()
    assert ticket.severity is AlertSeverity.TICKET and "0.9333x" in ticket.summary


def test_the_summary_and_history_hold_the_scaled_alerts_and_burn_rates() -> None:
    weekly = SLO("weekly", selector=Selector(routes=("/",)), period_days=7, objective_percent=90)
    tracker = SLOTracker((weekly,), 86400)
    requests = errors = 0.0
    for minute in range(30):
        requests += 100
        errors += 20 if minute >= 20 else 0  # 20 % fail from minute 20: a burn rate of 2
        tracker.observe(Sample(time=1000.0 + 60 * minute, monotonic=60.0 * minute, routes={
            "GET /": RouteTotals(requests=requests, errors=errors)}))
    (summary,) = tracker.summary()
    assert summary["alerts"] == [
        {"long_window": "1h", "short_window": "5m", "factor": 3.36, "severity": "page",
         "budget_percent": 2.0},
        {"long_window": "6h", "short_window": "30m", "factor": 1.4, "severity": "page",
         "budget_percent": 5.0},
        # A day of points evaluates the 1d/2h ticket too, not the 3d/6h one.
        {"long_window": "1d", "short_window": "2h", "factor": 0.7, "severity": "ticket",
         "budget_percent": 10.0}]
    # 200 of the 2 900 requests since the first point failed: 6.9 %, 69 % of a 10 % budget.
    assert summary["budget"]["remaining_percent"] == pytest.approx(100 - 200 / 2900 / 0.1 * 100)
    history = tracker.burn_history("weekly", 600, max_points=5)
    assert list(history["burn_rates"]) == ["5m", "30m", "1h", "2h", "6h", "1d"]
    # The 11 points of the last 10 minutes, every third back from the newest.
    assert history["time"] == [1000.0 + 60 * m for m in (20, 23, 26, 29)]
    # Over 5 minutes: 1 then 4 failing minutes of 5 at minutes 20 and 23, then 5 of 5.
    assert history["burn_rates"]["5m"] == pytest.approx([0.4, 1.6, 2, 2])
