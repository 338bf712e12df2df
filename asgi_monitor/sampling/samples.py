"""Samples: compact snapshots of what the components measured, and windows over them.

One mechanism serves both alerting (error rate over the last 5 minutes) and history/insights
(request rate and latency percentiles per interval): a :class:`Sampler` asks each component for
its typed ``snapshot()`` (:mod:`asgi_monitor.sampling.inputs`), folds them into a :class:`Sample`
of cumulative totals, and a :class:`SampleBuffer` keeps a bounded window of them. Rates are
differences of cumulative totals between two samples, as PromQL's ``increase()`` does, so nothing
is counted twice on the request path.

Under several workers the totals of every worker exist only in the multiprocess files; they are
read through :class:`~asgi_monitor.sampling.merged.MergedReader`, the one reader of families by
name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import reduce
from itertools import accumulate
from operator import add

from .inputs import (
    Buckets,
    NativeBuckets,
    RequestSnapshot,
    RouteLatency,
    SampleInputs,
    SeriesTable,
    SystemSnapshot,
)

__all__ = ["NativeTotals", "RouteTotals", "Sample", "SampleBuffer", "Sampler", "Window",
           "quantile", "quantile_shown"]

# Native histograms summed (with them on): (schema, count by bucket index, zero count). Bucket i
# holds (2**((i-1)/2**schema), 2**(i/2**schema)].
NativeTotals = tuple[int, dict[int, float], float]

# Per route, its series' per-bucket counts (one series': its slice of the table; several: a list
# of slices) and the buckets tuple the last sample made of them.
_KnownBuckets = dict[str, tuple[object, Buckets]]


@dataclass
class RouteTotals:
    """Cumulative totals of one (method, route)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx
    duration_sum: float = 0.0
    duration_count: float = 0.0
    buckets: Buckets = ()
    statuses: dict[int, float] = field(default_factory=dict)  # requests by status code
    native: NativeTotals | None = None  # the same durations' native buckets, when on


@dataclass
class Sample:
    """Cumulative totals and current gauges at one moment."""

    time: float  # unix seconds: what the sample is labelled with
    requests: float = 0.0
    errors: float = 0.0  # status >= 500
    client_errors: float = 0.0  # 400..499
    duration_sum: float = 0.0
    duration_count: float = 0.0
    buckets: Buckets = ()
    in_progress: float = 0.0
    # Streams: open now, and the lifetimes per method and route as the store keeps them.
    streams_open: float = 0.0
    streams: tuple[RouteLatency, ...] = ()
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
    native: NativeTotals | None = None  # every route's native buckets, when on
    # With request labels: (method, route, their (name, value) pairs) -> totals, for SLO
    # selectors that filter on them. Empty when none are configured.
    labelled: dict[tuple[str, str, tuple[tuple[str, str], ...]], RouteTotals] = field(
        default_factory=dict)
    # Seconds on a monotonic clock: what intervals and windows are measured with, so a wall
    # clock stepped back or forward stretches no rate. None in a hand-made sample (then `time`).
    monotonic: float | None = None

    @property
    def instant(self) -> float:
        """The time durations between samples are measured with."""
        return self.time if self.monotonic is None else self.monotonic


