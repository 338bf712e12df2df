"""The request families a scrape shows: the stored series, projected onto the chosen names.

Every request store keeps one series per (method, route, status, scheme): a request count and
four histograms (duration, time to first byte, request and response body size). What a scrape
shows of them depends on ``MONITORING_METRIC_NAMES``:

- ``classic``: ``http_requests_total`` by (method, route, status) and the histograms by
  (method, route), i.e. summed over status and scheme, exactly as before the store kept them
  apart;
- ``otel``: OpenTelemetry's HTTP semantic conventions
  (https://opentelemetry.io/docs/specs/semconv/http/http-metrics/): the duration and body-size
  histograms by ``http_request_method``, ``http_route``, ``http_response_status_code``,
  ``url_scheme`` and ``error_type`` (the status code of a server error, absent otherwise). Their
  ``_count`` is the request count, so there is no request counter, as in the conventions. Time to
  first byte has no counterpart and keeps its classic name and labels;
- ``both``: the two, during a migration.

:func:`request_families` is the one projection; every store hands it :class:`StoredSeries`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from .native import NativeSnapshot, merge_native

__all__ = ["HISTOGRAMS", "IN_PROGRESS_HELP", "OTEL_HISTOGRAMS", "OTEL_STREAMS_OPEN",
           "OTEL_STREAM_DURATION", "REQUESTS_HELP", "STREAMS_OPEN", "STREAMS_OPEN_HELP",
           "STREAM_DURATION", "STREAM_DURATION_HELP", "Kept", "Lifetimes",
           "NativeHistogramFamily", "StoredSeries", "class_text", "fold_status_classes",
           "latest_exemplars", "le_label", "native_key", "otel_method", "request_families",
           "stream_families", "stream_names"]

# A kept exemplar: (labels such as trace_id, observed value, unix time).
Kept = tuple[dict[str, str], float, float]

# (classic family, help, measures bytes rather than seconds), in StoredSeries.histograms' order.
HISTOGRAMS = (
    ("http_request_duration_seconds",
     "Time from request start to the last response body chunk.", False),
    ("http_time_to_first_byte_seconds",
     "Time from request start until the response status and headers were sent.", False),
    ("http_request_size_bytes", "Request body size, counted from the bytes actually received.",
     True),
    ("http_response_size_bytes", "Response body size, counted from the bytes actually sent.",
     True),
)
# Index in HISTOGRAMS -> (OpenTelemetry family, help); time to first byte has none.
OTEL_HISTOGRAMS = {
    0: ("http_server_request_duration_seconds", "Duration of HTTP server requests."),
    2: ("http_server_request_body_size_bytes", "Size of HTTP server request bodies."),
    3: ("http_server_response_body_size_bytes", "Size of HTTP server response bodies."),
}
REQUESTS_HELP = "Total HTTP requests by method, route template and status."
IN_PROGRESS_HELP = "HTTP requests being served now."


def native_key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """How a :class:`NativeHistogramFamily` finds a series' native buckets: its labels, sorted
    (``le`` and empty ones left out: an empty label is no label to Prometheus, and the OTel
    families drop an empty ``error_type``)."""
    return tuple(sorted((name, value) for name, value in labels.items()
                        if name != "le" and value != ""))


class NativeHistogramFamily(HistogramMetricFamily):
    """A histogram family whose series also have native buckets, by :func:`native_key`. Only
    the protobuf exposition reads them; every other reader sees a classic histogram."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        super().__init__(name, documentation, labels=labels)
        self.native: dict[tuple[tuple[str, str], ...], NativeSnapshot] = {}


class StoredSeries(NamedTuple):
    """One stored series as a store reads it on scrape."""

    method: str
    route: str
    status: int
    scheme: str
    requests: float
    # In HISTOGRAMS' order: per-bucket counts, not cumulative, +Inf last; and the sum.
    histograms: tuple[tuple[Sequence[float], float], ...]
    # The duration buckets' last exemplars (+Inf last), or None.
    exemplars: Sequence[Kept | None] | None = None
    # The native histograms of the duration and TTFB, when native histograms are on.
    native: tuple[NativeSnapshot, NativeSnapshot] | None = None
    # The values of the request labels the user chose (label_names' order), or () for none.
    labels: tuple[str, ...] = ()


