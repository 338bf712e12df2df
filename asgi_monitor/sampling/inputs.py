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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

__all__ = ["Buckets", "CacheSnapshot", "DatabaseSnapshot", "NativeBuckets", "RequestSnapshot",
           "RouteLatency", "SampleInputs", "SeriesTable", "SystemSnapshot", "UserSnapshot"]

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
class SeriesTable:
    """Every request series of a store in the store's own layout: one list or array, no object
    per series (the sampler folds thousands of them every few seconds, and every object made is
    one the garbage collector may walk while holding the GIL).

    ``keys[i]`` is (method, route, status[, scheme[, request label values]]); the sampler keeps
    apart no more than (method, route, status) and the label values, and sums the rest. The
    series' block is the ``stride`` values from ``i * stride`` in ``values`` and starts with its
    duration histogram: the per-bucket counts (not cumulative, one per bound in ``bounds``, +Inf
    last), then their sum. Its request count is those counts' total, unless ``counts`` gives it:
    a reader of exposed families, where the histograms are kept per route and the counts per
    status, gives a route's histogram to one of its series and zeros to the others.

    ``labels`` names the request labels whose values ``keys[i][4]`` holds (none: the keys need
    not have them). ``native``, when native histograms are on, is each series' native duration
    histogram (None for a series without one); None when they are off."""

    keys: Sequence[tuple[Any, ...]] = ()
    values: Sequence[float] = ()
    stride: int = 1
    bounds: tuple[float, ...] = ()  # the finite upper bounds of the duration buckets
    counts: Sequence[float] | None = None
    labels: tuple[str, ...] = ()
    native: Sequence[NativeBuckets | None] | None = None

    def labels_of(self, i: int) -> tuple[tuple[str, str], ...]:
        """Series ``i``'s request labels, (name, value) pairs."""
        names = self.labels
        return tuple(zip(names, self.keys[i][4], strict=True)) if names else ()


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """Request totals: every stored series (a count and a duration histogram each), and the
    requests in progress now; the streams' lifetime histograms (one per method and route,
    status 0) and the streams open now."""

    table: SeriesTable = field(default_factory=SeriesTable)
    in_progress: float = 0.0
    streams: tuple[RouteLatency, ...] = ()
    streams_open: float = 0.0

    @property
    def series(self) -> tuple[tuple[str, str, int, float], ...]:
        """(method, route, status, request count) per series."""
        table = self.table
        t, stride, values, counts = len(table.bounds) + 1, table.stride, table.values, table.counts
        return tuple((key[0], key[1], key[2], counts[i] if counts is not None
                      else float(sum(values[i * stride:i * stride + t], 0.0)))
                     for i, key in enumerate(table.keys))

    @property
    def latency(self) -> tuple[RouteLatency, ...]:
        """The duration histogram of each series, cumulative (made on demand: the OTLP export
        and tests read it, the sampler reads the table)."""
        table = self.table
        bounds = (*table.bounds, math.inf)
        t, stride, values, native = len(bounds), table.stride, table.values, table.native
        return tuple(
            RouteLatency(key[0], key[1],
                         tuple(zip(bounds, map(float, accumulate(values[at:at + t])),
                                   strict=True)),
                         values[at + t], key[2], key[3] if len(key) > 3 else "http",
                         None if native is None else native[i], table.labels_of(i))
            for i, (key, at) in enumerate(zip(table.keys, range(0, len(table.keys) * stride,
                                                                 stride), strict=True)))


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
