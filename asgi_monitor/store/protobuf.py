"""The Prometheus protobuf exposition: the one format that carries native histograms to a
Prometheus before 3.x (``--enable-feature=native-histograms`` makes it ask for this first).

``application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited``:
a stream of ``MetricFamily`` messages, each preceded by its length as a varint. The messages are
those of Prometheus' own copy of ``metrics.proto``
(https://github.com/prometheus/prometheus/blob/main/prompb/io/prometheus/client/metrics.proto);
the field numbers used here are listed beside the writers.

Written by hand rather than with the ``protobuf`` package: the encoder needs seven small message
types and three wire types (varint, 64-bit, length-delimited), which is less code than the
generated module it would need, adds no dependency (``protobuf`` is a large one, with a C
extension per platform) and lets the native buckets go straight from the store's dicts.

Every family of the registry is written, as the text exposition writes it: counters, gauges,
histograms (classic buckets always, native buckets where the store kept them), summaries, and
anything else (info, stateset, enum, unknown) as gauges or untyped samples, so a Prometheus that
switches to this format loses no series. A counter's ``_created`` sample goes into the
message's ``created_timestamp``, as client_golang writes it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample, Timestamp

from .families import (
    HISTOGRAMS,
    IN_PROGRESS_HELP,
    OTEL_HISTOGRAMS,
    REQUESTS_HELP,
    NativeHistogramFamily,
    StoredSeries,
    latest_exemplars,
    native_key,
    otel_method,
)
from .native import NativeSnapshot, merge_native
from .protobuf_scrape import RenderedBytes, end_protobuf_context, protobuf_context

__all__ = ["CONTENT_TYPE", "accepts_protobuf", "encode_protobuf", "native_histogram",
           "request_protobuf"]

CONTENT_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                "encoding=delimited")

# MetricType
_COUNTER, _GAUGE, _SUMMARY, _UNTYPED, _HISTOGRAM, _GAUGE_HISTOGRAM = range(6)
_double = struct.Struct("<d").pack


def accepts_protobuf(accept: str) -> bool:
    """Whether an ``Accept`` header prefers the delimited protobuf format: it names it (with
    ``proto=io.prometheus.client.MetricFamily`` and ``encoding=delimited``) at a quality no
    lower than any other type it names. Prometheus with native histograms on asks for it first;
    without, it never names it, and every other client gets the text formats as before."""
    best_other = 0.0
    protobuf = 0.0
    for entry in accept.split(","):
        media, *params = entry.split(";")
        media = media.strip().lower()
        if not media:
            continue
        q = 1.0
        proto = encoding = ""
        for param in params:
            name, _, value = param.partition("=")
            name = name.strip().lower()
            value = value.strip().strip('"')
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
            elif name == "proto":
                proto = value
            elif name == "encoding":
                encoding = value
        if (media == "application/vnd.google.protobuf"
                and proto == "io.prometheus.client.MetricFamily" and encoding == "delimited"):
            protobuf = max(protobuf, q)
        else:
            best_other = max(best_other, q)
    return protobuf > 0.0 and protobuf >= best_other


# -- the wire format ------------------------------------------------------------------------------
def _varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63) if value >= 0 else ((-value) << 1) - 1


def _bytes(out: bytearray, field: int, payload: bytes | bytearray) -> None:
    _varint(out, (field << 3) | 2)
    _varint(out, len(payload))
    out += payload


def _string(out: bytearray, field: int, value: str) -> None:
    # A lone surrogate (a route template is the app's text) would fail to encode and take the
    # whole scrape down; replaced, it is one odd character in one label.
    _bytes(out, field, value.encode("utf-8", "replace"))


def _fixed(out: bytearray, field: int, value: float) -> None:
    out.append((field << 3) | 1)
    out += _double(value)


def _uint(out: bytearray, field: int, value: int) -> None:
    out.append(field << 3)
    _varint(out, value)


def _count(value: float) -> int:
    # Counts are whole numbers of observations; a float one from a custom collector is rounded.
    return int(value) if math.isfinite(value) and value > 0 else 0


# -- the messages ---------------------------------------------------------------------------------
def _labels(out: bytearray, labels: dict[str, str], skip: str = "") -> None:
    # Metric.label = 1, LabelPair {name = 1, value = 2}; sorted, as Prometheus' parser expects.
    for name in sorted(labels):
        if name == skip:
            continue
        pair = bytearray()
        _string(pair, 1, name)
        _string(pair, 2, labels[name])
        _bytes(out, 1, pair)


def _timestamp(seconds: float) -> bytearray:
    # google.protobuf.Timestamp {seconds = 1 (int64), nanos = 2 (int32)}
    whole = math.floor(seconds)
    out = bytearray()
    _uint(out, 1, whole)
    nanos = int(round((seconds - whole) * 1e9))
    if nanos:
        _uint(out, 2, min(nanos, 999_999_999))
    return out


def _exemplar(exemplar: Exemplar) -> bytearray:
    # Exemplar {label = 1, value = 2, timestamp = 3}
    out = bytearray()
    _labels(out, dict(exemplar.labels))
    _fixed(out, 2, exemplar.value)
    if exemplar.timestamp is not None:
        _bytes(out, 3, _timestamp(float(exemplar.timestamp)))
    return out


def native_histogram(out: bytearray, native: NativeSnapshot) -> None:
    """The native fields of a Histogram message: schema = 5 (sint32), zero_threshold = 6,
    zero_count = 7, positive_span = 12 (BucketSpan {offset = 1 sint32, length = 2}),
    positive_delta = 13 (packed sint64: each count minus the previous bucket's)."""
    out.append(5 << 3)
    _varint(out, _zigzag(native.schema))
    _fixed(out, 6, native.zero_threshold)
    if native.zero_count:
        _uint(out, 7, native.zero_count)
    indexes = sorted(native.counts)
    if not indexes:
        # A no-op span: with a zero threshold of 0 and nothing observed, a native histogram
        # would otherwise read as a classic one (the proto's own advice).
        _bytes(out, 12, b"")
        return
    # Runs of consecutive indexes are spans; a span's offset is its gap from the previous
    # span's end (the first one's: its first index).
    spans: list[tuple[int, int]] = []
    first = last = indexes[0]
    for index in indexes[1:]:
        if index != last + 1:
            spans.append((first, last - first + 1))
            first = index
        last = index
    spans.append((first, last - first + 1))
    end = 0
    for at, (first, length) in enumerate(spans):
        span = bytearray()
        gap = first if at == 0 else first - end
        if gap:
            span.append(1 << 3)
            _varint(span, _zigzag(gap))
        span.append(2 << 3)
        _varint(span, length)
        _bytes(out, 12, span)
        end = first + length
    deltas = bytearray()
    previous_count = 0
    for index in indexes:
        count = native.counts[index]
        _varint(deltas, _zigzag(count - previous_count))
        previous_count = count
    _bytes(out, 13, deltas)


def _histogram(samples: Sequence[Sample], name: str, native: NativeSnapshot | None,
               ) -> bytearray:
    # Histogram {sample_count = 1, sample_sum = 2, bucket = 3, created_timestamp = 15, the native
    # fields}; Bucket {cumulative_count = 1, upper_bound = 2, exemplar = 3}. The +Inf bucket is
    # left out (the count is it), as client_golang does.
    count = 0.0
    total = 0.0
    created: float | None = None
    buckets = bytearray()
    for sample in samples:
        suffix = sample.name[len(name):]
        if suffix == "_bucket":
            bound = float(sample.labels["le"])
            if bound == math.inf:
                count = max(count, sample.value)
                continue
            bucket = bytearray()
            _uint(bucket, 1, _count(sample.value))
            _fixed(bucket, 2, bound)
            if sample.exemplar is not None:
                _bytes(bucket, 3, _exemplar(sample.exemplar))
            _bytes(buckets, 3, bucket)
        elif suffix in ("_count", "_gcount"):
            count = sample.value
        elif suffix in ("_sum", "_gsum"):
            total = sample.value
        elif suffix == "_created":
            created = sample.value
    out = bytearray()
    _uint(out, 1, _count(count))
    _fixed(out, 2, total)
    out += buckets
    if native is not None:
        native_histogram(out, native)
    if created is not None:
        _bytes(out, 15, _timestamp(created))
    return out


def _summary(samples: Sequence[Sample], name: str) -> bytearray:
    # Summary {sample_count = 1, sample_sum = 2, quantile = 3 {quantile = 1, value = 2},
    # created_timestamp = 4}
    out = bytearray()
    quantiles = bytearray()
    created: float | None = None
    for sample in samples:
        suffix = sample.name[len(name):]
        if suffix == "_count":
            _uint(out, 1, _count(sample.value))
        elif suffix == "_sum":
            _fixed(out, 2, sample.value)
        elif suffix == "_created":
            created = sample.value
        elif suffix == "" and "quantile" in sample.labels:
            quantile = bytearray()
            _fixed(quantile, 1, float(sample.labels["quantile"]))
            _fixed(quantile, 2, sample.value)
            _bytes(quantiles, 3, quantile)
    out += quantiles
    if created is not None:
        _bytes(out, 4, _timestamp(created))
    return out


def _grouped(samples: Iterable[Sample], drop: str) -> dict[tuple[tuple[str, str], ...],
                                                           list[Sample]]:
    groups: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for sample in samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != drop))
        groups.setdefault(key, []).append(sample)
    return groups


