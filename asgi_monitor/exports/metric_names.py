"""Metric naming for what queries the request series: generated rules, Grafana, the SLO rules.

``MONITORING_METRIC_NAMES`` chooses classic names, OpenTelemetry's HTTP semantic conventions
(https://opentelemetry.io/docs/specs/semconv/http/http-metrics/), or both during a migration.
The exposition itself is :func:`asgi_monitor.store.families.request_families`; this module
says which names and labels a query uses under each naming.

Under OpenTelemetry names there is no request counter, as in the conventions: the request count
is the duration histogram's ``_count``, labelled with ``http_response_status_code``.
Families with no counterpart in the conventions (time to first byte, WebSocket) keep their
classic names and labels in every mode; the stream families take names shaped as the request
families' (``http_server_stream_duration_seconds``, ``http_server_active_streams``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OTEL_NAMES", "RequestNames", "metric_name", "request_names"]

# classic family -> its OpenTelemetry name (without a namespace).
OTEL_NAMES = {
    "http_request_duration_seconds": "http_server_request_duration_seconds",
    "http_request_size_bytes": "http_server_request_body_size_bytes",
    "http_response_size_bytes": "http_server_response_body_size_bytes",
    "http_requests_in_progress": "http_server_active_requests",
    # Streams (asgi_monitor.store.families): named after the request families, the conventions
    # having no stream metric.
    "http_stream_duration_seconds": "http_server_stream_duration_seconds",
    "http_streams_open": "http_server_active_streams",
}
# The conventions count requests with the duration histogram.
_REQUEST_COUNT = {"http_requests": "http_server_request_duration_seconds_count",
                  "http_requests_total": "http_server_request_duration_seconds_count"}


def metric_name(classic: str, naming: str) -> str:
    """The name generated rules and dashboards query for ``classic`` (a family or a sample name
    such as ``http_requests_total`` or ``http_request_duration_seconds_bucket``) under
    ``naming``; ``both`` queries the classic names, which are still exposed."""
    if naming != "otel":
        return classic
    if classic in _REQUEST_COUNT:
        return _REQUEST_COUNT[classic]
    for old, new in OTEL_NAMES.items():
        if classic == old or (classic.startswith(old) and classic[len(old):] in _SUFFIXES):
            return new + classic[len(old):]
    return classic


_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


@dataclass(frozen=True)
class RequestNames:
    """What generated rules and dashboards query: sample and label names of the request series
    under one naming (without a namespace)."""

    requests: str  # a sample counting requests, labelled with method, route and status
    duration: str
    in_progress: str
    method: str
    route: str
    status: str


def request_names(naming: str) -> RequestNames:
    """The names to query under ``naming``; ``both`` queries the classic ones."""
    if naming == "otel":
        return RequestNames("http_server_request_duration_seconds_count",
                            "http_server_request_duration_seconds",
                            "http_server_active_requests", "http_request_method", "http_route",
                            "http_response_status_code")
    return RequestNames("http_requests_total", "http_request_duration_seconds",
                        "http_requests_in_progress", "method", "route", "status")
