"""The rules behind :mod:`asgi_monitor.insights`: thresholds, the least-squares fit, and one
function per rule over history points. Each returns a :class:`RuleOutcome` whose ``evidence``
holds the measured values it decided on (docs/dashboard.md, "Performance insights", documents
the rules)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..timeseries import Point

__all__ = ["CacheStats", "Finding", "Fit", "InsightRules", "RouteStats", "RuleOutcome",
           "dominant_route", "error_rate_baseline", "in_progress_saturation", "latency_trend",
           "insufficient", "linear_fit", "low_cache_hit_rate", "memory_growth", "ms_text",
           "rounded",
           "route_stats", "span", "verdict"]

Status = Literal["fired", "quiet", "insufficient_data"]
Severity = Literal["info", "warning", "critical"]


class CacheStats(Protocol):
    """What the cache rule reads (``collector.cache`` is one)."""

    def hit_rate(self, cache: str | None = None) -> float | None: ...

    def lookup_counts(self) -> dict[str, tuple[int, int]]: ...


@dataclass(frozen=True)
class InsightRules:
    """Thresholds of the rules (docs/dashboard.md, "Performance insights")."""

    recent_seconds: float = 300.0
    trend_seconds: float = 900.0
    min_points: int = 6
    min_requests: int = 20
    latency_trend_min_rise_ms: float = 50.0
    latency_trend_min_rise_fraction: float = 0.25
    latency_trend_min_r2: float = 0.5
    error_ratio_floor: float = 0.01
    error_ratio_factor: float = 2.0
    error_ratio_critical: float = 0.05
    memory_min_seconds: float = 600.0
    memory_min_growth_fraction: float = 0.10
    memory_min_r2: float = 0.8
    memory_min_rising_share: float = 0.8
    dominant_route_share: float = 0.6
    cache_min_lookups: int = 100
    cache_min_hit_rate: float = 0.5
    saturation_in_progress: float = 100.0
    saturation_share: float = 0.8
    top_routes: int = 5


@dataclass(frozen=True)
class Fit:
    slope: float  # per minute
    intercept: float  # the fitted value at the first point
    r2: float
    points: int
    span_minutes: float

    @property
    def rise(self) -> float:
        """The fitted change from the first point to the last."""
        return self.slope * self.span_minutes


def linear_fit(times: Sequence[float], values: Sequence[float]) -> Fit | None:
    """Least-squares line through (minutes since the first time, value); None below 2 points."""
    n = len(values)
    if n < 2:
        return None
    xs = [(t - times[0]) / 60.0 for t in times]
    mean_x, mean_y = sum(xs) / n, sum(values) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, values, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for y in values)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, values, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    return Fit(slope, intercept, r2, n, xs[-1])


@dataclass
class Finding:
    severity: Severity
    message: str
    action: str
    evidence: dict[str, Any]


@dataclass
class RuleOutcome:
    """What one rule concluded, with the values it looked at."""

    rule: str
    status: Status
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "evidence": self.evidence}
        if self.reason:
            out["reason"] = self.reason
        return out


def verdict(rule: str, evidence: dict[str, Any], fired: bool,
            finding: Finding) -> RuleOutcome:
    """``fired`` with its one finding, or ``quiet``; the evidence is reported either way."""
    if not fired:
        return RuleOutcome(rule, "quiet", evidence)
    return RuleOutcome(rule, "fired", evidence, findings=[finding])


def ms_text(value: float) -> str:
    """Milliseconds as the dashboard shows them (two decimals under 1 ms, one under 10): a
    0.493 ms p95 reads "0.49 ms", never "0 ms"."""
    digits = 2 if abs(value) < 1 else 1 if abs(value) < 10 else 0
    return f"{value:.{digits}f} ms"


def insufficient(rule: str, reason: str, **evidence: Any) -> RuleOutcome:
    return RuleOutcome(rule, "insufficient_data", evidence, reason)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class RouteStats:
    route: str
    requests: float = 0.0
    errors: float = 0.0
    weighted_p95: float = 0.0  # sum(requests x p95) over intervals with a p95
    p95_requests: float = 0.0
    max_p95: float = 0.0

    def to_dict(self, seconds: float) -> dict[str, Any]:
        return {
            "route": self.route,
            "requests": round(self.requests),
            "errors": round(self.errors),
            "rate": rounded(self.requests / seconds if seconds > 0 else None),
            "error_ratio": rounded(self.errors / self.requests if self.requests else None, 4),
            "p95_ms": rounded(self.weighted_p95 / self.p95_requests * 1000
                         if self.p95_requests else None),
            "max_p95_ms": rounded(self.max_p95 * 1000 if self.p95_requests else None),
        }


def route_stats(points: Sequence[Point]) -> dict[str, RouteStats]:
    """Per-route totals over ``points``; p95 is the request-weighted mean of interval p95s."""
    stats: dict[str, RouteStats] = {}
    for point in points:
        for route in point.routes:
            entry = stats.setdefault(route.route, RouteStats(route.route))
            entry.requests += route.requests
            entry.errors += route.errors
            if route.p95 is not None:
                entry.weighted_p95 += route.requests * route.p95
                entry.p95_requests += route.requests
                entry.max_p95 = max(entry.max_p95, route.p95)
    return stats


def latency_trend(window: Sequence[Point], r: InsightRules) -> RuleOutcome:
    """p95 latency climbing steadily over ``window`` (the trend window)."""
    rule = "latency_trend"
    usable = [p for p in window if p.p95 is not None and p.requests > 0]
    values = [(p.p95 or 0.0) * 1000 for p in usable]
    fit = linear_fit([p.instant for p in usable], values)
    if len(usable) < r.min_points or fit is None:
        return insufficient(rule, f"needs {r.min_points} intervals with requests in the "
                             f"last {r.trend_seconds:g}s", points=len(usable))
    mean = statistics.fmean(values)
    evidence = {"p95_slope_ms_per_min": rounded(fit.slope), "rise_ms": rounded(fit.rise),
                "mean_p95_ms": rounded(mean), "first_p95_ms": rounded(values[0]),
                "last_p95_ms": rounded(values[-1]), "r2": rounded(fit.r2),
                "points": fit.points, "span_seconds": rounded(fit.span_minutes * 60, 1)}
    fired = (fit.rise >= r.latency_trend_min_rise_ms
             and fit.rise >= r.latency_trend_min_rise_fraction * mean
             and fit.r2 >= r.latency_trend_min_r2)
    return verdict(rule, evidence, fired, Finding(
        "warning",
        f"p95 latency is climbing by {fit.slope:.1f} ms/min (+{ms_text(fit.rise)} over "
        f"the last {fit.span_minutes:.0f} min, mean {ms_text(mean)})",
        "Look at slowest_routes and at what changed (deploys, data growth, a slow "
        "dependency); profile the top route before latency reaches users' patience.",
        evidence))


def error_rate_baseline(recent: Sequence[Point], baseline: Sequence[Point],
                        r: InsightRules) -> RuleOutcome:
    """The recent 5xx ratio against the baseline's."""
    rule = "error_rate_baseline"
    recent_requests = sum(p.requests for p in recent)
    baseline_requests = sum(p.requests for p in baseline)
    recent_errors = sum(p.errors for p in recent)
    baseline_errors = sum(p.errors for p in baseline)
    evidence: dict[str, Any] = {
        "recent_requests": round(recent_requests), "recent_errors": round(recent_errors),
        "baseline_requests": round(baseline_requests),
        "baseline_errors": round(baseline_errors),
        "recent_seconds": rounded(span(recent), 1), "baseline_seconds": rounded(span(baseline), 1)}
    if recent_requests < r.min_requests or baseline_requests < r.min_requests:
        return insufficient(rule, f"needs {r.min_requests} requests in both the recent "
                             "and the baseline window", **evidence)
    ratio = recent_errors / recent_requests
    base = baseline_errors / baseline_requests
    evidence.update(recent_error_ratio=rounded(ratio, 4), baseline_error_ratio=rounded(base, 4))
    fired = ratio >= r.error_ratio_floor and ratio >= r.error_ratio_factor * base
    severity: Severity = "critical" if ratio >= r.error_ratio_critical else "warning"
    return verdict(rule, evidence, fired, Finding(
        severity,
        f"5xx ratio is {ratio * 100:.2f} % over the last {r.recent_seconds / 60:g} min of "
        f"history, against {base * 100:.2f} % before",
        "Check error_routes and the application logs for the new failures; roll back a "
        "recent deploy if they started with it.", evidence))


