"""The data behind the dashboard endpoints: the metrics summary and the export document.

Plain functions of a monitor (:class:`~asgi_monitor.web.parts.MonitorParts`) returning
JSON-able dicts; the endpoints in :mod:`asgi_monitor.web.dashboard` only encode them.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .._version import __version__
from ..alerting.models import AlertState
from ..health.models import HealthStatus
from ..insights.rules import route_stats, span
from ..sampling.samples import Sample, quantile_shown
from ..timeseries import COLUMNS
from ..units import ms
from .parts import MonitorParts

__all__ = ["alert_value", "busiest_routes", "error_window", "export_document", "health_view",
           "history_document", "overall_status", "states_figure", "streams_view", "summary"]

# The dashboard's route table covers this much history: one interval is too noisy at 5 s.
ROUTES_WINDOW_SECONDS = 300.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat()


def current_sample(monitor: MonitorParts) -> Sample:
    """The newest sample; one read now if the sampler has not run yet (no lifespan, tests)."""
    latest = monitor.samples.latest()
    return latest if latest is not None else monitor.sampler.take()


def health_view(monitor: MonitorParts) -> dict[str, Any]:
    checks = monitor.health.checks
    results = monitor.health.results()
    return {
        "status": monitor.health.overall().value,
        "checks": {name: {**result.public_view(admin=True),
                          "critical": checks[name].critical if name in checks else True}
                   for name, result in results.items()},
    }


_NUMBER = re.compile(r"\d+(?:\.(\d+))?")


def states_figure(message: str, value: object) -> bool:
    """Whether ``message`` already states ``value``: a number in it equals the value rounded
    to that number's decimals ("memory 7.0% used" states 7.03). A health tile then shows the
    figure once, in the check's words, instead of again as "7.0 percent"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    for found in _NUMBER.finditer(message):
        decimals = len(found.group(1) or "")
        if round(float(value), decimals) == float(found.group(0)):
            return True
    return False


# Worst last: the badge shows the highest-ranked of the health status and the firing alerts.
_RANK = ("unknown", "healthy", "warning", "critical")


def overall_status(monitor: MonitorParts) -> dict[str, Any]:
    """The header badge: the worst of the health status and the severities of the firing
    alerts (``info`` and pending alerts leave it as it is), with the reason in words."""
    health = monitor.health.overall().value
    status = health
    firing: dict[str, int] = {}
    for alert in monitor.alerts.active():
        if alert.state is AlertState.FIRING:
            severity = alert.severity.value
            firing[severity] = firing.get(severity, 0) + 1
            level = alert.severity.level.value
            if level in _RANK and _RANK.index(level) > _RANK.index(status):
                status = level
    reasons = [f"health {health}"] + [
        f"{count} {severity} alert{'s' if count > 1 else ''} firing"
        for severity, count in sorted(firing.items())]
    return {"status": status, "health": health, "firing": firing,
            "reason": ", ".join(reasons)}


def error_window(monitor: MonitorParts) -> dict[str, Any]:
    """The 5xx ratio the ``high_error_rate`` rule reads: over the alerts section's
    ``window_seconds`` of the sample buffer, not the last history interval (a few seconds, so
    the card would read 0 % beside a firing alert)."""
    seconds = monitor.config.alerts.window_seconds
    window = monitor.samples.window(seconds)
    return {"seconds": seconds,
            "requests": window.increase("requests") if window is not None else 0.0,
            "error_ratio": window.ratio("errors", "requests") if window is not None else None}


def summary(monitor: MonitorParts) -> dict[str, Any]:
    """``GET /api/metrics/summary``: totals since start, the last interval's rates, gauges."""
    sample = current_sample(monitor)
    point = monitor.history.latest()
    last_interval: dict[str, Any] | None = None
    if point is not None:
        last_interval = {
            "end": _iso(point.time), "seconds": round(point.seconds, 3),
            "requests": point.requests, "request_rate": round(point.request_rate, 4),
            "errors": point.errors, "error_ratio": point.error_ratio,
            "latency_ms": {"p50": ms(point.p50, 3), "p95": ms(point.p95, 3),
                           "p99": ms(point.p99, 3)},
        }
    stats = monitor.alerts.stats()
    return {
        "generated_at": _now(),
        "sampled_at": _iso(sample.time),
        "totals": {
            "requests": sample.requests, "errors_5xx": sample.errors,
            "errors_4xx": sample.client_errors,
            "mean_latency_ms": (ms(sample.duration_sum / sample.duration_count, 3)
                                if sample.duration_count else None),
            "db_queries": sample.db_queries, "db_errors": sample.db_errors,
            "logins": sample.logins, "login_failures": sample.login_failures,
            "cache_hits": sample.cache_hits, "cache_misses": sample.cache_misses,
        },
        "last_interval": last_interval,
        "in_progress": sample.in_progress,
        "system": {"cpu_percent": sample.cpu_percent, "memory_percent": sample.memory_percent,
                   "disk_percent": dict(sample.disk_percent),
                   "process_rss_bytes": sample.process_rss_bytes},
        "cache_hit_rate": monitor.collector.cache.hit_rate(),
        "health": {"status": monitor.health.overall().value,
                   "checks": {name: r.status.value
                              for name, r in monitor.health.results().items()}},
        "alerts": {"firing": stats.get("firing", 0), "pending": stats.get("pending", 0)},
        "history": {"points": len(monitor.history),
                    "interval_seconds": monitor.history.interval,
                    "retention_seconds": monitor.history.retention_seconds},
    }


