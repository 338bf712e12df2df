"""Request metrics: the store the hot path writes to and the collector Prometheus reads from.

Why not prometheus_client's Counter/Histogram on the hot path: each ``observe`` takes a lock and a
``.labels()`` lookup formats label values; four histograms and a counter per request would cost
several microseconds. Here a request costs one dict lookup for its series, four short bucket
scans and a few integer additions on plain lists. The work of turning that into Prometheus families
happens on scrape, in :meth:`RequestMetrics.collect` (families) or
:meth:`RequestMetrics.exposition` (the text itself, :mod:`asgi_monitor.store.exposition`).

All writes happen on the event loop thread (ASGI middleware code never runs concurrently with
itself between awaits), so plain ints need no lock. A scrape from another thread copies each list
before reading it; a sample it sees may be one request behind, never torn across buckets.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Iterator, Sequence
from itertools import accumulate

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..config.metrics import metric_prefix
from ..sampling.inputs import RequestSnapshot, RouteLatency, SeriesTable
from .cap import OVERFLOW, SeriesCap
from .exposition import (
    Rendered,
    SeriesBlocks,
    direct_format,
    plain_names,
    request_text,
    stream_text,
    websocket_text,
)
from .families import (
    HISTOGRAMS,
    IN_PROGRESS_HELP,
    REQUESTS_HELP,
    StoredSeries,
    le_label,
    request_families,
    stream_families,
)
from .native import NativeBuckets
from .protobuf_scrape import RenderedBytes, direct_protobuf
from .settings import StoreSettings

__all__ = [
    "HELP", "HTTP_REQUESTS", "HTTP_REQUESTS_IN_PROGRESS", "HTTP_REQUEST_DURATION", "OVERFLOW",
    "ROUTE_HISTOGRAMS", "STANDARD_METHODS", "BucketCounts", "Cell", "RequestMetrics",
    "NativeRequestMetrics", "RequestMetricsCollector", "RequestStore", "Series",
    "websocket_families",
]

_INF = math.inf
# WebSocket sessions last much longer than requests: the request buckets plus minutes and an hour.
WEBSOCKET_EXTRA_BUCKETS = (30.0, 60.0, 300.0, 900.0, 3600.0)
STANDARD_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")

# The families, shared with the multiprocess store so both expose the same names and help. The
# names the sampler reads back under several workers are constants, imported by the one reader
# of merged families (asgi_monitor.sampling.merged), never spelled again.
HTTP_REQUESTS = "http_requests"
HTTP_REQUESTS_IN_PROGRESS = "http_requests_in_progress"
HTTP_REQUEST_DURATION = HISTOGRAMS[0][0]
HELP = {
    HTTP_REQUESTS: REQUESTS_HELP,
    HTTP_REQUESTS_IN_PROGRESS: IN_PROGRESS_HELP,
    "websocket_connections": "Accepted WebSocket connections by route template.",
    "websocket_connections_active": "WebSocket connections open now.",
    "websocket_session_duration_seconds": "WebSocket session length, accept to close.",
}
# (family, Series attribute, help, measures bytes rather than seconds)
ROUTE_HISTOGRAMS = tuple(
    (name, attr, doc, in_bytes) for (name, doc, in_bytes), attr
    in zip(HISTOGRAMS, ("duration", "ttfb", "request_size", "response_size"), strict=True))


class Cell:
    """A gauge the hot path moves: requests or connections open now. The multiprocess store's
    cells also write the gauge's file (``asgi_monitor.store.multiprocess.GaugeCell``)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def add(self, delta: int) -> None:
        self.value += delta