class Sampler:
    """Turns the components' snapshots, as ``read()`` returns them, into a :class:`Sample`.

    Build it with :meth:`~asgi_monitor.collector.MetricsCollector.sampler`, which picks where
    the snapshots come from.

    ``off_loop``: ``read`` merges the workers' metric files, which takes seconds with thousands
    of series but touches nothing the event loop changes, so :meth:`take_async` runs it (and
    the folding of its series into a sample) in a worker thread, one such read at a time. A
    single process' snapshots stay on the loop: they copy dicts the requests update.
    ``system``, when given, reads this process' resources into each sample, always on the
    calling thread (the loop's): psutil measures the CPU percent since the same thread's
    previous call, and a scrape measures it on the loop too.
    """

    def __init__(self, read: Callable[[], SampleInputs],
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, *,
                 system: Callable[[], SystemSnapshot | None] | None = None,
                 off_loop: bool = False) -> None:
        self._read = read
        self._clock = clock
        self._monotonic = monotonic
        self._system = system
        self.off_loop = off_loop
        # The sampler's and the alert loop's reads would otherwise run side by side, each
        # slowing the other and both holding a thread.
        self._reading = threading.Lock()
        # Replaced whole by each sample, never changed in place: a sample taken on the loop
        # while a worker thread takes another reads one version or the other.
        self._known: _KnownBuckets = {}

    def read(self) -> SampleInputs:
        """The components' snapshots as they are now (the OTLP export sends these)."""
        inputs = self._read()
        if self._system is None:
            return inputs
        return dataclasses.replace(inputs, system=self._system())

    def take(self) -> Sample:
        sample = self._stamp()
        self._known = _fold(self._read(), sample, self._known)
        self._add_system(sample)
        return sample

    async def take_async(self) -> Sample:
        """:meth:`take`, with an ``off_loop`` read done in a worker thread."""
        if not self.off_loop:
            return self.take()
        sample = await asyncio.to_thread(self._take_alone)
        self._add_system(sample)
        return sample

    def _take_alone(self) -> Sample:
        with self._reading:
            # Stamped once the other loop's read is done: the time of the figures read.
            sample = self._stamp()
            self._known = _fold(self._read(), sample, self._known)
            return sample

    def _add_system(self, sample: Sample) -> None:
        if self._system is not None:
            _fold_system(self._system(), sample)

    def _stamp(self) -> Sample:
        return Sample(time=self._clock(), monotonic=self._monotonic())


def _fold(inputs: SampleInputs, sample: Sample, known: _KnownBuckets) -> _KnownBuckets:
    kept = _fold_requests(inputs.requests, sample, known)
    sample.db_queries, sample.db_errors = inputs.database.queries, inputs.database.errors
    sample.cache_hits, sample.cache_misses = inputs.cache.hits, inputs.cache.misses
    sample.logins, sample.login_failures = inputs.users.logins, inputs.users.failures
    _fold_system(inputs.system, sample)
    return kept


def _fold_system(system: SystemSnapshot | None, sample: Sample) -> None:
    if system is not None:
        sample.cpu_percent, sample.memory_percent = system.cpu_percent, system.memory_percent
        sample.disk_percent = dict(system.disk_percent)
        sample.process_rss_bytes = system.process_rss_bytes


def _fold_requests(requests: RequestSnapshot, sample: Sample,
                   known: _KnownBuckets) -> _KnownBuckets:
    # Runs for every sample over every series (thousands under several workers, in a thread of
    # a process that serves requests), so it reads the store's table as it is: per series a
    # slice of it summed in C, per bucket one C-level sum over every series. It makes few
    # objects the garbage collector tracks (any of them may be walked while the GIL is held):
    # a route whose histogram did not change since the last sample (most) keeps the buckets
    # tuple made then. Returns those tuples, for the next sample.
    table = requests.table
    keys, values, stride, counts = table.keys, table.values, table.stride, table.counts
    natives = table.native
    t = len(table.bounds) + 1
    sample.in_progress = requests.in_progress
    sample.streams_open = requests.streams_open
    sample.streams = requests.streams
    # Each route's first series, and per series the route's next one (-1: none): one list for
    # every route, most of which have one series.
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    after = [-1] * len(keys)
    duration_sum = 0.0  # added in the table's order, as every sum of durations here
    for i, key in enumerate(keys):
        name = f"{key[0]} {key[1]}"
        previous = last.get(name)
        if previous is None:
            first[name] = i
        else:
            after[previous] = i
        last[name] = i
        duration_sum += values[i * stride + t]
    if not first:
        return {}
    bounds = (*table.bounds, math.inf)
    requested = errors = client_errors = duration_count = 0.0
    routes = sample.routes
    kept: _KnownBuckets = {}
    for name, i in first.items():
        route_requests = route_errors = route_sum = route_count = 0.0
        statuses: dict[int, float] = {}
        parts: list[Sequence[float]] = []
        route_native: NativeTotals | None = None
        while i >= 0:
            at = i * stride
            part = values[at:at + t]
            observed = float(sum(part, 0.0))
            count = observed if counts is None else counts[i]
            status = keys[i][2]
            statuses[status] = statuses.get(status, 0.0) + count
            route_requests += count
            if status >= 500:
                route_errors += count
            elif status >= 400:
                client_errors += count
            route_sum += values[at + t]
            route_count += observed
            parts.append(part)
            if natives is not None:
                native = natives[i]
                if native is not None:
                    sample.native = _add_native(sample.native, native)
                    route_native = _add_native(route_native, native)
            i = after[i]
        requested += route_requests
        errors += route_errors
        duration_count += route_count
        # Compared as read, so an unchanged route adds nothing up (a series' part, or the
        # route's parts together).
        seen = parts[0] if len(parts) == 1 else parts
        before = known.get(name)
        if before is None or before[0] != seen:
            summed = reduce(_added, parts)
            before = (seen, tuple(zip(bounds, map(float, accumulate(summed)), strict=True)))
        kept[name] = before
        routes[name] = RouteTotals(route_requests, route_errors, route_sum, route_count,
                                   before[1], statuses, route_native)
    sample.requests, sample.errors, sample.client_errors = requested, errors, client_errors
    sample.duration_sum, sample.duration_count = duration_sum, duration_count
    # Each bucket summed over every series at once: a strided slice, one C loop.
    sample.buckets = tuple(zip(bounds, accumulate(float(sum(values[j::stride], 0.0))
                                                  for j in range(t)), strict=True))
    if table.labels:
        _fold_labelled(table, bounds, sample.labelled)
    return kept


