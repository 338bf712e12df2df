"""The data behind the dashboard's route view: one route over a time range, and since start.

Two sources, each named on the page with its window:

- *over the range*: the history's points (one per sampling interval), each holding the
  interval's busiest ``history.top_routes`` routes (:meth:`History.route_points`): request and
  5xx rates, p50/p95/p99, status codes and the duration histogram. An interval where the route
  was not among them is *not known* (None), never drawn as zero.
- *since start*: the exported metrics, read from the same registry ``/api/metrics`` encodes, so
  each figure equals what Prometheus scrapes: requests by status, time to first byte, request
  and response sizes, and the newest exemplars' trace ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from prometheus_client import CollectorRegistry

from ..config.objectives import SLO
from ..exports.metric_names import OTEL_NAMES, metric_name
from ..sampling.samples import quantile_shown
from ..units import duration_label, ms
from .parts import MonitorParts

__all__ = ["RANGES", "exported_route", "known_routes", "range_choices",
           "route_document", "slo_shares"]

# The time ranges offered (seconds); the retention is always offered too.
RANGES = (900.0, 3600.0)
# How many exemplars the route view lists.
EXEMPLARS = 5


def range_choices(retention: float) -> list[dict[str, Any]]:
    """The ranges the overview and the route view offer: 15 min, 1 h and the retention."""
    seconds = sorted({r for r in RANGES if r < retention} | {retention})
    return [{"seconds": s, "label": duration_label(s)} for s in seconds]


def known_routes(monitor: MonitorParts, seconds: float) -> list[dict[str, Any]]:
    """The routes the history holds over the last ``seconds``, busiest first."""
    totals: dict[str, float] = {}
    for point in monitor.history.points(seconds=seconds):
        for part in point.routes:
            totals[part.route] = totals.get(part.route, 0.0) + part.requests
    return [{"route": route, "requests": count}
            for route, count in sorted(totals.items(), key=lambda item: (-item[1], item[0]))]


def route_document(monitor: MonitorParts, route: str, seconds: float,
                   registry: CollectorRegistry | None = None) -> dict[str, Any] | None:
    """Everything the route view shows for ``route`` ("METHOD /template") over the last
    ``seconds`` of history, and since start from ``registry`` (the scrape registry).

    None when neither knows the route (a typo, an old bookmark): a page of zeros would say it
    was idle. A route the history kept at any time of its retention, or that the registry
    counted since start, is known, even with no request in the range."""
    history = monitor.history
    since = exported_route(registry, route, monitor) if registry is not None else None
    if not ((since is not None and _counted(since)) or _in_history(monitor, route)):
        return None
    pairs = history.route_points(route, seconds)
    columns: dict[str, list[float | None]] = {
        name: [] for name in ("time", "requests", "errors", "request_rate", "error_rate",
                              "p50_ms", "p95_ms", "p99_ms")}
    statuses: dict[int, float] = {}
    known = 0
    for point, part in pairs:
        columns["time"].append(point.time)
        if part is None:
            for name in list(columns)[1:]:
                columns[name].append(None)
            continue
        known += 1
        columns["requests"].append(part.requests)
        columns["errors"].append(part.errors)
        columns["request_rate"].append(round(part.requests / point.seconds, 6))
        columns["error_rate"].append(round(part.errors / point.seconds, 6))
        columns["p50_ms"].append(_ms(part.p50))
        columns["p95_ms"].append(_ms(part.p95))
        columns["p99_ms"].append(_ms(part.p99))
        for code, count in part.statuses.items():
            statuses[code] = statuses.get(code, 0.0) + count
    totals = pairs_totals(pairs)
    requests, errors, counts = totals["requests"], totals["errors"], totals["counts"]
    cumulative, running = [], 0.0
    for bound in sorted(counts):
        running += counts[bound]
        cumulative.append((bound, running))
    buckets = tuple(cumulative)
    covered = (pairs[-1][0].instant - pairs[0][0].instant + pairs[0][0].seconds) if pairs else 0.0
    return {
        "route": route,
        "range_seconds": seconds,
        "range_label": duration_label(seconds),
        "interval_seconds": history.interval,
        "interval_label": duration_label(history.interval),
        "top_routes": history.top_routes,
        "points": len(pairs),
        "known_points": known,
        "columns": columns,
        "range": {
            "seconds": round(covered, 3),
            "requests": requests, "errors": errors,
            "request_rate": round(requests / covered, 6) if covered > 0 else None,
            "error_ratio": errors / requests if requests else None,
            # The history keeps no duration sum per route: only the buckets bound these.
            **_quantiles(buckets, None, 1000.0, "latency_ms", "latency_bounds"),
            "statuses": [{"status": code, "requests": count}
                         for code, count in sorted(statuses.items())],
            "distribution": [{"le": _le(bound), "requests": counts[bound]}
                             for bound in sorted(counts)],
        },
        "slos": slo_shares(monitor, route, seconds, totals),
        "since_start": since,
    }


def _counted(since: dict[str, Any]) -> bool:
    return bool(since["requests"] or since["duration"]["count"])


def _in_history(monitor: MonitorParts, route: str) -> bool:
    return any(part.route == route for point in monitor.history.points()
               for part in point.routes)


def pairs_totals(pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """Requests, 5xx and the duration histogram's per-bucket counts (by bound), summed over
    the parts that are known."""
    requests = errors = 0.0
    counts: dict[float, float] = {}
    for _, part in pairs:
        if part is None:
            continue
        requests += part.requests
        errors += part.errors
        for bound, count in zip(part.bounds, part.counts, strict=True):
            counts[bound] = counts.get(bound, 0.0) + count
    return {"requests": requests, "errors": errors, "counts": counts}


def _good(slo: SLO, totals: dict[str, Any]) -> float:
    if slo.sli.kind == "latency":
        threshold = slo.sli.threshold_seconds or 0.0
        return float(sum(count for bound, count in totals["counts"].items()
                         if bound <= threshold))
    return float(totals["requests"] - totals["errors"])


def slo_shares(monitor: MonitorParts, route: str, seconds: float,
               totals: dict[str, Any]) -> list[dict[str, Any]]:
    """For each SLO whose selector takes ``route``: the route's part of the SLO's requests and
    of its bad ones over the range, and the SLI on the route alone (the SLO's own counting)."""
    tracker = monitor.slos
    if tracker is None:
        return []
    method, _, template = route.partition(" ")
    out = []
    for name, slo in tracker.slos.items():
        if not slo.selector.matches(method, template):
            continue
        mine_total = float(totals["requests"])
        mine_good = _good(slo, totals)
        counted = tracker.counts(name, seconds)
        slo_good, slo_total = counted if counted is not None else (0.0, 0.0)
        mine_bad, slo_bad = mine_total - mine_good, slo_total - slo_good
        out.append({
            "name": name, "kind": slo.sli.kind, "objective_percent": slo.objective_percent,
            "threshold_seconds": slo.sli.threshold_seconds,
            "route_requests": mine_total, "route_bad": mine_bad,
            "slo_requests": slo_total, "slo_bad": slo_bad,
            # Shares of what the SLO counted; capped, as the two come from different samples.
            "share_of_requests": min(1.0, mine_total / slo_total) if slo_total > 0 else None,
            "share_of_bad": min(1.0, mine_bad / slo_bad) if slo_bad > 0 else None,
            "route_sli_percent": mine_good / mine_total * 100 if mine_total > 0 else None,
        })
    return out


def exported_route(registry: CollectorRegistry, route: str,
                   monitor: MonitorParts) -> dict[str, Any]:
    """``route``'s series as ``/api/metrics`` exports them (totals since start)."""
    metrics = monitor.config.metrics
    naming, prefix = metrics.metric_names, metrics.prefix
    method, _, template = route.partition(" ")
    otel = naming == "otel"

    def names(classic: str) -> tuple[str, str, str]:
        # (sample name base, method label, route label) under the naming in use.
        if otel and classic in OTEL_NAMES:
            return prefix + metric_name(classic, naming), "http_request_method", "http_route"
        return prefix + classic, "method", "route"

    histograms = {key: names(classic) for key, classic in (
        ("duration", "http_request_duration_seconds"),
        ("ttfb", "http_time_to_first_byte_seconds"),
        ("request_size", "http_request_size_bytes"),
        ("response_size", "http_response_size_bytes"))}
    buckets: dict[str, dict[float, float]] = {key: {} for key in histograms}
    sums = dict.fromkeys(histograms, 0.0)
    statuses: dict[str, float] = {}
    exemplars: list[tuple[float, str, float]] = []
    requests_name = prefix + "http_requests_total"
    status_label = "http_response_status_code" if otel else "status"
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if not otel and sample.name == requests_name:
                if labels.get("method") == method and labels.get("route") == template:
                    code = labels.get("status", "")
                    statuses[code] = statuses.get(code, 0.0) + sample.value
                continue
            for key, (base, method_label, route_label) in histograms.items():
                if (labels.get(method_label) != method or labels.get(route_label) != template
                        or not sample.name.startswith(base)):
                    continue
                suffix = sample.name[len(base):]
                if suffix == "_bucket":
                    bound = float(labels["le"])
                    buckets[key][bound] = buckets[key].get(bound, 0.0) + sample.value
                    if key == "duration" and sample.exemplar is not None:
                        trace = sample.exemplar.labels.get("trace_id")
                        if trace:
                            stamp = sample.exemplar.timestamp
                            exemplars.append((float(stamp) if stamp is not None else 0.0,
                                              trace, sample.exemplar.value))
                elif suffix == "_sum":
                    sums[key] += sample.value
                elif suffix == "_count" and otel and key == "duration":
                    code = labels.get(status_label, "")
                    statuses[code] = statuses.get(code, 0.0) + sample.value
    out: dict[str, Any] = {"statuses": [{"status": code, "requests": count}
                                        for code, count in sorted(statuses.items())],
                           "requests": sum(statuses.values())}
    for key in histograms:
        cumulative = tuple(sorted(buckets[key].items()))
        count = cumulative[-1][1] if cumulative else 0.0
        seconds = key in ("duration", "ttfb")
        scale = 1000.0 if seconds else 1.0
        shown = _quantiles(cumulative, sums[key], scale, "values", "bounds")
        out[key] = {
            "count": count,
            "unit": "ms" if seconds else "bytes",
            "mean": sums[key] / count * scale if count else None,
            **shown["values"],
            "bounds": shown["bounds"],
        }
    trace_url = monitor.config.history.trace_url
    seen: set[str] = set()
    listed = []
    for stamp, trace, value in sorted(exemplars, key=lambda e: -e[0]):
        if trace in seen:
            continue
        seen.add(trace)
        listed.append({"trace_id": trace, "time": stamp or None, "duration_ms": _ms(value),
                       "url": (trace_url.replace("{trace_id}", quote(trace, safe=""))
                               if trace_url else None)})
        if len(listed) == EXEMPLARS:
            break
    out["exemplars"] = listed
    out["exemplars_enabled"] = metrics.exemplars
    return out


def _quantiles(buckets: tuple[tuple[float, float], ...], total: float | None, scale: float,
               values: str, bounds: str) -> dict[str, dict[str, Any]]:
    """p50/p95/p99 as the page states them (:func:`quantile_shown`): ``values`` maps each to
    its figure (times ``scale``), ``bounds`` to None (an estimate), "le" (at most) or "gt"
    (above)."""
    out: dict[str, dict[str, Any]] = {values: {}, bounds: {}}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        found = quantile_shown(q, buckets, total)
        value, bound = (None, None) if found is None else found
        out[values][name] = None if value is None else round(value * scale, 6)
        out[bounds][name] = bound
    return out


def _ms(seconds: float | None) -> float | None:
    value = ms(seconds)
    return None if value is None else round(value, 6)


def _le(bound: float) -> float | str:
    return "+Inf" if math.isinf(bound) else bound