def memory_growth(points: Sequence[Point], r: InsightRules) -> RuleOutcome:
    """Process RSS growing steadily over ``points`` (the whole history)."""
    rule = "memory_growth"
    usable = [p for p in points if p.rss_bytes is not None]
    values = [(p.rss_bytes or 0) / 1e6 for p in usable]
    seconds = span(usable)
    fit = linear_fit([p.instant for p in usable], values)
    if len(usable) < r.min_points or seconds < r.memory_min_seconds or fit is None:
        return insufficient(rule, f"needs {r.min_points} RSS readings over "
                             f"{r.memory_min_seconds:g}s", points=len(usable),
                             span_seconds=rounded(seconds, 1))
    rising = sum(b >= a for a, b in zip(values, values[1:], strict=False)) / (len(values) - 1)
    growth = fit.rise / fit.intercept if fit.intercept > 0 else 0.0
    evidence = {"rss_slope_mb_per_hour": rounded(fit.slope * 60), "growth_mb": rounded(fit.rise),
                "growth_fraction": rounded(growth, 4), "first_mb": rounded(values[0]),
                "last_mb": rounded(values[-1]), "r2": rounded(fit.r2),
                "rising_steps_share": rounded(rising), "points": fit.points,
                "span_seconds": rounded(seconds, 1)}
    fired = (fit.slope > 0 and growth >= r.memory_min_growth_fraction
             and fit.r2 >= r.memory_min_r2 and rising >= r.memory_min_rising_share)
    return verdict(rule, evidence, fired, Finding(
        "warning",
        f"process memory grew steadily from {values[0]:.0f} MB to {values[-1]:.0f} MB "
        f"({fit.slope * 60:.1f} MB/hour)",
        "This looks like a leak: compare two tracemalloc snapshots a few minutes apart, and "
        "look for unbounded caches, module-level lists and per-request globals.", evidence))