def _fold_labelled(table: SeriesTable, bounds: tuple[float, ...],
                   labelled: dict[tuple[str, str, tuple[tuple[str, str], ...]], RouteTotals],
                   ) -> None:
    """Per (method, route, request labels) totals, for SLO selectors that filter on them."""
    values, stride, t = table.values, table.stride, len(bounds)
    for i, key in enumerate(table.keys):
        pairs = table.labels_of(i)
        at = i * stride
        part = values[at:at + t]
        count = float(sum(part, 0.0))
        group = (key[0], key[1], pairs)
        totals = labelled.get(group)
        if totals is None:
            totals = labelled[group] = RouteTotals()
        totals.requests += count
        if key[2] >= 500:
            totals.errors += count
        totals.duration_sum += values[at + t]
        totals.duration_count += count
        buckets = tuple(zip(bounds, map(float, accumulate(part)), strict=True))
        totals.buckets = (buckets if not totals.buckets else tuple(
            (bound, a + b) for (bound, a), (_, b) in zip(totals.buckets, buckets, strict=True)))


def _added(summed: Sequence[float], part: Sequence[float]) -> Sequence[float]:
    # An array stays one (no object per value for the garbage collector to track).
    if isinstance(part, array):
        return array("d", map(add, summed, part))
    return list(map(add, summed, part))


def _add_native(found: NativeTotals | None, native: NativeBuckets) -> NativeTotals:
    """``found`` plus ``native``, at the lower of their schemas (two neighbouring buckets of a
    schema are one of the schema below)."""
    schema, _, zero, pairs = native
    if found is None:
        return schema, {index: float(count) for index, count in pairs}, float(zero)
    have, counts, have_zero = found
    if schema < have:
        coarser: dict[int, float] = {}
        for index, count in counts.items():
            key = -((-index) >> (have - schema))
            coarser[key] = coarser.get(key, 0.0) + count
        counts, have = coarser, schema
    by = schema - have
    for index, count in pairs:
        key = -((-index) >> by) if by else index
        counts[key] = counts.get(key, 0.0) + count
    return have, counts, have_zero + zero


def _native_buckets(new: NativeTotals, old: NativeTotals | None) -> Buckets | None:
    """The native buckets' increase from ``old`` to ``new`` as cumulative (bound, count) pairs,
    each bucket's lower bound and upper bound, so :func:`quantile` interpolates inside the
    bucket as Prometheus' ``histogram_quantile`` does over native histograms. None when the
    schema changed in between (a series went over its bucket limit): the classic buckets
    answer then."""
    schema, counts, zero = new
    if old is not None:
        if old[0] != schema:
            return None
        before = old[1]
        zero = _increase(zero, old[2])
        counts = {index: _increase(count, before.get(index, 0.0))
                  for index, count in counts.items()}
    width = 2.0 ** -schema
    running = zero
    out = [(0.0, zero)]  # the zero bucket: values at 0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        out.append((2.0 ** ((index - 1) * width), running))
        running += count
        out.append((2.0 ** (index * width), running))
    return tuple(out)


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