def _family(out: bytearray, name: str, doc: str, typ: int, metrics: list[bytearray],
            unit: str = "") -> None:
    # MetricFamily {name = 1, help = 2, type = 3, metric = 4, unit = 5}, length-delimited.
    message = bytearray()
    _string(message, 1, name)
    if doc:
        _string(message, 2, doc)
    if typ:
        _uint(message, 3, typ)
    for metric in metrics:
        _bytes(message, 4, metric)
    if unit:
        _string(message, 5, unit)
    _varint(out, len(message))
    out += message


def _metric(labels: dict[str, str], field: int, body: bytearray,
            timestamp: float | Timestamp | None, skip: str = "") -> bytearray:
    # Metric {label = 1, gauge = 2, counter = 3, summary = 4, untyped = 5, histogram = 7,
    # timestamp_ms = 6}
    metric = bytearray()
    _labels(metric, labels, skip)
    _bytes(metric, field, body)
    if timestamp is not None:
        _uint(metric, 6, int(float(timestamp) * 1000))
    return metric


def _write(out: bytearray, family: Metric) -> None:
    name, typ, doc = family.name, family.type, family.documentation
    if typ == "counter":
        created: dict[tuple[tuple[str, str], ...], float] = {}
        for sample in family.samples:
            if sample.name.endswith("_created"):
                created[tuple(sorted(sample.labels.items()))] = sample.value
        metrics = []
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            body = bytearray()
            _fixed(body, 1, sample.value)
            if sample.exemplar is not None:
                _bytes(body, 2, _exemplar(sample.exemplar))
            when = created.get(tuple(sorted(sample.labels.items())))
            if when is not None:
                _bytes(body, 3, _timestamp(when))
            metrics.append(_metric(sample.labels, 3, body, sample.timestamp))
        _family(out, f"{name}_total", doc, _COUNTER, metrics)
    elif typ in ("histogram", "gaugehistogram"):
        natives = family.native if isinstance(family, NativeHistogramFamily) else {}
        metrics = []
        for key, samples in _grouped(family.samples, "le").items():
            body = _histogram(samples, name, natives.get(native_key(dict(key))))
            metrics.append(_metric(dict(key), 7, body, samples[0].timestamp))
        _family(out, name, doc, _HISTOGRAM if typ == "histogram" else _GAUGE_HISTOGRAM,
                metrics)
    elif typ == "summary" and all(s.name != name or "quantile" in s.labels
                                  for s in family.samples):
        metrics = []
        for key, samples in _grouped(family.samples, "quantile").items():
            metrics.append(_metric(dict(key), 4, _summary(samples, name),
                                   samples[0].timestamp))
        _family(out, name, doc, _SUMMARY, metrics)
    else:
        # gauge, info, stateset, enum, unknown: one family per sample name, gauges where the
        # text format says gauge (info and stateset are written as gauges there too).
        by_name: dict[str, list[bytearray]] = {}
        gauge = typ in ("gauge", "info", "stateset", "enum")
        for sample in family.samples:
            body = bytearray()
            _fixed(body, 1, sample.value)
            by_name.setdefault(sample.name, []).append(
                _metric(sample.labels, 2 if gauge else 5, body, sample.timestamp))
        for sample_name, metrics in by_name.items():
            _family(out, sample_name, doc, _GAUGE if gauge else _UNTYPED, metrics)