def dominant_route(recent: Sequence[Point], r: InsightRules) -> RuleOutcome:
    """One route taking most of the serving time (requests x p95)."""
    rule = "dominant_route"
    stats = {k: s for k, s in route_stats(recent).items() if s.p95_requests}
    total_requests = sum(s.requests for s in stats.values())
    times = {k: s.weighted_p95 for k, s in stats.items()}
    total_time = sum(times.values())
    if len(stats) < 2 or total_requests < r.min_requests or total_time <= 0:
        return insufficient(rule, f"needs 2 routes and {r.min_requests} requests in the "
                             "recent window", routes=len(stats),
                             requests=round(total_requests))
    route = max(times, key=lambda k: times[k])
    top = stats[route]
    share = times[route] / total_time
    evidence = {"route": route, "time_share": rounded(share, 4),
                "p95_ms": rounded(top.weighted_p95 / top.p95_requests * 1000),
                "requests": round(top.requests), "routes": len(stats),
                "total_requests": round(total_requests)}
    return verdict(rule, evidence, share >= r.dominant_route_share, Finding(
        "info",
        f"{route} accounts for {share:.0%} of the time spent serving requests over the last "
        f"{r.recent_seconds / 60:g} min (p95 {ms_text(top.weighted_p95 / top.p95_requests * 1000)}"
        f" x {top.requests:.0f} requests)",
        f"Optimise or cache {route} first: it is where most serving time goes.",
        evidence))


def low_cache_hit_rate(cache: CacheStats | None, r: InsightRules) -> RuleOutcome:
    """Caches with enough lookups and a low hit rate."""
    rule = "low_cache_hit_rate"
    if cache is None:
        return insufficient(rule, "no cache metrics")
    counts: dict[str, tuple[int, int]] = cache.lookup_counts()
    caches: dict[str, dict[str, Any]] = {}
    findings = []
    for name, (hits, misses) in sorted(counts.items()):
        if hits + misses < r.cache_min_lookups:
            continue
        rate = cache.hit_rate(name)
        entry = caches[name] = {"hit_rate": rounded(rate, 4), "hits": hits, "misses": misses}
        if rate is not None and rate < r.cache_min_hit_rate:
            findings.append(Finding(
                "warning", f"cache {name!r} hits only {rate:.0%} of {hits + misses} lookups",
                f"Check the keys and the expiry of cache {name!r}: a cache that mostly "
                "misses adds latency and load instead of saving them.",
                {"cache": name, **entry}))
    if not caches:
        return insufficient(rule, f"needs a cache with {r.cache_min_lookups} lookups",
                             lookups={k: h + m for k, (h, m) in counts.items()})
    return RuleOutcome(rule, "fired" if findings else "quiet", {"caches": caches},
                       findings=findings)


def in_progress_saturation(recent: Sequence[Point], r: InsightRules) -> RuleOutcome:
    """Requests in progress at or above the threshold in most recent intervals."""
    rule = "in_progress_saturation"
    if len(recent) < r.min_points:
        return insufficient(rule, f"needs {r.min_points} intervals in the recent window",
                             points=len(recent))
    values = [p.in_progress for p in recent]
    share = sum(v >= r.saturation_in_progress for v in values) / len(values)
    evidence = {"threshold": r.saturation_in_progress, "share_at_or_above": rounded(share),
                "median": statistics.median(values), "max": max(values),
                "points": len(values)}
    return verdict(rule, evidence, share >= r.saturation_share, Finding(
        "warning",
        f"{share:.0%} of recent samples had >= {r.saturation_in_progress:g} requests in "
        f"progress (median {evidence['median']:g})",
        "Requests are queuing: add workers or capacity, and look for a slow downstream "
        "dependency or blocking calls on the event loop.", evidence))


def span(points: Sequence[Point]) -> float:
    """Seconds covered by ``points`` (each covers the interval that ends at its time)."""
    if not points:
        return 0.0
    return points[-1].instant - points[0].instant + points[0].seconds
