"""Samples: compact snapshots of the exported metrics, and windows over them.

One mechanism serves both alerting (error rate over the last 5 minutes) and history/insights
(request rate and latency percentiles per interval): a :class:`Sampler` reads the registry the
way Prometheus would (``monitor.scrape_registry()``, so in multiprocess mode it sees every
worker), folds it into a :class:`Sample` of cumulative totals, and a :class:`SampleBuffer` keeps a
bounded window of them. Rates are differences of cumulative totals between two samples, as
PromQL's ``increase()`` does, so nothing is counted twice on the request path.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from .request_metrics import RequestMetrics

__all__ = ["RouteTotals", "Sample", "SampleBuffer", "Sampler", "Window", "quantile"]

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last


@dataclass
class RouteTotals:
    """Cumulative totals of one (method, route)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx
    duration_sum: float = 0.0
    duration_count: float = 0.0
    buckets: Buckets = ()


@dataclass
class Sample:
    """Cumulative totals and current gauges at one moment."""

    time: float  # unix seconds
    requests: float = 0.0
    errors: float = 0.0  # status >= 500
    client_errors: float = 0.0  # 400..499
    duration_sum: float = 0.0
    duration_count: float = 0.0
    buckets: Buckets = ()
    in_progress: float = 0.0
    db_queries: float = 0.0
    db_errors: float = 0.0
    logins: float = 0.0
    login_failures: float = 0.0
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: dict[str, float] = field(default_factory=dict)  # used %, by path
    process_rss_bytes: float | None = None
    routes: dict[str, RouteTotals] = field(default_factory=dict)  # "GET /items/{id}"


def _merge_buckets(into: dict[float, float], family: Iterable[tuple[float, float]]) -> None:
    for bound, count in family:
        into[bound] = into.get(bound, 0.0) + count


def _as_buckets(merged: dict[float, float]) -> Buckets:
    return tuple(sorted(merged.items()))