def quantile_shown(q: float, buckets: Buckets,
                   total: float | None = None) -> tuple[float, str | None] | None:
    """The ``q`` quantile as a page may state it: ``(value, None)`` for an estimate (or an
    exact 0), ``(bound, "le")`` for "at most", ``(bound, "gt")`` for "above"; None if empty.

    :func:`quantile` interpolates linearly inside the bucket the rank falls in, which the
    buckets cannot back up everywhere: in the first bucket it spreads the requests evenly from
    0 (a 4-byte body read "p95 95 B" from a 0-100 B bucket), and past the last finite bound it
    names that bound. So: a rank in the first bucket is "at most its bound" (exactly 0 when
    ``total``, the histogram's sum, is 0: every value was 0); a rank in the +Inf bucket is
    "above the highest bound"; an interpolation the sum rules out (even with every other value
    at its bucket's lower bound, the values from the rank up would add to more than ``total``)
    is "at most the bucket's bound"."""
    value = quantile(q, buckets)
    if value is None:
        return None
    rank = q * buckets[-1][1]
    lower, below, floor_sum = 0.0, 0.0, 0.0
    found: tuple[float, float, float, float] | None = None
    for bound, count in buckets:
        if found is None and count >= rank:
            found = (lower, bound, below, count)
        floor_sum += (count - below) * lower  # every value at its bucket's lower bound
        lower, below = bound, count
    if found is None:  # unreachable: the last bucket holds every value
        return (value, None)
    lower, upper, below, count = found
    if math.isinf(upper):
        return (lower, "gt")
    if lower <= 0:
        return (0.0, None) if total is not None and total <= 0 else (upper, "le")
    if total is not None and floor_sum + (count - rank) * (value - lower) > total * (1 + 1e-9):
        return (upper, "le")
    return (value, None)


@dataclass(frozen=True)
class Window:
    """What happened between two samples."""

    start: Sample
    end: Sample

    @property
    def seconds(self) -> float:
        return max(self.elapsed, 1e-9)

    @property
    def elapsed(self) -> float:
        """Seconds between the samples (<= 0 when they were taken at once)."""
        return self.end.instant - self.start.instant

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
            new_native, old_native = self.end.native, self.start.native
        else:
            new_route = self.end.routes.get(route)
            if new_route is None:
                return None
            old_route = self.start.routes.get(route)
            new, old = new_route.buckets, old_route.buckets if old_route else ()
            new_native, old_native = new_route.native, old_route.native if old_route else None
        if new_native is not None:
            # Native histograms on: their buckets, a few percent wide, rather than the classic
            # ones, which may be a factor of two or more apart.
            native = _native_buckets(new_native, old_native)
            if native is not None:
                return quantile(q, native)
        return quantile(q, _bucket_increase(new, old))

    def route_statuses(self, route: str) -> tuple[tuple[int, float], ...]:
        """``route``'s requests by status code over the window (codes with requests only)."""
        new = self.end.routes.get(route)
        if new is None:
            return ()
        old = self.start.routes.get(route)
        before = old.statuses if old else {}
        grown = ((code, _increase(count, before.get(code, 0.0)))
                 for code, count in sorted(new.statuses.items()))
        return tuple((code, count) for code, count in grown if count > 0)

    def route_buckets(self, route: str) -> Buckets:
        """``route``'s duration histogram over the window (cumulative, +Inf last)."""
        new = self.end.routes.get(route)
        if new is None:
            return ()
        old = self.start.routes.get(route)
        return _bucket_increase(new.buckets, old.buckets if old else ())

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
        horizon = sample.instant - self.retention_seconds
        while len(self._samples) > 2 and self._samples[0].instant < horizon:
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
            if end.instant - sample.instant > seconds:
                break
            start = sample
        if start is end:
            start = self._samples[-2]
        return Window(start, end)