def request_families(
    series: Iterable[StoredSeries], in_progress: Iterable[tuple[str, float]], *, naming: str,
    prefix: str, duration_bounds: Sequence[float], size_bounds: Sequence[float],
    constant_labels: Sequence[tuple[str, str]] = (), native_limit: int = 160,
    label_names: Sequence[str] = (), status_classes: bool = False,
) -> Iterator[Metric]:
    """The request families of ``series`` (and the in-progress gauge, by method) as ``naming``
    (classic, otel or both) names them; ``constant_labels`` are added to every sample, and the
    request labels ``label_names`` (each row's ``labels``) to every family but the gauges, which
    count requests before their labels are known. With ``status_classes`` the status is its
    class (``2xx``...): the series of one class are summed. Series with native buckets make the
    duration and TTFB families :class:`NativeHistogramFamily` (summed native buckets over
    ``native_limit`` are reduced to a lower schema)."""
    stored = list(series)
    rows = stored if not status_classes else fold_status_classes(stored, native_limit)
    status_text = class_text if status_classes else str
    user = tuple(label_names)
    blank = ("",) * len(user)
    names = tuple(name for name, _ in constant_labels)
    values = tuple(value for _, value in constant_labels)
    les = [[le_label(b) for b in duration_bounds], [le_label(b) for b in duration_bounds],
           [le_label(b) for b in size_bounds], [le_label(b) for b in size_bounds]]
    classic = naming != "otel"
    if classic:
        total = CounterMetricFamily(f"{prefix}http_requests", REQUESTS_HELP,
                                    labels=("method", "route", "status", *user, *names))
        counts: dict[tuple[str, ...], float] = {}
        for row in rows:
            key = (row.method, row.route, status_text(row.status), *(row.labels or blank))
            counts[key] = counts.get(key, 0.0) + row.requests
        for key, count in counts.items():
            total.add_metric((*key, *values), count)
        yield total
    # Summed over status and scheme: what the classic histograms (and ttfb in any naming) show.
    by_route: dict[tuple[str, ...], list[StoredSeries]] = {}
    for row in stored:
        by_route.setdefault((row.method, row.route, *(row.labels or blank)), []).append(row)
    has_native = any(row.native is not None for row in stored)
    for index, (name, doc, _) in enumerate(HISTOGRAMS):
        native = has_native and index < 2
        if classic or index not in OTEL_HISTOGRAMS:
            labels = ("method", "route", *user, *names)
            family = (NativeHistogramFamily(f"{prefix}{name}", doc, labels) if native else
                      HistogramMetricFamily(f"{prefix}{name}", doc, labels=labels))
            for route_key, group in by_route.items():
                summed, total_sum = _summed(group, index)
                kept = (latest_exemplars(row.exemplars for row in group) if index == 0
                        else None)
                family.add_metric((*route_key, *values),
                                  _buckets(les[index], summed, kept), total_sum)
                if isinstance(family, NativeHistogramFamily):
                    merged = merge_native((row.native[index] if row.native else None
                                           for row in group), native_limit)
                    if merged is not None:
                        family.native[native_key(dict(zip(labels, (*route_key, *values),
                                                          strict=True)))] = merged
            yield family
        if naming != "classic" and index in OTEL_HISTOGRAMS:
            otel_name, otel_doc = OTEL_HISTOGRAMS[index]
            otel_labels = ("http_request_method", "http_route", "http_response_status_code",
                           "url_scheme", "error_type", *user, *names)
            family = (NativeHistogramFamily(f"{prefix}{otel_name}", otel_doc, otel_labels)
                      if native else
                      HistogramMetricFamily(f"{prefix}{otel_name}", otel_doc,
                                            labels=otel_labels))
            for row in rows:
                per_bucket, total_sum = row.histograms[index]
                status = status_text(row.status)
                family.add_metric(
                    (otel_method(row.method), row.route, status, row.scheme,
                     status if row.status >= 500 else "", *(row.labels or blank), *values),
                    _buckets(les[index], per_bucket, row.exemplars if index == 0 else None),
                    total_sum)
                if isinstance(family, NativeHistogramFamily) and row.native is not None:
                    family.native[native_key(dict(zip(otel_labels, (
                        otel_method(row.method), row.route, status, row.scheme,
                        status if row.status >= 500 else "", *(row.labels or blank), *values),
                        strict=True)))] = row.native[index]
            for sample in family.samples:
                # Absent rather than empty, as the conventions have it (and ~15 bytes a line).
                if not sample.labels["error_type"]:
                    del sample.labels["error_type"]
            yield family
    if classic:
        gauge = GaugeMetricFamily(f"{prefix}http_requests_in_progress", IN_PROGRESS_HELP,
                                  labels=("method", *names))
        for method, value in in_progress:
            gauge.add_metric((method, *values), value)
        yield gauge
    if naming != "classic":
        # Kept per method only: a scheme on it would cost every request another lookup.
        gauge = GaugeMetricFamily(f"{prefix}http_server_active_requests",
                                  "Number of active HTTP server requests.",
                                  labels=("http_request_method", *names))
        for method, value in in_progress:
            gauge.add_metric((otel_method(method), *values), value)
        yield gauge