class RequestStore:
    """What the middleware records into: :class:`RequestMetrics` here, or
    :class:`asgi_monitor.store.multiprocess.MultiprocessRequestMetrics` under several workers.

    A base class rather than a Protocol on purpose: when the hot path is compiled (mypyc), calls
    on a compiled class are direct C calls, calls through a Protocol are Python calls (part of
    what the change to this design saved per request, measured with callgrind:
    benchmarks/README.md, "Where the server-side cost comes from").
    """

    # Set by each store: one cell per standard method, plus "OTHER" for the rest.
    in_progress: dict[str, Cell]
    # Streams open now (asgi_monitor.store.families, the stream families); the middleware moves it.
    streams_open: Cell

    def begin(self, method: str) -> str:
        """Count a request in progress; returns its method label (``OTHER`` if not standard)."""
        cell = self.in_progress.get(method)
        if cell is None:
            method = "OTHER"
            cell = self.in_progress[method]
        cell.add(1)
        return method

    def end(self, method: str) -> None:
        """The request ``begin`` returned ``method`` for is no longer in progress."""
        self.in_progress[method].add(-1)

    def record(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int,
    ) -> None:
        """Count one finished request (``scheme``: the scope's, http/https or ws/wss) and
        observe its four histograms."""
        raise NotImplementedError

    def record_exemplar(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int, exemplar: dict[str, str] | None,
    ) -> None:
        """:meth:`record`, keeping ``exemplar`` (labels such as ``trace_id``) as the last one of
        the duration bucket the request fell in. Called instead of ``record`` only when
        exemplars are on; a store that cannot keep them (multiprocess) just records."""
        self.record(method, route, status, scheme, duration, ttfb, request_bytes,
                    response_bytes)

    def record_stream(self, method: str, route: str, lifetime: float) -> None:
        """Observe a finished stream's lifetime (its request is recorded too, by its first
        byte)."""
        raise NotImplementedError

    def record_labelled(
        self, method: str, route: str, status: int, scheme: str, labels: tuple[str, ...],
        duration: float, ttfb: float, request_bytes: int, response_bytes: int,
        exemplar: dict[str, str] | None,
    ) -> None:
        """:meth:`record_exemplar` for a request with the values of the request labels the
        user chose (``labels``, in the settings' ``label_names`` order). Called instead of the
        others only when request labels are configured."""
        raise NotImplementedError

    def websocket_accepted(self, route: str) -> str:
        """Count an accepted connection; returns the (possibly overflowed) route label to reuse."""
        raise NotImplementedError

    def websocket_closed(self, route: str, duration: float) -> None:
        raise NotImplementedError

    def dropped_counts(self) -> dict[str, int]:
        """Requests recorded under OVERFLOW because of the series cap, per metric family."""
        raise NotImplementedError


class BucketCounts:
    """Non-cumulative bucket counts plus a sum; cumulated only when scraped."""

    __slots__ = ("bounds", "counts", "total", "_scan")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts: list[int] = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.total = 0.0
        # The bounds with +Inf appended, so the scan in observe() needs no end check.
        self._scan: list[float] = [*self.bounds, math.inf]

    def observe(self, value: float) -> None:
        # The first bound >= value is Prometheus' "le" bucket. A scan from the smallest bound,
        # not bisect: web values sit in the first few buckets, so it stops after one to three
        # comparisons, and compiled it compares C doubles instead of calling bisect_left and
        # comparing float objects. NaN compares false and lands in the first bucket, as
        # bisect_left put it.
        scan = self._scan
        i = 0
        while value > scan[i]:
            i += 1
        self.counts[i] += 1
        self.total += value

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        counts = list(self.counts)
        total = self.total
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, counts, strict=False):
            running += count
            out.append((le_label(bound), running))
        out.append(("+Inf", running + counts[-1]))
        return out, total


