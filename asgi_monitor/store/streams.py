"""The stream families: how long streams live, and how many are open now.

A response is a stream when its content type is ``text/event-stream`` or its route is declared
as one (``MONITORING_STREAM_ROUTES``). Its request duration is then its time to first byte, so an
SSE feed or an LLM token stream that lives for minutes does not read as a slow request; its
lifetime (request start to the last body chunk, or to the client's disconnect) goes here, per
method and route, with the long bounds WebSocket sessions use. The open-streams gauge counts
streams from their first body chunk with more to follow until they end.

Both stores hand their numbers to :func:`stream_families` (prometheus_client families) or
:func:`stream_text` (the same as exposition text), under the names ``naming`` chooses:

- ``classic``: ``http_stream_duration_seconds`` by (method, route), ``http_streams_open``;
- ``otel``: ``http_server_stream_duration_seconds`` by (``http_request_method``,
  ``http_route``), ``http_server_active_streams``, shaped as the conventions' request families
  (the conventions have no stream metric; these names follow ``http.server.request.duration``
  and ``http.server.active_requests``);
- ``both``: the two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from .exposition import counter_text, escape, histogram_text
from .families import le_label, otel_method

__all__ = ["OTEL_STREAMS_OPEN", "OTEL_STREAM_DURATION", "STREAMS_OPEN", "STREAM_DURATION",
           "STREAMS_OPEN_HELP", "STREAM_DURATION_HELP", "Lifetimes", "stream_families",
           "stream_text"]

STREAM_DURATION = "http_stream_duration_seconds"
STREAMS_OPEN = "http_streams_open"
OTEL_STREAM_DURATION = "http_server_stream_duration_seconds"
OTEL_STREAMS_OPEN = "http_server_active_streams"
STREAM_DURATION_HELP = ("Stream lifetime: from the request start to the last body chunk, or to "
                        "the client's disconnect.")
STREAMS_OPEN_HELP = "Streaming responses open now."

# Per (method, route): the lifetimes' per-bucket counts (+Inf last) and their sum.
Lifetimes = Sequence[tuple[str, str, Sequence[float], float]]


def _names(naming: str) -> list[tuple[str, str, tuple[str, str], bool]]:
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
    for histogram_name, gauge_name, labels, otel in _names(naming):
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


def stream_text(
    out: list[str], lifetimes: Lifetimes, open_streams: float, *, naming: str, prefix: str,
    bounds: Sequence[float], constant_labels: Sequence[tuple[str, str]], openmetrics: bool,
) -> None:
    """What :func:`stream_families` gives, as exposition text (appended to ``out``)."""
    constants = tuple(constant_labels)
    les = [le_label(bound) for bound in bounds]
    for histogram_name, gauge_name, labels, otel in _names(naming):
        histogram_text(
            out, f"{prefix}{histogram_name}", STREAM_DURATION_HELP, labels, constants, les,
            (((escape(otel_method(method) if otel else method), escape(route)), per_bucket,
              total, None) for method, route, per_bucket, total in lifetimes), openmetrics)
        counter_text(out, f"{prefix}{gauge_name}", STREAMS_OPEN_HELP, (), constants,
                     (((), open_streams),), openmetrics, typ="gauge")
