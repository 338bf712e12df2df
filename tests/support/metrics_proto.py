"""Prometheus' ``metrics.proto`` (its own copy, prompb/io/prometheus/client/metrics.proto) built
with the ``protobuf`` package, so the tests decode the hand-written protobuf exposition with an
independent decoder: ``decode(body)`` gives the ``MetricFamily`` messages of a delimited scrape.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
# message -> (field, number, type, label, message type)
_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "LabelPair": [("name", 1, _F.TYPE_STRING, _OPT, ""), ("value", 2, _F.TYPE_STRING, _OPT, "")],
    "Gauge": [("value", 1, _F.TYPE_DOUBLE, _OPT, "")],
    "Timestamp": [("seconds", 1, _F.TYPE_INT64, _OPT, ""), ("nanos", 2, _F.TYPE_INT32, _OPT, "")],
    "Exemplar": [("label", 1, _F.TYPE_MESSAGE, _REP, "LabelPair"),
                 ("value", 2, _F.TYPE_DOUBLE, _OPT, ""),
                 ("timestamp", 3, _F.TYPE_MESSAGE, _OPT, "Timestamp")],
    "Counter": [("value", 1, _F.TYPE_DOUBLE, _OPT, ""),
                ("exemplar", 2, _F.TYPE_MESSAGE, _OPT, "Exemplar"),
                ("created_timestamp", 3, _F.TYPE_MESSAGE, _OPT, "Timestamp")],
    "Quantile": [("quantile", 1, _F.TYPE_DOUBLE, _OPT, ""), ("value", 2, _F.TYPE_DOUBLE, _OPT, "")],
    "Summary": [("sample_count", 1, _F.TYPE_UINT64, _OPT, ""),
                ("sample_sum", 2, _F.TYPE_DOUBLE, _OPT, ""),
                ("quantile", 3, _F.TYPE_MESSAGE, _REP, "Quantile"),
                ("created_timestamp", 4, _F.TYPE_MESSAGE, _OPT, "Timestamp")],
    "Untyped": [("value", 1, _F.TYPE_DOUBLE, _OPT, "")],
    "Bucket": [("cumulative_count", 1, _F.TYPE_UINT64, _OPT, ""),
               ("cumulative_count_float", 4, _F.TYPE_DOUBLE, _OPT, ""),
               ("upper_bound", 2, _F.TYPE_DOUBLE, _OPT, ""),
               ("exemplar", 3, _F.TYPE_MESSAGE, _OPT, "Exemplar")],
    "BucketSpan": [("offset", 1, _F.TYPE_SINT32, _OPT, ""),
                   ("length", 2, _F.TYPE_UINT32, _OPT, "")],
    "Histogram": [("sample_count", 1, _F.TYPE_UINT64, _OPT, ""),
                  ("sample_count_float", 4, _F.TYPE_DOUBLE, _OPT, ""),
                  ("sample_sum", 2, _F.TYPE_DOUBLE, _OPT, ""),
                  ("bucket", 3, _F.TYPE_MESSAGE, _REP, "Bucket"),
                  ("created_timestamp", 15, _F.TYPE_MESSAGE, _OPT, "Timestamp"),
                  ("schema", 5, _F.TYPE_SINT32, _OPT, ""),
                  ("zero_threshold", 6, _F.TYPE_DOUBLE, _OPT, ""),
                  ("zero_count", 7, _F.TYPE_UINT64, _OPT, ""),
                  ("zero_count_float", 8, _F.TYPE_DOUBLE, _OPT, ""),
                  ("negative_span", 9, _F.TYPE_MESSAGE, _REP, "BucketSpan"),
                  ("negative_delta", 10, _F.TYPE_SINT64, _REP, ""),
                  ("negative_count", 11, _F.TYPE_DOUBLE, _REP, ""),
                  ("positive_span", 12, _F.TYPE_MESSAGE, _REP, "BucketSpan"),
                  ("positive_delta", 13, _F.TYPE_SINT64, _REP, ""),
                  ("positive_count", 14, _F.TYPE_DOUBLE, _REP, ""),
                  ("exemplars", 16, _F.TYPE_MESSAGE, _REP, "Exemplar")],
    "Metric": [("label", 1, _F.TYPE_MESSAGE, _REP, "LabelPair"),
               ("gauge", 2, _F.TYPE_MESSAGE, _OPT, "Gauge"),
               ("counter", 3, _F.TYPE_MESSAGE, _OPT, "Counter"),
               ("summary", 4, _F.TYPE_MESSAGE, _OPT, "Summary"),
               ("untyped", 5, _F.TYPE_MESSAGE, _OPT, "Untyped"),
               ("histogram", 7, _F.TYPE_MESSAGE, _OPT, "Histogram"),
               ("timestamp_ms", 6, _F.TYPE_INT64, _OPT, "")],
    "MetricFamily": [("name", 1, _F.TYPE_STRING, _OPT, ""), ("help", 2, _F.TYPE_STRING, _OPT, ""),
                     ("type", 3, _F.TYPE_INT32, _OPT, ""),
                     ("metric", 4, _F.TYPE_MESSAGE, _REP, "Metric"),
                     ("unit", 5, _F.TYPE_STRING, _OPT, "")],
}
_PACKAGE = "asgi_monitor_test.prometheus"
# MetricType, by number.
TYPES = ("COUNTER", "GAUGE", "SUMMARY", "UNTYPED", "HISTOGRAM", "GAUGE_HISTOGRAM")


def _build() -> Any:
    file = descriptor_pb2.FileDescriptorProto(name="asgi_monitor_test_metrics.proto",
                                              package=_PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        for field, number, typ, label, type_name in fields:
            added = message.field.add(name=field, number=number, type=typ, label=label)
            if type_name:
                added.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.MetricFamily"))


MetricFamily = _build()


def decode(body: bytes) -> list[Any]:
    """The ``MetricFamily`` messages of a delimited protobuf scrape."""
    families = []
    at = 0
    while at < len(body):
        length = shift = 0
        while True:
            byte = body[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        family = MetricFamily()
        family.ParseFromString(body[at:at + length])
        families.append(family)
        at += length
    return families


def native_buckets(histogram: Any) -> dict[int, int]:
    """The positive native buckets of a decoded Histogram: index -> count."""
    out: dict[int, int] = {}
    deltas = iter(histogram.positive_delta)
    index = 0
    count = 0
    for span in histogram.positive_span:
        # The first span's offset is its first index; the others', the gap from the last end.
        index += span.offset
        for _ in range(span.length):
            count += next(deltas)
            out[index] = count
            index += 1
    return out