class Series:
    """What one request updates: the count and the four histograms of its (method, route,
    status, scheme), and the duration buckets' last exemplars."""

    __slots__ = ("count", "duration", "ttfb", "request_size", "response_size", "exemplars",
                 "native_duration", "native_ttfb")

    def __init__(self, duration_bounds: Sequence[float], size_bounds: Sequence[float]) -> None:
        self.count = 0
        self.duration = BucketCounts(duration_bounds)
        self.ttfb = BucketCounts(duration_bounds)
        self.request_size = BucketCounts(size_bounds)
        self.response_size = BucketCounts(size_bounds)
        # Per duration bucket (+Inf last): (labels, value, unix time) of the last request with
        # an exemplar, or None. Created by the first exemplar: without them it costs nothing.
        self.exemplars: list[tuple[dict[str, str], float, float] | None] | None = None
        # The native histograms of the duration and TTFB, set by NativeRequestMetrics only.
        self.native_duration: NativeBuckets | None = None
        self.native_ttfb: NativeBuckets | None = None

    def observe(
        self, duration: float, ttfb: float, request_bytes: int, response_bytes: int
    ) -> None:
        # BucketCounts.observe inlined four times: in the pure-Python build four method calls
        # are a measurable share of what a request costs (benchmarks/hotpath.py).
        self.count += 1
        h = self.duration
        scan = h._scan
        i = 0
        while duration > scan[i]:
            i += 1
        h.counts[i] += 1
        h.total += duration
        h = self.ttfb
        scan = h._scan
        i = 0
        while ttfb > scan[i]:
            i += 1
        h.counts[i] += 1
        h.total += ttfb
        h = self.request_size
        scan = h._scan
        i = 0
        while request_bytes > scan[i]:
            i += 1
        h.counts[i] += 1
        h.total += request_bytes
        h = self.response_size
        scan = h._scan
        i = 0
        while response_bytes > scan[i]:
            i += 1
        h.counts[i] += 1
        h.total += response_bytes

    def observe_native(self, duration: float, ttfb: float) -> None:
        """The native buckets' half of a request (NativeRequestMetrics sets them)."""
        found = self.native_duration
        if found is not None:
            found.observe(duration)
        found = self.native_ttfb
        if found is not None:
            found.observe(ttfb)

    def keep_exemplar(self, duration: float, labels: dict[str, str]) -> None:
        scan = self.duration._scan
        i = 0
        while duration > scan[i]:
            i += 1
        kept = self.exemplars
        if kept is None:
            kept = self.exemplars = [None] * len(scan)
        kept[i] = (labels, duration, time.time())

    def stored(self, key: tuple[str, str, int, str], labels: tuple[str, ...] = ()) -> StoredSeries:
        """A copy for the scrape (lists copied: the event loop thread may be adding to them)."""
        kept = self.exemplars
        return StoredSeries(
            key[0], key[1], key[2], key[3], float(self.count),
            ((list(self.duration.counts), self.duration.total),
             (list(self.ttfb.counts), self.ttfb.total),
             (list(self.request_size.counts), self.request_size.total),
             (list(self.response_size.counts), self.response_size.total)),
            list(kept) if kept is not None else None,
            None if self.native_duration is None or self.native_ttfb is None else
            (self.native_duration.snapshot(), self.native_ttfb.snapshot()), labels)