def class_text(status: int) -> str:
    """A status as its class label: ``2xx`` for 200..299 (and for 200, the class a folded
    series carries)."""
    return f"{status // 100}xx"


def fold_status_classes(series: Iterable[StoredSeries],
                        native_limit: int = 160) -> list[StoredSeries]:
    """``series`` with those of one status class summed into one, whose status is the class'
    first code (200 for 2xx); native buckets summed too (see :func:`merge_native`)."""
    folded: dict[tuple[str, str, int, str, tuple[str, ...]], StoredSeries] = {}
    for row in series:
        status = row.status // 100 * 100
        key = (row.method, row.route, status, row.scheme, row.labels)
        found = folded.get(key)
        if found is None:
            folded[key] = row._replace(status=status)
            continue
        histograms = tuple(
            ([a + b for a, b in zip(mine[0], theirs[0], strict=True)], mine[1] + theirs[1])
            for mine, theirs in zip(found.histograms, row.histograms, strict=True))
        native = found.native
        if native is not None or row.native is not None:
            summed = [merge_native((native[i] if native else None,
                                    row.native[i] if row.native else None), native_limit)
                      for i in range(2)]
            native = (summed[0], summed[1]) if summed[0] and summed[1] else None
        folded[key] = found._replace(
            requests=found.requests + row.requests, histograms=histograms,
            exemplars=latest_exemplars((found.exemplars, row.exemplars)), native=native)
    return list(folded.values())


def otel_method(method: str) -> str:
    """The conventions' value for a method outside the known set is ``_OTHER``."""
    return "_OTHER" if method == "OTHER" else method


def _summed(group: list[StoredSeries], index: int) -> tuple[list[float], float]:
    first, total = group[0].histograms[index]
    summed = list(first)
    for row in group[1:]:
        per_bucket, row_sum = row.histograms[index]
        for i, count in enumerate(per_bucket):
            summed[i] += count
        total += row_sum
    return summed, total


def latest_exemplars(kept: Iterable[Sequence[Kept | None] | None]) -> list[Kept | None] | None:
    """Per duration bucket, the newest exemplar among a route's series' (``kept``: each one's
    per bucket, or None)."""
    merged: list[Kept | None] | None = None
    for row in kept:
        if row is None:
            continue
        if merged is None:
            merged = list(row)
            continue
        for i, found in enumerate(row):
            old = merged[i]
            if found is not None and (old is None or found[2] >= old[2]):
                merged[i] = found
    return merged