class Sampler:
    """Turns the exported metrics into a :class:`Sample`. ``prefix`` is the metric namespace.

    Two sources, one result. By default it walks ``registry()`` as a scrape would (under several
    workers that is the merged multiprocess view). In a single process, pass ``requests`` (the
    request store) and ``collectors`` (the few other collectors the rules read): the request
    totals are then read straight from the store instead of through thousands of exposition
    samples, which made sampling cost ~70 ms on the event loop for 400 series.
    """

    def __init__(self, registry: Callable[[], CollectorRegistry], prefix: str = "",
                 clock: Callable[[], float] = time.time, *,
                 requests: RequestMetrics | None = None,
                 collectors: Callable[[], Iterable[Collector]] | None = None) -> None:
        self._registry = registry
        self._p = prefix
        self._clock = clock
        self._requests = requests
        self._collectors = collectors

    def take(self) -> Sample:
        sample = Sample(time=self._clock())
        buckets: dict[float, float] = {}
        route_buckets: dict[str, dict[float, float]] = {}
        if self._requests is not None and self._collectors is not None:
            self._fold_requests(self._requests, sample, buckets, route_buckets)
            families: Iterable[Metric] = (
                family for collector in self._collectors() for family in collector.collect())
        else:
            families = self._registry().collect()
        for family in families:
            self._fold(family, sample, buckets, route_buckets)
        sample.buckets = _as_buckets(buckets)
        for key, merged in route_buckets.items():
            sample.routes[key].buckets = _as_buckets(merged)
        return sample

    @staticmethod
    def _fold_requests(requests: RequestMetrics, sample: Sample, buckets: dict[float, float],
                       route_buckets: dict[str, dict[float, float]]) -> None:
        series, routes, in_progress = requests.totals()
        sample.in_progress = in_progress
        for method, route, status, count in series:
            totals = sample.routes.setdefault(f"{method} {route}", RouteTotals())
            sample.requests += count
            totals.requests += count
            if status >= 500:
                sample.errors += count
                totals.errors += count
            elif status >= 400:
                sample.client_errors += count
        for method, route, histogram in routes:
            key = f"{method} {route}"
            totals = sample.routes.setdefault(key, RouteTotals())
            counts, total = list(histogram.counts), histogram.total
            observed = sum(counts)
            sample.duration_sum += total
            sample.duration_count += observed
            totals.duration_sum += total
            totals.duration_count += observed
            per_route = route_buckets.setdefault(key, {})
            running = 0
            for bound, count in zip((*histogram.bounds, math.inf), counts, strict=True):
                running += count
                buckets[bound] = buckets.get(bound, 0.0) + running
                per_route[bound] = per_route.get(bound, 0.0) + running

    def _fold(self, family: Metric, sample: Sample, buckets: dict[float, float],
              route_buckets: dict[str, dict[float, float]]) -> None:
        name = family.name[len(self._p):] if family.name.startswith(self._p) else family.name
        for s in family.samples:
            labels, value = s.labels, s.value
            if name == "http_requests" and s.name.endswith("_total"):
                status = labels.get("status", "")
                route = sample.routes.setdefault(_route_key(labels), RouteTotals())
                sample.requests += value
                route.requests += value
                if status >= "500":
                    sample.errors += value
                    route.errors += value
                elif status >= "400":
                    sample.client_errors += value
            elif name == "http_request_duration_seconds":
                route = sample.routes.setdefault(_route_key(labels), RouteTotals())
                if s.name.endswith("_sum"):
                    sample.duration_sum += value
                    route.duration_sum += value
                elif s.name.endswith("_count"):
                    sample.duration_count += value
                    route.duration_count += value
                elif s.name.endswith("_bucket"):
                    bound = float(labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + value
                    per_route = route_buckets.setdefault(_route_key(labels), {})
                    per_route[bound] = per_route.get(bound, 0.0) + value
            elif name == "http_requests_in_progress":
                sample.in_progress += value
            elif name == "db_queries" and s.name.endswith("_total"):
                sample.db_queries += value
                if labels.get("status") == "error":
                    sample.db_errors += value
            elif name == "user_logins" and s.name.endswith("_total"):
                sample.logins += value
                if labels.get("result") == "failure":
                    sample.login_failures += value
            elif name == "cache_operations" and s.name.endswith("_total"):
                if labels.get("operation") == "hit":
                    sample.cache_hits += value
                elif labels.get("operation") == "miss":
                    sample.cache_misses += value
            elif name == "system_cpu_usage_percent":
                sample.cpu_percent = value
            elif name == "system_memory_usage_percent":
                sample.memory_percent = value
            elif name == "system_disk_usage_percent":
                sample.disk_percent[labels.get("path", "/")] = value
            elif name == "app_process_resident_memory_bytes":
                sample.process_rss_bytes = value


def _route_key(labels: dict[str, str]) -> str:
    return f"{labels.get('method', '')} {labels.get('route', '')}"


def _increase(new: float, old: float) -> float:
    # A counter that went down was reset (a restarted worker): count from zero, as PromQL does.
    return new - old if new >= old else new


def quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' histogram_quantile over cumulative (bound, count) pairs; None if empty."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return previous_bound  # the highest finite bound, as Prometheus answers
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (
                (rank - previous_count) / (count - previous_count))
        previous_bound, previous_count = bound, count
    return previous_bound


@dataclass(frozen=True)
class Window:
    """What happened between two samples."""

    start: Sample
    end: Sample

    @property
    def seconds(self) -> float:
        return max(self.end.time - self.start.time, 1e-9)

    def increase(self, attribute: str) -> float:
        return _increase(getattr(self.end, attribute), getattr(self.start, attribute))

    def rate(self, attribute: str) -> float:
        return self.increase(attribute) / self.seconds

    def ratio(self, numerator: str, denominator: str) -> float | None:
        below = self.increase(denominator)
        return self.increase(numerator) / below if below > 0 else None

    def latency_quantile(self, q: float, route: str | None = None) -> float | None:
        if route is None:
            new, old = self.end.buckets, self.start.buckets
        else:
            new_route = self.end.routes.get(route)
            if new_route is None:
                return None
            old_route = self.start.routes.get(route)
            new, old = new_route.buckets, old_route.buckets if old_route else ()
        return quantile(q, _bucket_increase(new, old))

    def route_increase(self, route: str, attribute: str) -> float:
        new = self.end.routes.get(route)
        if new is None:
            return 0.0
        old = self.start.routes.get(route)
        return _increase(getattr(new, attribute), getattr(old, attribute) if old else 0.0)


def _bucket_increase(new: Buckets, old: Buckets) -> Buckets:
    before = dict(old)
    return tuple((bound, _increase(count, before.get(bound, 0.0))) for bound, count in new)


class SampleBuffer:
    """The samples of the last ``retention_seconds`` (bounded by time and by count).

    Per-route totals are the bulky part of a sample (hundreds of routes, each with buckets), so
    only the two newest samples in the buffer keep them; older ones are replaced by copies with
    the app-wide totals only (copies, so a reference held elsewhere, such as the history's start
    sample, keeps its routes).
    """

    def __init__(self, retention_seconds: float, max_samples: int = 2000) -> None:
        self.retention_seconds = retention_seconds
        self._samples: deque[Sample] = deque(maxlen=max_samples)

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        if len(self._samples) >= 3 and self._samples[-3].routes:
            self._samples[-3] = dataclasses.replace(self._samples[-3], routes={})
        horizon = sample.time - self.retention_seconds
        while len(self._samples) > 2 and self._samples[0].time < horizon:
            self._samples.popleft()

    def __iter__(self) -> Iterator[Sample]:
        return iter(list(self._samples))

    def __len__(self) -> int:
        return len(self._samples)

    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def window(self, seconds: float) -> Window | None:
        """From the oldest sample no older than ``seconds`` before the latest, to the latest.

        None until two samples exist. A window shorter than asked (just started) is returned
        as is: callers that need a minimum amount of data check counts, not time.
        """
        if len(self._samples) < 2:
            return None
        end = self._samples[-1]
        start = end
        for sample in reversed(self._samples):
            if end.time - sample.time > seconds:
                break
            start = sample
        if start is end:
            start = self._samples[-2]
        return Window(start, end)