class RequestMetrics(RequestStore):
    """HTTP and WebSocket request metrics, bounded in cardinality, exposed on scrape under the
    names ``naming`` chooses (:func:`asgi_monitor.store.families.request_families`).

    Registered through :class:`RequestMetricsCollector`: a compiled class cannot derive from
    prometheus_client's ``Collector``.
    """

    def __init__(self, settings: StoreSettings) -> None:
        self._prefix = metric_prefix(settings.namespace)
        # Added to every family on scrape, never stored per series: the hot path never sees them.
        self._constant_labels = tuple(settings.constant_labels)
        self._plain = plain_names(self._prefix, (name for name, _ in self._constant_labels))
        self._naming = settings.naming
        self._duration_buckets = tuple(settings.duration_buckets)
        self._size_buckets = tuple(settings.size_buckets)
        self._native_limit = settings.native_max_buckets
        # Whether the series keep native histograms (NativeRequestMetrics): the sampler's table
        # then carries them.
        self._natives_kept = False
        max_series = settings.max_series
        self._series: dict[tuple[str, str, int, str], Series] = {}
        # With request labels: the series by (method, route, status, scheme, their values).
        # Apart from the others, so that a store without them keys and hashes as before.
        self._label_names = tuple(settings.label_names)
        self._status_classes = settings.status_classes
        self._labelled: dict[tuple[str, str, int, str, tuple[str, ...]], Series] = {}
        # The (method, route, status) label sets the cap counts (and the request labels' values
        # with them): a scheme is no new label set under classic names, and one process rarely
        # sees more than one.
        self._cap: SeriesCap[tuple[str, str, int] | tuple[str, str, int, tuple[str, ...]]] = (
            SeriesCap(max_series))
        self._ws_cap: SeriesCap[str] = SeriesCap(max_series)
        self.dropped = 0  # requests whose label set was over the cap and went to OVERFLOW
        self.in_progress = {m: Cell() for m in (*STANDARD_METHODS, "OTHER")}
        self.ws_active = Cell()
        self._ws_total: dict[str, int] = {}
        self._ws_duration: dict[str, BucketCounts] = {}
        self._ws_dropped = 0
        self.streams_open = Cell()
        self._long_bounds = sorted({*self._duration_buckets, *WEBSOCKET_EXTRA_BUCKETS})
        self._streams: dict[tuple[str, str], BucketCounts] = {}
        self._stream_cap: SeriesCap[tuple[str, str]] = SeriesCap(max_series)
        self._stream_dropped = 0

    # -- hot path (begin and end are RequestStore's) ---------------------------------------------
    def record(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int,
    ) -> None:
        self.series(method, route, status, scheme).observe(duration, ttfb, request_bytes,
                                                           response_bytes)

    def record_exemplar(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int, exemplar: dict[str, str] | None,
    ) -> None:
        series = self.series(method, route, status, scheme)
        series.observe(duration, ttfb, request_bytes, response_bytes)
        if exemplar is not None:
            # The series' own histograms: an overflowed request's exemplar goes where it counted.
            series.keep_exemplar(duration, exemplar)

    def record_labelled(
        self, method: str, route: str, status: int, scheme: str, labels: tuple[str, ...],
        duration: float, ttfb: float, request_bytes: int, response_bytes: int,
        exemplar: dict[str, str] | None,
    ) -> None:
        series = self._labelled.get((method, route, status, scheme, labels))
        if series is None:
            series = self.labelled_series(method, route, status, scheme, labels)
        series.observe(duration, ttfb, request_bytes, response_bytes)
        if series.native_duration is not None:  # native histograms on (NativeRequestMetrics)
            series.observe_native(duration, ttfb)
        if exemplar is not None:
            series.keep_exemplar(duration, exemplar)

    def labelled_series(self, method: str, route: str, status: int, scheme: str,
                        labels: tuple[str, ...]) -> Series:
        """:meth:`series` with the request labels' values; over the cap, the overflow series,
        whose request labels are all ``<overflow>`` too (so it stays one series)."""
        key = (method, route, status, scheme, labels)
        found = self._labelled.get(key)
        if found is not None:
            return found
        overflow = (OVERFLOW,) * len(labels)
        if not self._cap.keeps((method, route, status, labels),
                               (method, OVERFLOW, status, overflow)):
            self.dropped += 1
            key = (method, OVERFLOW, status, scheme, overflow)
            found = self._labelled.get(key)
            if found is not None:
                return found
        found = self._labelled[key] = self._new_series()
        return found

    def _all_series(self) -> list[tuple[tuple[str, str, int, str], tuple[str, ...], Series]]:
        """Every series with its request labels' values (empty ones for a series recorded
        without them: a WebSocket handshake's denial)."""
        empty = ("",) * len(self._label_names)
        rows = [(key, empty, series) for key, series in list(self._series.items())]
        rows += [((m, r, status, scheme), labels, series)
                 for (m, r, status, scheme, labels), series in list(self._labelled.items())]
        return rows

    def series(self, method: str, route: str, status: int, scheme: str) -> Series:
        """The series for a label set, created on first use; over the cap, the overflow one."""
        key = (method, route, status, scheme)
        found = self._series.get(key)
        if found is not None:
            return found
        if not self._cap.keeps((method, route, status), (method, OVERFLOW, status)):
            self.dropped += 1
            key = (method, OVERFLOW, status, scheme)
            found = self._series.get(key)
            if found is not None:
                return found
        found = self._series[key] = self._new_series()
        return found

    def _new_series(self) -> Series:
        return Series(self._duration_buckets, self._size_buckets)

    def record_stream(self, method: str, route: str, lifetime: float) -> None:
        key = (method, route)
        histogram = self._streams.get(key)
        if histogram is None:
            if not self._stream_cap.keeps(key, (method, OVERFLOW)):
                self._stream_dropped += 1
                key = (method, OVERFLOW)
            histogram = self._streams.get(key)
            if histogram is None:
                # Streams last like WebSocket sessions: the same long bounds.
                histogram = self._streams[key] = BucketCounts(self._long_bounds)
        histogram.observe(lifetime)

    def websocket_accepted(self, route: str) -> str:
        if not self._ws_cap.keeps(route, OVERFLOW):
            self._ws_dropped += 1
            route = OVERFLOW
        self._ws_total[route] = self._ws_total.get(route, 0) + 1
        self.ws_active.add(1)
        return route

    def websocket_closed(self, route: str, duration: float) -> None:
        self.ws_active.add(-1)
        histogram = self._ws_duration.get(route)
        if histogram is None:
            bounds = sorted({*self._duration_buckets, *WEBSOCKET_EXTRA_BUCKETS})
            histogram = self._ws_duration[route] = BucketCounts(bounds)
        histogram.observe(duration)

    # -- scrape ---------------------------------------------------------------------------------
    def describe(self) -> Iterator[Metric]:
        # Declaring our names lets the registry reject a custom metric that would clash.
        return self._families([], [], [], [])

    def collect(self) -> Iterator[Metric]:
        # list() of a dict's items is one C call under the GIL: a consistent snapshot even while
        # the event loop thread adds series.
        return self._families([s.stored(key, labels) for key, labels, s in self._all_series()],
                              list(self._ws_total.items()), list(self._ws_duration.items()),
                              self._lifetimes())

    def exposition(self, openmetrics: bool) -> str | None:
        """:meth:`collect`'s families as exposition text (OpenMetrics or the text format), or
        None where only prometheus_client can write them (names outside the plain set)."""
        if not self._plain:
            return None
        ws_duration = list(self._ws_duration.items())
        out: list[str] = []
        in_progress = [(method, float(cell.value)) for method, cell in self.in_progress.items()]
        request_text(
            out, self.blocks(), in_progress,
            naming=self._naming, prefix=self._prefix, duration_bounds=self._duration_buckets,
            size_bounds=self._size_buckets, constant_labels=self._constant_labels,
            openmetrics=openmetrics, label_names=self._label_names,
            status_classes=self._status_classes)
        websocket_text(
            out, [(route, float(count)) for route, count in list(self._ws_total.items())],
            float(self.ws_active.value),
            [(route, list(h.counts), h.total) for route, h in ws_duration],
            prefix=self._prefix,
            bounds=sorted({*self._duration_buckets, *WEBSOCKET_EXTRA_BUCKETS}), docs=HELP,
            constant_labels=self._constant_labels, openmetrics=openmetrics)
        stream_text(out, self._lifetimes(), float(self.streams_open.value), naming=self._naming,
                    prefix=self._prefix, bounds=self._long_bounds,
                    constant_labels=self._constant_labels, openmetrics=openmetrics)
        return "".join(out)

    def protobuf(self) -> list[Metric]:
        """The request families as protobuf messages (one :class:`RenderedBytes`), then the
        WebSocket and stream families."""
        if self._label_names or self._status_classes:
            # Not written directly: the generic encoder takes the families as they are.
            return list(self.collect())
        # Imported on the first protobuf scrape: the hot path's modules never need it.
        from .protobuf import request_protobuf

        series = [s.stored(key) for key, s in list(self._series.items())]
        data = request_protobuf(
            series, [(method, float(cell.value)) for method, cell in self.in_progress.items()],
            naming=self._naming, prefix=self._prefix, duration_bounds=self._duration_buckets,
            size_bounds=self._size_buckets, constant_labels=self._constant_labels,
            native_limit=self._native_limit)
        ws_duration = list(self._ws_duration.items())
        return [RenderedBytes(data), *websocket_families(
            [(route, float(count)) for route, count in list(self._ws_total.items())],
            float(self.ws_active.value),
            [(route, [float(c) for c in h.counts], h.total) for route, h in ws_duration],
            prefix=self._prefix,
            bounds=sorted({*self._duration_buckets, *WEBSOCKET_EXTRA_BUCKETS}),
            constant_labels=self._constant_labels), *stream_families(
            self._lifetimes(), float(self.streams_open.value), naming=self._naming,
            prefix=self._prefix, bounds=self._long_bounds,
            constant_labels=self._constant_labels)]

    def _lifetimes(self) -> list[tuple[str, str, list[float], float]]:
        return [(method, route, [float(c) for c in h.counts], h.total)
                for (method, route), h in list(self._streams.items())]

    def _families(
        self,
        series: list[StoredSeries],
        ws_total: list[tuple[str, int]],
        ws_duration: list[tuple[str, BucketCounts]],
        lifetimes: list[tuple[str, str, list[float], float]],
    ) -> Iterator[Metric]:
        p = self._prefix
        yield from request_families(
            series, [(method, float(cell.value)) for method, cell in self.in_progress.items()],
            naming=self._naming, prefix=p, duration_bounds=self._duration_buckets,
            size_bounds=self._size_buckets, constant_labels=self._constant_labels,
            native_limit=self._native_limit, label_names=self._label_names,
            status_classes=self._status_classes)

        yield from websocket_families(
            [(route, float(count)) for route, count in ws_total], float(self.ws_active.value),
            [(route, [float(c) for c in h.counts], h.total) for route, h in ws_duration],
            prefix=p, bounds=sorted({*self._duration_buckets, *WEBSOCKET_EXTRA_BUCKETS}),
            constant_labels=self._constant_labels)
        yield from stream_families(
            lifetimes, float(self.streams_open.value), naming=self._naming, prefix=p,
            bounds=self._long_bounds, constant_labels=self._constant_labels)

    def blocks(self) -> SeriesBlocks:
        """Every series copied into one array for the exposition (no object per series)."""
        items = self._all_series()
        values = array("d")
        starts = []
        exemplars = {}
        for i, (_, _, series) in enumerate(items):
            starts.append(len(values))
            for histogram in (series.duration, series.ttfb, series.request_size,
                              series.response_size):
                values.extend(histogram.counts)
                values.append(histogram.total)
            if series.exemplars is not None:
                exemplars[i] = tuple(series.exemplars)
        return SeriesBlocks([key for key, _, _ in items], starts, values, exemplars,
                            [labels for _, labels, _ in items] if self._label_names else ())

    def snapshot(self) -> RequestSnapshot:
        """What the sampler needs (runs at sample time only): every series' duration counts
        and sum end to end in one list, copied from its own list in one C call, no object per
        series."""
        items = self._all_series()
        values: list[float] = []
        for _, _, stored in items:
            histogram = stored.duration
            values.extend(histogram.counts)
            values.append(histogram.total)
        natives: list[tuple[int, float, int, tuple[tuple[int, int], ...]] | None] | None = None
        if self._natives_kept:
            natives = []
            for _, _, stored in items:
                native = stored.native_duration
                natives.append(None if native is None else native.read())
        bounds = self._duration_buckets
        names = self._label_names
        keys = ([(m, r, status, scheme, labels) for (m, r, status, scheme), labels, _ in items]
                if names else [key for key, _, _ in items])
        long_bounds = (*self._long_bounds, math.inf)
        streams = tuple(
            RouteLatency(method, route, tuple(zip(long_bounds, accumulate(counts), strict=True)),
                         total)
            for method, route, counts, total in self._lifetimes())
        return RequestSnapshot(
            SeriesTable(keys, values, len(bounds) + 2, bounds, None, names, natives),
            float(sum(cell.value for cell in self.in_progress.values())),
            streams, float(self.streams_open.value))

    def dropped_counts(self) -> dict[str, int]:
        return {"http_requests_total": self.dropped,
                "websocket_connections_total": self._ws_dropped,
                "http_stream_duration_seconds_count": self._stream_dropped}


