"""Performance insights: a health score, findings and trends computed from the history.

``get_metrics_collector().get_performance_insights()`` returns :meth:`Insights.report`. Every
finding names its ``rule`` and the ``evidence`` it was computed from, and a rule without enough
data reports ``"insufficient_data"`` instead of guessing. The rules, their thresholds (fields of
:class:`InsightRules`) and the score's formula: docs/dashboard.md, "Performance insights".
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from ..alerting.models import Alert, AlertSeverity, AlertState
from ..health.models import HealthCheck, HealthStatus
from ..timeseries import History, Point
from ..units import ms
from .rules import (
    CacheStats,
    InsightRules,
    RuleOutcome,
    dominant_route,
    error_rate_baseline,
    in_progress_saturation,
    latency_trend,
    linear_fit,
    low_cache_hit_rate,
    memory_growth,
    rounded,
    route_stats,
    span,
)

__all__ = ["InsightRules", "Insights"]


class Insights:
    """Reads the history (and health, alerts, cache) and reports; docs/dashboard.md says how."""

    def __init__(
        self,
        history: History,
        *,
        health: Callable[[], Mapping[str, HealthCheck]] = dict,
        critical_checks: Callable[[], set[str]] = set,
        alerts: Callable[[], Sequence[Alert]] = list,
        cache: CacheStats | None = None,
        rules: InsightRules | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.history = history
        self._health = health
        self._critical_checks = critical_checks
        self._alerts = alerts
        self._cache = cache
        self.rules = rules or InsightRules()
        self._clock = clock

    # -- the report -----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        points = self.history.points()
        recent, baseline = self._split(points)
        r = self.rules
        trend_points = self.history.points(seconds=r.trend_seconds)
        outcomes = [
            latency_trend(trend_points, r),
            error_rate_baseline(recent, baseline, r),
            memory_growth(points, r),
            dominant_route(recent, r),
            low_cache_hit_rate(self._cache, r),
            in_progress_saturation(recent, r),
        ]
        alerts = self._alert_items() + self._health_items()
        recommendations = [
            {"message": f.message, "action": f.action, "severity": f.severity,
             "rule": o.rule, "evidence": f.evidence}
            for o in outcomes for f in o.findings
        ]
        covered = span(trend_points)
        stats = route_stats(trend_points)
        slowest = sorted((s for s in stats.values() if s.p95_requests),
                         key=lambda s: -s.weighted_p95 / s.p95_requests)
        failing = sorted((s for s in stats.values() if s.errors > 0),
                         key=lambda s: (-s.errors, -s.errors / s.requests))
        score, deductions = self._score(outcomes, recent)
        return {
            "health_score": score,
            "score": {"deductions": deductions,
                      "formula": "100 - health - alerts - findings - errors, clamped to 0..100"},
            "alerts": alerts,
            "recommendations": recommendations,
            "trends": self.trends(trend_points),
            "slowest_routes": [s.to_dict(covered) for s in slowest[:self.rules.top_routes]],
            "error_routes": [s.to_dict(covered) for s in failing[:self.rules.top_routes]],
            "rules": {o.rule: o.to_dict() for o in outcomes},
            "insufficient_data": sorted(o.rule for o in outcomes
                                        if o.status == "insufficient_data"),
            "window": {"points": len(points), "seconds": rounded(span(points), 1),
                       "recent_seconds": self.rules.recent_seconds,
                       "trend_seconds": self.rules.trend_seconds,
                       "interval_seconds": self.history.interval},
            "thresholds": asdict(self.rules),
            "generated_at": datetime.fromtimestamp(self._clock(), timezone.utc).isoformat(),
        }

    def _split(self, points: list[Point]) -> tuple[list[Point], list[Point]]:
        if not points:
            return [], []
        horizon = points[-1].instant - self.rules.recent_seconds
        return ([p for p in points if p.instant > horizon],
                [p for p in points if p.instant <= horizon])

    # -- alerts, health, trends, score ----------------------------------------------------------
    def _alert_items(self) -> list[dict[str, Any]]:
        items = []
        for alert in self._alerts():
            items.append({
                "message": alert.summary or alert.rule, "severity": alert.severity.value,
                "description": alert.description, "rule": "alert_manager",
                "evidence": {"alert": alert.rule, "state": alert.state.value,
                             "value": alert.value,
                             "active_since": (alert.active_since.isoformat()
                                              if alert.active_since else None)}})
        return items

    def _health_items(self) -> list[dict[str, Any]]:
        items = []
        critical = self._critical_checks()
        for name, result in sorted(self._health().items()):
            if result.status not in (HealthStatus.WARNING, HealthStatus.CRITICAL):
                continue
            items.append({
                "message": f"health check {name} is {result.status.value}: {result.message}",
                "severity": result.status.value, "rule": "health_check",
                "evidence": {"check": name, "status": result.status.value,
                             "critical_check": name in critical,
                             "observed_value": result.observed_value,
                             "observed_unit": result.observed_unit}})
        return items

    def trends(self, points: Sequence[Point]) -> dict[str, Any]:
        """A least-squares line per series over ``points`` (direction: rising/falling/flat,
        flat when the fitted change is under 5 % of the mean)."""
        series: dict[str, Callable[[Point], float | None]] = {
            "request_rate": lambda p: p.request_rate,
            "error_ratio": lambda p: p.error_ratio,
            "p95_ms": lambda p: ms(p.p95),
            "in_progress": lambda p: p.in_progress,
            "cpu_percent": lambda p: p.cpu_percent,
            "memory_percent": lambda p: p.memory_percent,
            "rss_mb": lambda p: None if p.rss_bytes is None else p.rss_bytes / 1e6,
        }
        out: dict[str, Any] = {}
        for name, read in series.items():
            pairs = [(p.instant, v) for p in points if (v := read(p)) is not None]
            fit = linear_fit([t for t, _ in pairs], [v for _, v in pairs])
            if len(pairs) < self.rules.min_points or fit is None:
                out[name] = {"status": "insufficient_data", "points": len(pairs)}
                continue
            mean = statistics.fmean(v for _, v in pairs)
            flat = abs(fit.rise) < 0.05 * abs(mean) or fit.rise == 0
            out[name] = {"slope_per_min": rounded(fit.slope, 6),
                         "first": rounded(pairs[0][1], 6), "last": rounded(pairs[-1][1], 6),
                         "mean": rounded(mean, 6), "r2": rounded(fit.r2), "points": fit.points,
                         "direction": "flat" if flat else "rising" if fit.rise > 0
                         else "falling"}
        return out

    def _score(self, outcomes: Sequence[RuleOutcome],
               recent: Sequence[Point]) -> tuple[int, list[dict[str, Any]]]:
        deductions: list[dict[str, Any]] = []
        critical = self._critical_checks()
        health: list[tuple[float, str]] = []
        for name, result in sorted(self._health().items()):
            points: float
            if result.status is HealthStatus.CRITICAL:
                points = 30 if name in critical else 10
            elif result.status is HealthStatus.WARNING:
                points = 10
            else:
                continue
            health.append((points, f"health check {name} is {result.status.value}"))
        alert_weights = {AlertSeverity.CRITICAL: 20, AlertSeverity.WARNING: 10,
                         AlertSeverity.INFO: 2}
        alerts = [(alert_weights[a.severity.level] / (1 if a.state is AlertState.FIRING else 2),
                   f"alert {a.rule} is {a.state.value} ({a.severity.value})")
                  for a in self._alerts()]
        finding_weights = {"critical": 15, "warning": 10, "info": 0}
        findings: list[tuple[float, str]] = [
            (finding_weights[f.severity], f"rule {o.rule} fired ({f.severity})")
            for o in outcomes for f in o.findings if finding_weights[f.severity]]
        for source, terms, cap in (("health", health, 60), ("alerts", alerts, 40),
                                   ("findings", findings, 30)):
            budget = float(cap)
            for points, reason in terms:
                taken = min(points, budget)
                budget -= taken
                deductions.append({"source": source, "points": taken, "reason": reason})
        requests = sum(p.requests for p in recent)
        if requests >= self.rules.min_requests:
            ratio = sum(p.errors for p in recent) / requests
            points = min(30.0, 300.0 * ratio)
            if points > 0:
                deductions.append({"source": "errors", "points": rounded(points, 2),
                                   "reason": f"5xx ratio {ratio * 100:.2f} % over the last "
                                             f"{self.rules.recent_seconds / 60:g} min of "
                                             "history"})
        total = sum(d["points"] for d in deductions)
        return max(0, min(100, round(100 - total))), deductions


