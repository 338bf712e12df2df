"""Insights rules on synthetic histories: each fires when it should and stays quiet otherwise,
and says "insufficient_data" rather than guessing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support import Clock

from asgi_monitor import MonitoringConfig, MonitoringError, get_metrics_collector
from asgi_monitor.alerting import Alert, AlertSeverity, AlertState
from asgi_monitor.build import metrics_parts
from asgi_monitor.collector import MetricsCollector
from asgi_monitor.health import HealthCheck, HealthStatus
from asgi_monitor.insights import Insights
from asgi_monitor.insights.rules import InsightRules, linear_fit
from asgi_monitor.monitor import Monitor
from asgi_monitor.timeseries import History, Point, RoutePoint

T0 = 1_700_000_000.0
STEP = 30.0


def point(i: int, *, requests: float = 100, errors: float = 0, p95: float | None = 0.1,
          rss: float | None = 100e6, in_progress: float = 1,
          routes: Sequence[RoutePoint] = ()) -> Point:
    return Point(time=T0 + i * STEP, seconds=STEP, requests=requests, errors=errors,
                 p50=None if p95 is None else p95 / 2, p95=p95, p99=p95, in_progress=in_progress,
                 cpu_percent=10, memory_percent=50, disk_percent=40, rss_bytes=rss,
                 routes=tuple(routes))


def history_of(points: Sequence[Point]) -> History:
    history = History(retention_seconds=3600, interval=STEP)
    for p in points:
        history.append_point(p)
    return history


def report(points: Sequence[Point], **kwargs: Any) -> dict[str, Any]:
    clock = Clock(T0 + len(points) * STEP)
    return Insights(history_of(points), clock=clock, **kwargs).report()


def rule(result: dict[str, Any], name: str) -> dict[str, Any]:
    outcome: dict[str, Any] = result["rules"][name]
    return outcome


def recommendations(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in result["recommendations"] if r["rule"] == name]


# -- the fit --------------------------------------------------------------------------------------
def test_linear_fit_recovers_a_line() -> None:
    fit = linear_fit([0, 60, 120, 180], [10, 12, 14, 16])
    assert fit is not None
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(10)
    assert fit.r2 == pytest.approx(1.0) and fit.rise == pytest.approx(6.0)
    assert linear_fit([0], [1]) is None
    assert linear_fit([5, 5], [1, 2]) is None  # no time spread, no slope


# -- latency_trend --------------------------------------------------------------------------------
def test_latency_trend_fires_on_a_steady_climb() -> None:
    points = [point(i, p95=0.100 + 0.010 * i) for i in range(20)]  # +10 ms per 30 s
    result = report(points)
    outcome = rule(result, "latency_trend")
    assert outcome["status"] == "fired"
    evidence = outcome["evidence"]
    assert evidence["p95_slope_ms_per_min"] == pytest.approx(20.0)
    assert evidence["points"] == 20 and evidence["r2"] == pytest.approx(1.0)
    [item] = recommendations(result, "latency_trend")
    assert item["severity"] == "warning" and item["action"]
    assert "20.0 ms/min" in item["message"]


@pytest.mark.parametrize("p95s", [
    [0.1] * 20,  # flat
    [0.1 + (0.3 if i == 10 else 0) for i in range(20)],  # one spike: poor fit
    [0.100 + 0.0005 * i for i in range(20)],  # rises, but by < 50 ms
    [0.5 - 0.01 * i for i in range(20)],  # falling
])
def test_latency_trend_stays_quiet(p95s: list[float]) -> None:
    result = report([point(i, p95=v) for i, v in enumerate(p95s)])
    assert rule(result, "latency_trend")["status"] == "quiet"
    assert recommendations(result, "latency_trend") == []


def test_latency_trend_without_enough_intervals_says_so() -> None:
    result = report([point(i, p95=0.1 + i) for i in range(3)])
    assert rule(result, "latency_trend")["status"] == "insufficient_data"
    assert rule(result, "latency_trend")["evidence"] == {"points": 3}
    assert "latency_trend" in result["insufficient_data"]
    # Idle intervals (no requests, no p95) do not count as data.
    idle = report([point(i, requests=0, p95=None) for i in range(30)])
    assert rule(idle, "latency_trend")["status"] == "insufficient_data"


# -- error_rate_baseline --------------------------------------------------------------------------
def test_error_rate_fires_against_a_clean_baseline() -> None:
    # 20 min at 0.5 % errors, then the last 5 min at 8 %.
    points = [point(i, errors=0.5) for i in range(40)] + [point(40 + i, errors=8)
                                                          for i in range(10)]
    result = report(points)
    outcome = rule(result, "error_rate_baseline")
    assert outcome["status"] == "fired"
    assert outcome["evidence"]["recent_error_ratio"] == pytest.approx(0.08)
    assert outcome["evidence"]["baseline_error_ratio"] == pytest.approx(0.005)
    assert outcome["evidence"]["recent_requests"] == 1000
    [item] = recommendations(result, "error_rate_baseline")
    assert item["severity"] == "critical"  # >= 5 %


@pytest.mark.parametrize(("baseline", "recent"), [
    (0.5, 0.5),  # steady
    (3.0, 4.0),  # high, but not twice the baseline: a long-standing problem is not a spike
    (0.0, 0.5),  # doubled from nothing, but under the 1 % floor
])
def test_error_rate_stays_quiet(baseline: float, recent: float) -> None:
    points = [point(i, errors=baseline) for i in range(40)] + [point(40 + i, errors=recent)
                                                               for i in range(10)]
    assert rule(report(points), "error_rate_baseline")["status"] == "quiet"


def test_error_rate_needs_requests_in_both_windows() -> None:
    points = [point(i, requests=1, errors=1) for i in range(40)]
    outcome = rule(report(points), "error_rate_baseline")
    assert outcome["status"] == "insufficient_data"
    assert outcome["evidence"]["recent_requests"] == 10


# -- memory_growth --------------------------------------------------------------------------------
def test_memory_growth_fires_on_monotonic_growth() -> None:
    points = [point(i, rss=100e6 + i * 1e6) for i in range(40)]  # +1 MB every 30 s, 20 min
    result = report(points)
    outcome = rule(result, "memory_growth")
    assert outcome["status"] == "fired"
    assert outcome["evidence"]["rss_slope_mb_per_hour"] == pytest.approx(120.0)
    assert outcome["evidence"]["rising_steps_share"] == 1.0
    assert recommendations(result, "memory_growth")[0]["severity"] == "warning"


@pytest.mark.parametrize("rss", [
    [100e6] * 40,  # flat
    [100e6 + (i % 2) * 30e6 for i in range(40)],  # sawtooth (GC): not monotonic
    [100e6 + min(i, 5) * 5e6 for i in range(40)],  # warmed up, then levelled off
])
def test_memory_growth_stays_quiet(rss: list[float]) -> None:
    result = report([point(i, rss=v) for i, v in enumerate(rss)])
    assert rule(result, "memory_growth")["status"] == "quiet"


def test_memory_growth_needs_ten_minutes() -> None:
    result = report([point(i, rss=100e6 + i * 10e6) for i in range(10)])  # 5 min
    assert rule(result, "memory_growth")["status"] == "insufficient_data"
    none = report([point(i, rss=None) for i in range(40)])
    assert rule(none, "memory_growth")["evidence"]["points"] == 0


# -- dominant_route -------------------------------------------------------------------------------
def routes(slow_p95: float, slow_requests: float = 10) -> list[RoutePoint]:
    return [RoutePoint("GET /fast", 90, 0, 0.01), RoutePoint("GET /report", slow_requests, 0,
                                                                 slow_p95)]


def test_dominant_route_fires_when_one_route_takes_most_time() -> None:
    # /report: 10 x 2 s = 20 s per interval, /fast: 90 x 10 ms = 0.9 s.
    result = report([point(i, routes=routes(2.0)) for i in range(10)])
    outcome = rule(result, "dominant_route")
    assert outcome["status"] == "fired"
    assert outcome["evidence"]["route"] == "GET /report"
    assert outcome["evidence"]["time_share"] == pytest.approx(20 / 20.9, abs=1e-3)
    [item] = recommendations(result, "dominant_route")
    assert item["severity"] == "info" and "GET /report" in item["action"]
    assert result["slowest_routes"][0]["route"] == "GET /report"
    assert result["slowest_routes"][0]["p95_ms"] == pytest.approx(2000)


def test_a_sub_millisecond_p95_keeps_its_digits() -> None:
    # 0.493 ms used to read "p95 0 ms x 900 requests".
    fast = [RoutePoint("GET /ping", 900, 0, 0.000493), RoutePoint("GET /other", 10, 0, 0.0001)]
    [item] = recommendations(report([point(i, routes=fast) for i in range(10)]),
                             "dominant_route")
    assert "(p95 0.49 ms x 9000 requests)" in item["message"]
    assert "over the last 5 min" in item["message"]


def test_dominant_route_quiet_when_time_is_spread_and_insufficient_with_one_route() -> None:
    three = [RoutePoint("GET /a", 50, 0, 0.01), RoutePoint("GET /b", 10, 0, 0.04),
             RoutePoint("GET /c", 20, 0, 0.02)]  # 0.5 s, 0.4 s, 0.4 s: the top one has 38 %
    spread = report([point(i, routes=three) for i in range(10)])
    assert rule(spread, "dominant_route")["status"] == "quiet"
    single = report([point(i, routes=[RoutePoint("GET /only", 100, 0, 1.0)])
                     for i in range(10)])
    assert rule(single, "dominant_route")["status"] == "insufficient_data"


# -- low_cache_hit_rate ---------------------------------------------------------------------------
class FakeCache:
    def __init__(self, counts: dict[str, tuple[int, int]]) -> None:
        self.counts = counts

    def lookup_counts(self) -> dict[str, tuple[int, int]]:
        return self.counts

    def hit_rate(self, cache: str | None = None) -> float | None:
        hits, misses = self.counts[cache or ""]
        return hits / (hits + misses)


def test_low_cache_hit_rate_fires_per_cache() -> None:
    cache = FakeCache({"sessions": (30, 170), "users": (900, 100), "tiny": (0, 5)})
    result = report([point(0)], cache=cache)
    outcome = rule(result, "low_cache_hit_rate")
    assert outcome["status"] == "fired"
    assert set(outcome["evidence"]["caches"]) == {"sessions", "users"}  # tiny: too few lookups
    [item] = recommendations(result, "low_cache_hit_rate")
    assert item["evidence"] == {"cache": "sessions", "hit_rate": 0.15, "hits": 30,
                                "misses": 170}


def test_low_cache_hit_rate_quiet_and_insufficient() -> None:
    assert rule(report([point(0)], cache=FakeCache({"users": (900, 100)})),
                "low_cache_hit_rate")["status"] == "quiet"
    assert rule(report([point(0)], cache=FakeCache({"users": (1, 1)})),
                "low_cache_hit_rate")["status"] == "insufficient_data"
    assert rule(report([point(0)]), "low_cache_hit_rate")["status"] == "insufficient_data"


def test_low_cache_hit_rate_reads_the_real_collector(monitor: Monitor) -> None:
    for _ in range(40):
        monitor.collector.cache.hit("pages")
    for _ in range(80):
        monitor.collector.cache.miss("pages")
    outcome = rule(monitor.collector.get_performance_insights(), "low_cache_hit_rate")
    assert outcome["status"] == "fired"
    assert outcome["evidence"]["caches"]["pages"]["hit_rate"] == pytest.approx(1 / 3, abs=1e-4)


# -- in_progress_saturation -----------------------------------------------------------------------
def test_saturation_fires_when_most_recent_samples_are_at_the_limit() -> None:
    points = [point(i, in_progress=150 if i >= 2 else 5) for i in range(10)]
    result = report(points)
    outcome = rule(result, "in_progress_saturation")
    assert outcome["status"] == "fired"
    assert outcome["evidence"]["share_at_or_above"] == pytest.approx(0.8)
    assert outcome["evidence"]["max"] == 150


def test_saturation_quiet_on_a_short_burst_and_insufficient_when_new() -> None:
    burst = [point(i, in_progress=150 if i == 9 else 5) for i in range(10)]
    assert rule(report(burst), "in_progress_saturation")["status"] == "quiet"
    assert rule(report(burst[:3]), "in_progress_saturation")["status"] == "insufficient_data"
    lower = report([point(i, in_progress=150) for i in range(10)],
                   rules=InsightRules(saturation_in_progress=200))
    assert rule(lower, "in_progress_saturation")["status"] == "quiet"


# -- alerts, health and the score -----------------------------------------------------------------
def test_a_quiet_history_scores_100_and_nothing_is_invented() -> None:
    result = report([point(i) for i in range(40)])
    assert result["health_score"] == 100
    assert result["score"]["deductions"] == []
    assert result["alerts"] == [] and result["recommendations"] == []
    assert result["trends"]["p95_ms"]["direction"] == "flat"
    empty = report([])
    assert empty["health_score"] == 100
    assert set(empty["insufficient_data"]) == {
        "latency_trend", "error_rate_baseline", "memory_growth", "dominant_route",
        "low_cache_hit_rate", "in_progress_saturation"}
    assert empty["trends"]["request_rate"] == {"status": "insufficient_data", "points": 0}
    assert empty["slowest_routes"] == [] and empty["error_routes"] == []


def test_score_deducts_health_alerts_findings_and_errors() -> None:
    checks = {
        "database": HealthCheck("database", HealthStatus.CRITICAL, "connection refused"),
        "disk": HealthCheck("disk", HealthStatus.WARNING, "12% free"),
        "memory": HealthCheck("memory", HealthStatus.HEALTHY, "ok"),
    }
    now = datetime.now(timezone.utc)
    alerts = [Alert("high_error_rate", AlertSeverity.CRITICAL, AlertState.FIRING, "5xx > 5%",
                    description="errors", value=0.08, active_since=now),
              Alert("slow", AlertSeverity.WARNING, AlertState.PENDING, "slow responses")]
    # 2 % errors all along (no baseline spike), latency climbing (a warning finding).
    points = [point(i, errors=2, p95=0.1 + 0.01 * i) for i in range(20)]
    result = report(points, health=lambda: checks, critical_checks=lambda: {"database"},
                    alerts=lambda: alerts)
    reasons = {d["reason"]: d["points"] for d in result["score"]["deductions"]}
    assert reasons == {
        "health check database is critical": 30,
        "health check disk is warning": 10,
        "alert high_error_rate is firing (critical)": 20,
        "alert slow is pending (warning)": 5,
        "rule latency_trend fired (warning)": 10,
        "5xx ratio 2.00 % over the last 5 min of history": 6.0,
    }
    assert result["health_score"] == 100 - 81
    by_rule = {(a["rule"], a["severity"]) for a in result["alerts"]}
    assert by_rule == {("alert_manager", "critical"), ("alert_manager", "warning"),
                       ("health_check", "critical"), ("health_check", "warning")}
    firing = next(a for a in result["alerts"] if a["evidence"].get("alert") == "high_error_rate")
    assert firing["evidence"]["value"] == 0.08 and firing["evidence"]["state"] == "firing"


def test_score_is_clamped_and_each_source_capped() -> None:
    checks = {f"c{i}": HealthCheck(f"c{i}", HealthStatus.CRITICAL, "down") for i in range(5)}
    points = [point(i, errors=100) for i in range(20)]  # 100 % errors
    result = report(points, health=lambda: checks, critical_checks=lambda: set(checks))
    health = sum(d["points"] for d in result["score"]["deductions"] if d["source"] == "health")
    assert health == 60
    assert result["health_score"] == 10  # 100 - 60 - 30 (errors capped at 30)


def test_every_item_names_its_rule_and_evidence() -> None:
    points = [point(i, errors=0.5, p95=0.1 + 0.01 * i, rss=100e6 + i * 1e6, in_progress=200,
                    routes=routes(2.0)) for i in range(40)]
    points += [point(40 + i, errors=9, p95=0.5 + 0.01 * i, rss=140e6 + i * 1e6,
                     in_progress=200, routes=routes(2.0)) for i in range(10)]
    result = report(points, cache=FakeCache({"c": (1, 200)}))
    fired = {r["rule"] for r in result["recommendations"]}
    assert fired == {"latency_trend", "error_rate_baseline", "memory_growth", "dominant_route",
                     "low_cache_hit_rate", "in_progress_saturation"}
    for item in result["recommendations"]:
        assert item["message"] and item["action"] and item["evidence"]
        assert item["severity"] in {"info", "warning", "critical"}
    assert result["generated_at"].startswith("2023-11-14T")


# -- wiring ---------------------------------------------------------------------------------------
def test_get_performance_insights_reads_the_monitors_history(monitor: Monitor) -> None:
    assert get_metrics_collector() is monitor.collector
    for i in range(8):
        monitor.history.append_point(point(i))
    result = get_metrics_collector().get_performance_insights()
    assert result["window"]["points"] == 8
    assert set(result) >= {"health_score", "alerts", "recommendations", "trends",
                           "slowest_routes", "error_routes", "generated_at"}


def test_a_bare_collector_says_it_has_no_history() -> None:
    settings, registry = MonitoringConfig().metrics, CollectorRegistry()
    collector = MetricsCollector(settings, registry, metrics_parts(settings, registry))
    with pytest.raises(MonitoringError, match="no history"):
        collector.get_performance_insights()
