"""What each component hands the sampler: small frozen values, read at sample time only.

Every component the alert rules and the history read from has a ``snapshot()`` returning one of
these (the request store, ``collector.database``, ``.cache``, ``.users``, the system collector);
under several workers, :class:`~asgi_monitor.sampling.merged.MergedReader` builds the same values
from the merged metric files. Counters are cumulative totals: the sampler computes rates as
differences between two samples. A typed value rather than a metric family looked up by name,
so renaming a family cannot silently turn an input into zero.

No imports from the rest of the package: the components and the sampler both depend on this.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Buckets", "CacheSnapshot", "DatabaseSnapshot", "NativeBuckets", "RequestSnapshot",
           "RouteLatency",
           "SampleInputs", "SystemSnapshot", "UserSnapshot"]

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), +Inf last
# A native histogram: (schema, zero threshold, zero count, ((bucket index, count), ...) sorted by
# index, counts not cumulative); bucket i holds (2**((i-1)/2**schema), 2**(i/2**schema)].
NativeBuckets = tuple[int, float, int, tuple[tuple[int, int], ...]]


@dataclass(frozen=True, slots=True)
class RouteLatency:
    """The request duration histogram of one (method, route, status, scheme), cumulative as
    exported. A route answering several statuses has one per status."""

    method: str
    route: str
    buckets: Buckets
    total: float  # the sum of the durations, seconds
    status: int = 0  # 0: not kept apart (all statuses)
    scheme: str = "http"
    # The same durations' native histogram, when native histograms are on.
    native: NativeBuckets | None = None
    # The request labels the user chose, (name, value) pairs; () when none are configured.
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """Request totals: one (method, route, status, count) per series, the duration histograms
    (one per stored series), and the requests in progress now; the streams' lifetime
    histograms (one per method and route, status 0) and the streams open now."""

    series: tuple[tuple[str, str, int, float], ...] = ()
    latency: tuple[RouteLatency, ...] = ()
    in_progress: float = 0.0
    streams: tuple[RouteLatency, ...] = ()
    streams_open: float = 0.0


@dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    queries: float = 0.0
    errors: float = 0.0


@dataclass(frozen=True, slots=True)
class CacheSnapshot:
    hits: float = 0.0
    misses: float = 0.0


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    logins: float = 0.0
    failures: float = 0.0


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    """Gauges now; None (or a path left out) where psutil could not read the value."""

    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: tuple[tuple[str, float], ...] = ()  # (path, used %)
    process_rss_bytes: float | None = None


@dataclass(frozen=True, slots=True)
class SampleInputs:
    """Everything one sample is made of. ``system`` is None when system metrics are off."""

    requests: RequestSnapshot
    database: DatabaseSnapshot
    cache: CacheSnapshot
    users: UserSnapshot
    system: SystemSnapshot | None = None