def _buckets(les: list[str], per_bucket: Sequence[float], kept: Sequence[Kept | None] | None,
             ) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
    out: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
    running = 0.0
    for i, count in enumerate(per_bucket):
        running += count
        le = les[i] if i < len(les) else "+Inf"
        exemplar = kept[i] if kept is not None else None
        if exemplar is None:
            out.append((le, running))
        else:
            # Only the OpenMetrics exposition writes them; the text format has no exemplars.
            out.append((le, running, Exemplar(exemplar[0], exemplar[1], exemplar[2])))
    return out


def le_label(bound: float) -> str:
    """A bound as an ``le`` label."""
    # The formatting prometheus_client uses for its own "le" labels, so series are identical.
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


# -- streams ------------------------------------------------------------------------------------
# A response is a stream when its content type is ``text/event-stream`` or its route is declared
# as one (``MONITORING_STREAM_ROUTES``): its request duration is then its time to first byte, and
# its lifetime (request start to the last body chunk, or to the client's disconnect) goes to the
# stream histogram, per method and route, with the long bounds WebSocket sessions use. Classic
# names ``http_stream_duration_seconds`` and ``http_streams_open``; OTel names
# ``http_server_stream_duration_seconds`` (by ``http_request_method``, ``http_route``) and
# ``http_server_active_streams``, after ``http.server.request.duration`` and
# ``http.server.active_requests`` (the conventions have no stream metric).
STREAM_DURATION = "http_stream_duration_seconds"
STREAMS_OPEN = "http_streams_open"
OTEL_STREAM_DURATION = "http_server_stream_duration_seconds"
OTEL_STREAMS_OPEN = "http_server_active_streams"
STREAM_DURATION_HELP = ("Stream lifetime: from the request start to the last body chunk, or to "
                        "the client's disconnect.")
STREAMS_OPEN_HELP = "Streaming responses open now."

# Per (method, route): the lifetimes' per-bucket counts (+Inf last) and their sum.
Lifetimes = Sequence[tuple[str, str, Sequence[float], float]]


def stream_names(naming: str) -> list[tuple[str, str, tuple[str, str], bool]]:
    """(histogram, gauge, histogram label names, otel) per family set ``naming`` exposes."""
    out = []
    if naming != "otel":
        out.append((STREAM_DURATION, STREAMS_OPEN, ("method", "route"), False))
    if naming != "classic":
        out.append((OTEL_STREAM_DURATION, OTEL_STREAMS_OPEN, ("http_request_method",
                                                              "http_route"), True))
    return out


def stream_families(
    lifetimes: Lifetimes, open_streams: float, *, naming: str, prefix: str,
    bounds: Sequence[float], constant_labels: Sequence[tuple[str, str]] = (),
) -> Iterator[Metric]:
    """The stream families of ``lifetimes`` and the open-streams gauge, as ``naming`` names
    them; ``constant_labels`` are added to every sample."""
    names = tuple(name for name, _ in constant_labels)
    values = tuple(value for _, value in constant_labels)
    les = [le_label(bound) for bound in bounds]
    for histogram_name, gauge_name, labels, otel in stream_names(naming):
        family = HistogramMetricFamily(f"{prefix}{histogram_name}", STREAM_DURATION_HELP,
                                       labels=(*labels, *names))
        for method, route, per_bucket, total in lifetimes:
            buckets = []
            running = 0.0
            for i, count in enumerate(per_bucket):
                running += count
                buckets.append((les[i] if i < len(les) else "+Inf", running))
            family.add_metric((otel_method(method) if otel else method, route, *values),
                              buckets, total)
        yield family
        gauge = GaugeMetricFamily(f"{prefix}{gauge_name}", STREAMS_OPEN_HELP, labels=names)
        gauge.add_metric(values, open_streams)
        yield gauge