class NativeRequestMetrics(RequestMetrics):
    """:class:`RequestMetrics` that also keeps native histograms of the duration and TTFB
    (``metrics.native_histograms``). A class of its own so that with them off the hot path is
    the very same code, not one more test per request."""

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__(settings)
        self._natives_kept = True
        self._native = (settings.native_schema, settings.native_zero_threshold,
                        settings.native_max_buckets)

    def record(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int,
    ) -> None:
        series = self.series(method, route, status, scheme)
        series.observe(duration, ttfb, request_bytes, response_bytes)
        # Series.observe_native and NativeBuckets.observe inlined: three calls less per
        # request, a measurable share of what native histograms add (benchmarks/README.md).
        native = series.native_duration
        if native is not None:
            if native.zero_threshold < duration < _INF:
                index = math.ceil(math.log2(duration) * native.factor)
                counts = native.counts
                counts[index] = counts.get(index, 0) + 1
                if len(counts) > native.limit:
                    native.reduce()
            else:
                native.zero_count += 1
        native = series.native_ttfb
        if native is not None:
            if native.zero_threshold < ttfb < _INF:
                index = math.ceil(math.log2(ttfb) * native.factor)
                counts = native.counts
                counts[index] = counts.get(index, 0) + 1
                if len(counts) > native.limit:
                    native.reduce()
            else:
                native.zero_count += 1

    def record_exemplar(
        self, method: str, route: str, status: int, scheme: str, duration: float, ttfb: float,
        request_bytes: int, response_bytes: int, exemplar: dict[str, str] | None,
    ) -> None:
        series = self.series(method, route, status, scheme)
        series.observe(duration, ttfb, request_bytes, response_bytes)
        series.observe_native(duration, ttfb)
        if exemplar is not None:
            series.keep_exemplar(duration, exemplar)

    def _new_series(self) -> Series:
        series = Series(self._duration_buckets, self._size_buckets)
        schema, threshold, limit = self._native
        series.native_duration = NativeBuckets(schema, threshold, limit)
        series.native_ttfb = NativeBuckets(schema, threshold, limit)
        return series