def busiest_routes(monitor: MonitorParts) -> list[dict[str, Any]]:
    """Routes by requests over the last :data:`ROUTES_WINDOW_SECONDS` of history (each point
    keeps its interval's busiest ``history_top_routes``)."""
    points = monitor.history.points(seconds=ROUTES_WINDOW_SECONDS)
    stats = sorted(route_stats(points).values(), key=lambda s: (-s.requests, s.route))
    covered = span(points)
    return [s.to_dict(covered) for s in stats[:monitor.history.top_routes]]


def streams_view(sample: Sample, limit: int) -> dict[str, Any]:
    """Streams since start (docs/metrics.md, "Streams"): how many are open now and, for the
    ``limit`` routes with the most, their count and their lifetime's p50 and p95 as a page
    states them (:func:`~asgi_monitor.sampling.samples.quantile_shown`)."""
    ranked = sorted(sample.streams, key=lambda s: (-s.count, s.method, s.route))[:limit]
    return {"open": sample.streams_open, "routes": [
        {"route": f"{latency.method} {latency.route}", "count": latency.count,
         "p50": quantile_shown(0.5, latency.buckets, latency.total),
         "p95": quantile_shown(0.95, latency.buckets, latency.total)} for latency in ranked]}


def history_document(monitor: MonitorParts, since: float | None = None,
                     after: int | None = None, seconds: float | None = None) -> dict[str, Any]:
    """``history.json``: the points as columns (what the charts draw) and the busiest routes
    (:func:`busiest_routes`). ``cursor`` is what a poller passes back as ``after``."""
    history = monitor.history
    return {
        "cursor": history.cursor,
        "interval_seconds": history.interval,
        "retention_seconds": history.retention_seconds,
        "columns": list(COLUMNS),
        "points": history.columns(since, after, seconds),
        "range_seconds": history.retention_seconds if seconds is None else seconds,
        "routes": busiest_routes(monitor),
        "routes_window_seconds": ROUTES_WINDOW_SECONDS,
        "health": monitor.health.overall().value,
        "status": overall_status(monitor),
        "error_window": error_window(monitor),
    }


def export_document(monitor: MonitorParts) -> dict[str, Any]:
    """Everything monitoring knows, as one document (secrets masked by ``public_dict``)."""
    alerts = monitor.alerts
    return {
        "generated_at": _now(),
        "asgi_monitor_version": __version__,
        "metrics": summary(monitor),
        "history": {"interval_seconds": monitor.history.interval,
                    "retention_seconds": monitor.history.retention_seconds,
                    "points": [point.to_dict() for point in monitor.history]},
        "health": health_view(monitor),
        "alerts": {"active": [alert.to_dict() for alert in alerts.active()],
                   "history": alerts.history(limit=1000), "stats": alerts.stats()},
        "insights": monitor.collector.get_performance_insights(),
        "configuration": monitor.config.public_dict(),
    }


# The unit of each default rule's value (see alerting/rules.py): the value alone, "12.47",
# says nothing. A rule of the app's own can name its unit in the "unit" annotation.
_RULE_UNITS = {"high_error_rate": "% 5xx", "slow_responses": "s mean",
               "high_memory_usage": "% used", "database_issues": "% failed queries",
               "login_failure_spike": "failed logins", "low_disk_space": "% free"}


def alert_value(alert: dict[str, Any]) -> str:
    """An alert's value (as :meth:`Alert.to_dict` gives it) with its rule's unit."""
    value = alert.get("value")
    if value is None:
        return "–"
    rule = str(alert.get("rule", ""))
    unit = (alert.get("annotations") or {}).get("unit") or _RULE_UNITS.get(rule, "")
    if rule.startswith("slo_") and not unit:
        unit = "× burn rate (long window)"
    if unit.startswith("%"):
        return f"{value:.2f} {unit}"
    if unit.startswith("×"):
        return f"{value:.2f}{unit}"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text} {unit}".strip()


def status_class(status: str) -> str:
    """CSS modifier for a health status or alert severity (an allowlist: never raw data)."""
    known = {s.value for s in HealthStatus} | {"info", "firing", "pending"}
    # The SLO severities are coloured by their level.
    status = {"page": "critical", "ticket": "warning"}.get(status, status)
    return status if status in known else "unknown"