def encode_protobuf(registry: Collector) -> bytes:
    """Every family of ``registry`` as delimited ``MetricFamily`` messages; the request
    collectors write theirs directly (:func:`request_protobuf`), in registry order."""
    out = bytearray()
    token = protobuf_context()
    try:
        for family in registry.collect():
            if isinstance(family, RenderedBytes):
                out += family.data
            elif family.samples:
                _write(out, family)
    finally:
        end_protobuf_context(token)
    return bytes(out)


# -- the request families, written straight from the stored series --------------------------------
# What request_families gives, as the messages _write would make of it, without its Sample
# objects: per bucket a few byte concatenations on parts made once per family.
_VARINTS: list[bytes] = []
for _n in range(1 << 14):
    _buffer = bytearray()
    _varint(_buffer, _n)
    _VARINTS.append(bytes(_buffer))
del _n, _buffer


def _v(value: int) -> bytes:
    if value < 16384:
        return _VARINTS[value]
    out = bytearray()
    _varint(out, value)
    return bytes(out)


def _pairs(labels: Iterable[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in sorted(labels):
        if value == "" and name == "error_type":
            continue  # absent rather than empty, as the families have it
        pair = bytearray()
        _string(pair, 1, name)
        _string(pair, 2, value)
        _bytes(out, 1, pair)
    return bytes(out)


def _family_bytes(name: str, doc: str, typ: int, metrics: list[bytes]) -> bytes:
    head = bytearray()
    _string(head, 1, name)
    _string(head, 2, doc)
    if typ:
        _uint(head, 3, typ)
    body = b"".join([bytes(head), *(b"\x22" + _v(len(m)) + m for m in metrics)])
    return _v(len(body)) + body


def _histogram_bytes(labels: bytes, bounds: Sequence[bytes], per_bucket: Sequence[float],
                     total: float, native: NativeSnapshot | None,
                     kept: Sequence[tuple[dict[str, str], float, float] | None] | None) -> bytes:
    parts = [b"\x08" + _v(_count(sum(per_bucket))), b"\x11" + _double(total)]
    running = 0
    last = len(bounds)
    for i, count in enumerate(per_bucket):
        if i == last:
            break  # the +Inf bucket: the count is it
        running += int(count)
        bucket = b"\x08" + _v(running) + bounds[i]
        if kept is not None and kept[i] is not None:
            found = kept[i]
            assert found is not None
            bucket += b"\x1a" + _message(_exemplar(Exemplar(found[0], found[1], found[2])))
        parts.append(b"\x1a" + _v(len(bucket)) + bucket)
    if native is not None:
        tail = bytearray()
        native_histogram(tail, native)
        parts.append(bytes(tail))
    histogram = b"".join(parts)
    return labels + b"\x3a" + _v(len(histogram)) + histogram


def _message(body: bytes | bytearray) -> bytes:
    return _v(len(body)) + bytes(body)


def _value_metric(labels: bytes, field: int, value: float) -> bytes:
    return labels + bytes(((field << 3) | 2, 9, 9)) + _double(value)


def request_protobuf(
    series: Sequence[StoredSeries], in_progress: Sequence[tuple[str, float]], *, naming: str,
    prefix: str, duration_bounds: Sequence[float], size_bounds: Sequence[float],
    constant_labels: Sequence[tuple[str, str]] = (), native_limit: int = 160,
) -> bytes:
    """What :func:`~asgi_monitor.store.families.request_families` gives for ``series``, as
    delimited protobuf messages (what :func:`encode_protobuf` writes of those families)."""
    constants = tuple(constant_labels)
    out: list[bytes] = []
    time_bounds = [b"\x11" + _double(float(b)) for b in duration_bounds]
    byte_bounds = [b"\x11" + _double(float(b)) for b in size_bounds]
    bounds = (time_bounds, time_bounds, byte_bounds, byte_bounds)
    classic = naming != "otel"
    if classic:
        counts: dict[tuple[str, str, str], float] = {}
        for row in series:
            key = (row.method, row.route, str(row.status))
            counts[key] = counts.get(key, 0.0) + row.requests
        out.append(_family_bytes(f"{prefix}http_requests_total", REQUESTS_HELP, _COUNTER, [
            _value_metric(_pairs((("method", m), ("route", r), ("status", s), *constants)), 3,
                          count) for (m, r, s), count in counts.items()]))
    by_route: dict[tuple[str, str], list[StoredSeries]] = {}
    for row in series:
        by_route.setdefault((row.method, row.route), []).append(row)
    route_labels = {pair: _pairs((("method", pair[0]), ("route", pair[1]), *constants))
                    for pair in by_route}
    otel_labels: list[bytes] = []
    if naming != "classic":
        for row in series:
            status = str(row.status)
            otel_labels.append(_pairs((
                ("http_request_method", otel_method(row.method)), ("http_route", row.route),
                ("http_response_status_code", status), ("url_scheme", row.scheme),
                ("error_type", status if row.status >= 500 else ""), *constants)))
    for index, (name, doc, _) in enumerate(HISTOGRAMS):
        if classic or index not in OTEL_HISTOGRAMS:
            metrics = []
            for pair, group in by_route.items():
                per_bucket, total = _summed_rows(group, index)
                native = (merge_native((row.native[index] if row.native else None
                                        for row in group), native_limit) if index < 2 else None)
                kept = (latest_exemplars(row.exemplars for row in group) if index == 0
                        else None)
                metrics.append(_histogram_bytes(route_labels[pair], bounds[index], per_bucket,
                                                total, native, kept))
            out.append(_family_bytes(f"{prefix}{name}", doc, _HISTOGRAM, metrics))
        if naming != "classic" and index in OTEL_HISTOGRAMS:
            otel_name, otel_doc = OTEL_HISTOGRAMS[index]
            metrics = []
            for row, labels in zip(series, otel_labels, strict=True):
                per_bucket, total = row.histograms[index]
                native = row.native[index] if row.native is not None and index < 2 else None
                metrics.append(_histogram_bytes(labels, bounds[index], per_bucket, total,
                                                native, row.exemplars if index == 0 else None))
            out.append(_family_bytes(f"{prefix}{otel_name}", otel_doc, _HISTOGRAM, metrics))
    if classic:
        out.append(_family_bytes(f"{prefix}http_requests_in_progress", IN_PROGRESS_HELP, _GAUGE, [
            _value_metric(_pairs((("method", method), *constants)), 2, value)
            for method, value in in_progress]))
    if naming != "classic":
        out.append(_family_bytes(
            f"{prefix}http_server_active_requests", "Number of active HTTP server requests.",
            _GAUGE, [_value_metric(_pairs((("http_request_method", otel_method(method)),
                                           *constants)), 2, value)
                     for method, value in in_progress]))
    return b"".join(out)


def _summed_rows(group: list[StoredSeries], index: int) -> tuple[Sequence[float], float]:
    first, total = group[0].histograms[index]
    if len(group) == 1:
        return first, total
    summed = list(first)
    for row in group[1:]:
        per_bucket, row_sum = row.histograms[index]
        for i, count in enumerate(per_bucket):
            summed[i] += count
        total += row_sum
    return summed, total
