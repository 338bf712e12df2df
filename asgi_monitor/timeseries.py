"""The dashboard's time series: a bounded :class:`History` of points derived from samples.

(Not the alert log, which is :mod:`asgi_monitor.alerting.history`.) Each time the Monitor's
sampler takes a :class:`~asgi_monitor.sampling.samples.Sample`, :meth:`History.record_sample`
turns the interval since the previous one (a :class:`~asgi_monitor.sampling.samples.Window`) into
one small :class:`Point`: request and error rates, latency p50/p95/p99 from the histogram bucket
increases (Prometheus' ``histogram_quantile`` over the interval), requests in progress, CPU,
memory and disk use, process RSS, and rate / error ratio / p95 of the interval's busiest routes.

Points live in a fixed-size deque (``retention / interval`` of them), so memory is bounded by
construction: docs/dashboard.md gives the measured figure (an hour at 5 s with 200 routes).
Samples themselves stay in the :class:`~asgi_monitor.sampling.samples.SampleBuffer`; nothing here
touches the request path.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .sampling.inputs import Buckets
from .sampling.samples import Sample, Window, quantile
from .units import ms

__all__ = ["History", "Point", "RoutePoint"]

# The quantiles a point keeps, as (attribute, q).
_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
# The columns history.json and the export carry, in this order.
COLUMNS = ("time", "seconds", "requests", "errors", "request_rate", "error_rate", "error_ratio",
           "p50_ms", "p95_ms", "p99_ms", "in_progress", "cpu_percent", "memory_percent",
           "disk_percent", "rss_bytes")


@dataclass(frozen=True, slots=True)
class RoutePoint:
    """One route over one interval (``route`` is "METHOD /template"): what its own charts
    draw on the route view."""

    route: str
    requests: float
    errors: float  # 5xx
    p95: float | None  # seconds
    # Requests by status code, flat: code, count, code, count... (compact: one per point).
    status_counts: Sequence[int] = ()
    # The interval's duration histogram: per-bucket counts (not cumulative, +Inf last) over
    # ``bounds``, a tuple shared by every point. p50 and p99 are derived from them.
    bounds: tuple[float, ...] = ()
    counts: Sequence[int] = ()

    @property
    def statuses(self) -> dict[int, int]:
        pairs = self.status_counts
        return {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)}

    @property
    def buckets(self) -> Buckets:
        """The histogram as cumulative (bound, count) pairs, as Prometheus has it."""
        out, running = [], 0.0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append((bound, running))
        return tuple(out)

    @property
    def p50(self) -> float | None:
        return quantile(0.5, self.buckets)

    @property
    def p99(self) -> float | None:
        return quantile(0.99, self.buckets)

    def to_dict(self, seconds: float) -> dict[str, Any]:
        return {"route": self.route, "requests": self.requests,
                "rate": self.requests / seconds if seconds > 0 else None,
                "error_ratio": self.errors / self.requests if self.requests else None,
                "p95_ms": ms(self.p95)}


@dataclass(frozen=True, slots=True)
class Point:
    """What happened in one sampling interval that ended at ``time`` (unix seconds).

    Counts are increases over the interval (``seconds`` long); gauges are the values at its end;
    latencies are seconds. ``None`` means "not measured" (no requests, no psutil), never zero.
    """

    time: float
    seconds: float
    requests: float
    errors: float  # 5xx
    p50: float | None
    p95: float | None
    p99: float | None
    in_progress: float
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None  # the fullest configured path
    rss_bytes: float | None
    routes: tuple[RoutePoint, ...] = ()  # the busiest first
    # Monotonic seconds at its end: what spans and trends are measured with (``time`` is the
    # wall-clock label, which can step). None in a hand-made point (then ``time``).
    monotonic: float | None = None

    @property
    def instant(self) -> float:
        return self.time if self.monotonic is None else self.monotonic

    @property
    def request_rate(self) -> float:
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float:
        return self.errors / self.seconds

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def column(self, name: str) -> float | None:
        """The value of one of :data:`COLUMNS` (latencies in milliseconds)."""
        if name.endswith("_ms"):
            return ms(getattr(self, name[:-3]))
        value: float | None = getattr(self, name)
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: _round(name, self.column(name)) for name in COLUMNS}
        out["routes"] = [route.to_dict(self.seconds) for route in self.routes]
        return out


class History:
    """The last ``retention_seconds`` of points, one per sampling ``interval``.

    ``top_routes`` bounds the per-route data: each point keeps the routes with the most requests
    in its interval. :attr:`cursor` counts the points ever added: a poller passes it back as
    ``after`` and gets exactly the newer points, whatever the wall clock did in between (a point's
    ``time`` is its wall-clock label, which can step back).
    """

    def __init__(self, *, retention_seconds: float, interval: float, top_routes: int = 20) -> None:
        self.retention_seconds = retention_seconds
        self.interval = interval
        self.top_routes = top_routes
        self.max_points = max(2, math.ceil(retention_seconds / interval) + 1)
        self._points: deque[Point] = deque(maxlen=self.max_points)
        self._previous: Sample | None = None
        self._added = 0
        self._bounds: dict[tuple[float, ...], tuple[float, ...]] = {}

    def record_sample(self, sample: Sample) -> Point | None:
        """Add the point from the previously recorded sample to this one (None for the first).

        The history keeps its own reference to that previous sample: other samples may be taken
        in between (the alert loop takes its own), and the buffer strips their per-route totals,
        but the one a point starts from keeps them.
        """
        previous, self._previous = self._previous, sample
        return None if previous is None else self.add_window(Window(previous, sample))

    def add_window(self, window: Window) -> Point:
        """Derive the point for ``window`` (the previous sample to the new one) and keep it."""
        end = window.end
        seconds = window.seconds
        quantiles = {name: window.latency_quantile(q) for name, q in _QUANTILES}
        point = Point(
            time=end.time, seconds=seconds, requests=window.increase("requests"),
            errors=window.increase("errors"), in_progress=end.in_progress,
            cpu_percent=end.cpu_percent, memory_percent=end.memory_percent,
            disk_percent=max(end.disk_percent.values(), default=None),
            rss_bytes=end.process_rss_bytes, routes=self._routes(window),
            monotonic=end.monotonic,
            **quantiles,
        )
        if window.elapsed > 0:
            self.append_point(point)
        return point

    def append_point(self, point: Point) -> None:
        """Keep ``point`` (the oldest one goes once ``max_points`` are held)."""
        self._points.append(point)
        self._added += 1

    @property
    def cursor(self) -> int:
        """How many points were ever added (the newest point's sequence number)."""
        return self._added

    def _routes(self, window: Window) -> tuple[RoutePoint, ...]:
        busy = [(window.route_increase(key, "requests"), key) for key in window.end.routes]
        busy = [(count, key) for count, key in busy if count > 0]
        busy.sort(key=lambda item: (-item[0], item[1]))
        points = []
        for count, key in busy[:self.top_routes]:
            # Every point names its routes: one shared string per route, not one per point.
            increase = window.route_buckets(key)
            bounds = tuple(bound for bound, _ in increase)
            # One bounds tuple for all points (every route has the configured buckets).
            bounds = self._bounds.setdefault(bounds, bounds)
            counts, below = array("I"), 0.0
            for _, cumulative in increase:
                counts.append(_count(cumulative - below))
                below = max(below, cumulative)
            statuses = array("I")
            for code, requests in window.route_statuses(key):
                statuses.extend((code, _count(requests)))
            points.append(RoutePoint(sys.intern(key), count, window.route_increase(key, "errors"),
                                     quantile(0.95, increase), statuses, bounds, counts))
        return tuple(points)

    def route_points(self, route: str,
                     seconds: float | None = None) -> list[tuple[Point, RoutePoint | None]]:
        """Each point of the last ``seconds`` with ``route``'s part of it: a zero-request
        entry where the point kept every route that had requests, None where it kept its
        ``top_routes`` busiest and ``route`` was not among them (not known, not zero)."""
        out: list[tuple[Point, RoutePoint | None]] = []
        for point in self.points(seconds=seconds):
            found = next((r for r in point.routes if r.route == route), None)
            if found is None and len(point.routes) < self.top_routes:
                found = RoutePoint(route, 0.0, 0.0, None)
            out.append((point, found))
        return out

    def __iter__(self) -> Iterator[Point]:
        return iter(list(self._points))

    def __len__(self) -> int:
        return len(self._points)

    def latest(self) -> Point | None:
        return self._points[-1] if self._points else None

    def points(self, since: float | None = None, seconds: float | None = None,
               after: int | None = None) -> list[Point]:
        """Points newer than ``since`` (unix time), added after the :attr:`cursor` value
        ``after``, and/or within the last ``seconds``. A cursor ahead of ours comes from before
        a restart: every point is new to that client."""
        points = list(self._points)
        if after is not None and after <= self._added:
            points = points[len(points) - min(len(points), self._added - after):]
        if seconds is not None and points:
            horizon = points[-1].instant - seconds
            points = [p for p in points if p.instant > horizon]
        if since is not None:
            points = [p for p in points if p.time > since]
        return points

    def columns(self, since: float | None = None, after: int | None = None,
                seconds: float | None = None) -> dict[str, list[float | None]]:
        """Column-wise points (the shape chart libraries take), latencies in milliseconds."""
        points = self.points(since, seconds=seconds, after=after)
        return {name: [_round(name, p.column(name)) for p in points] for name in COLUMNS}



def _count(value: float) -> int:
    # Request counts of one interval: whole numbers, stored in 32 bits.
    return max(0, min(0xFFFFFFFF, round(value)))


def _round(name: str, value: float | None) -> float | None:
    # Times stay exact: clients pass the last one back as ``since``.
    if value is None or name == "time":
        return value
    return round(value, 6)