def websocket_families(
    totals: Sequence[tuple[str, float]], active: float,
    sessions: Sequence[tuple[str, Sequence[float], float]], *, prefix: str,
    bounds: Sequence[float], constant_labels: Sequence[tuple[str, str]] = (),
) -> Iterator[Metric]:
    """The WebSocket families, the same in every naming: accepted connections per route, those
    open now, and per route the session lengths (per-bucket counts, +Inf last, and their
    sum)."""
    names = tuple(name for name, _ in constant_labels)
    values = tuple(value for _, value in constant_labels)
    total = CounterMetricFamily(f"{prefix}websocket_connections",
                                HELP["websocket_connections"], labels=("route", *names))
    for route, count in totals:
        total.add_metric((route, *values), count)
    yield total
    gauge = GaugeMetricFamily(f"{prefix}websocket_connections_active",
                              HELP["websocket_connections_active"], labels=names)
    gauge.add_metric(values, active)
    yield gauge
    histograms = HistogramMetricFamily(f"{prefix}websocket_session_duration_seconds",
                                       HELP["websocket_session_duration_seconds"],
                                       labels=("route", *names))
    les = [le_label(bound) for bound in bounds]
    for route, per_bucket, total_sum in sessions:
        buckets = []
        running = 0.0
        for i, count in enumerate(per_bucket):
            running += count
            buckets.append((les[i] if i < len(les) else "+Inf", running))
        histograms.add_metric((route, *values), buckets, total_sum)
    yield histograms


class RequestMetricsCollector(Collector):
    """What the registry holds for :class:`RequestMetrics`: its families, read on scrape."""

    def __init__(self, store: RequestMetrics) -> None:
        self._store = store

    def describe(self) -> Iterator[Metric]:
        return self._store.describe()

    def collect(self) -> Iterator[Metric]:
        if direct_protobuf():
            return iter(self._store.protobuf())
        openmetrics = direct_format()
        if openmetrics is not None:
            text = self._store.exposition(openmetrics)
            if text is not None:
                return iter([Rendered(text)])
        return self._store.collect()
