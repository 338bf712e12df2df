"""Metric naming: our classic request families, renamed at scrape time to OpenTelemetry's HTTP
semantic conventions (https://opentelemetry.io/docs/specs/semconv/http/http-metrics/) when
``MONITORING_METRIC_NAMES`` asks for them.

Renaming happens on the families the store already builds on scrape, so the hot path and the
stored series are the same in every mode, and a value is equal under either name.

Two deviations from the conventions, both because the store keeps its histograms per
(method, route), not per status (a status on every histogram would multiply the histogram
series by the statuses a route answers, and change what a request writes):

- ``http_server_request_duration_seconds`` carries no ``http_response_status_code`` nor
  ``error_type``; those are on ``http_server_requests_total``, a counter the conventions do not
  define (they count requests with the histogram's ``_count``), so that error ratios stay
  possible under the new names.
- ``url_scheme`` is a constant (:data:`URL_SCHEME`): the store does not keep the scheme, and
  behind the TLS-terminating proxy most deployments use, the scope's scheme is ``http`` anyway.

Families with no counterpart in the conventions (time to first byte, WebSocket) keep their
classic names and labels in every mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["OTEL_NAMES", "URL_SCHEME", "NamedCollector", "RequestNames", "metric_name",
           "otel_families", "request_names"]

URL_SCHEME = "http"
# classic family -> its OpenTelemetry name (without a namespace; counters without `_total`).
OTEL_NAMES = {
    "http_requests": "http_server_requests",
    "http_request_duration_seconds": "http_server_request_duration_seconds",
    "http_request_size_bytes": "http_server_request_body_size_bytes",
    "http_response_size_bytes": "http_server_response_body_size_bytes",
    "http_requests_in_progress": "http_server_active_requests",
}
_HELP = {
    "http_server_requests": "HTTP server requests by method, route and status (not a semantic "
                            "convention: the duration histogram carries no status here).",
    "http_server_request_duration_seconds": "Duration of HTTP server requests.",
    "http_server_request_body_size_bytes": "Size of HTTP server request bodies.",
    "http_server_response_body_size_bytes": "Size of HTTP server response bodies.",
    "http_server_active_requests": "Number of active HTTP server requests.",
}


def metric_name(classic: str, naming: str) -> str:
    """The name generated rules and dashboards query for ``classic`` (a family or a sample name
    such as ``http_requests_total`` or ``http_request_duration_seconds_bucket``) under
    ``naming``; ``both`` queries the classic names, which are still exposed."""
    if naming != "otel":
        return classic
    for old, new in OTEL_NAMES.items():
        if classic == old or (classic.startswith(old) and classic[len(old):] in _SUFFIXES):
            return new + classic[len(old):]
    return classic


_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


@dataclass(frozen=True)
class RequestNames:
    """What generated rules and dashboards query: sample and label names of the request series
    under one naming (without a namespace)."""

    requests: str
    duration: str
    in_progress: str
    method: str
    route: str
    status: str


def request_names(naming: str) -> RequestNames:
    """The names to query under ``naming``; ``both`` queries the classic ones."""
    if naming == "otel":
        return RequestNames("http_server_requests_total", "http_server_request_duration_seconds",
                            "http_server_active_requests", "http_request_method", "http_route",
                            "http_response_status_code")
    return RequestNames("http_requests_total", "http_request_duration_seconds",
                        "http_requests_in_progress", "method", "route", "status")


def _otel_labels(labels: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in labels.items():
        if name == "method":
            # The conventions' value for a method outside the known set is `_OTHER`.
            out["http_request_method"] = "_OTHER" if value == "OTHER" else value
        elif name == "route":
            out["http_route"] = value
        elif name == "status":
            out["http_response_status_code"] = value
            # The status code as a string for a server error; empty (absent) otherwise.
            out["error_type"] = value if value.startswith("5") else ""
        else:
            out[name] = value
    if "http_request_method" in out:
        out["url_scheme"] = URL_SCHEME
    return out


def otel_families(families: Iterable[Metric], prefix: str = "") -> Iterator[Metric]:
    """``families`` with the request families renamed and relabelled to the conventions; the
    others unchanged."""
    renames = {f"{prefix}{old}": f"{prefix}{new}" for old, new in OTEL_NAMES.items()}
    for family in families:
        new = renames.get(family.name)
        if new is None:
            yield family
            continue
        renamed = Metric(new, _HELP[new[len(prefix):]], family.type)
        renamed.samples = [
            Sample(new + s.name[len(family.name):], _otel_labels(s.labels), s.value,
                   s.timestamp, s.exemplar)
            for s in family.samples]
        yield renamed


class NamedCollector(Collector):
    """Request families (``collect()``: the store's, or the merged ones of several workers)
    under the names ``naming`` chooses."""

    def __init__(self, collect: Callable[[], Iterable[Metric]], *, naming: str, prefix: str,
                 describe: Callable[[], Iterable[Metric]] | None = None) -> None:
        self._collect = collect
        self._describe = describe
        self._naming = naming
        self._prefix = prefix

    def describe(self) -> Iterator[Metric]:
        # Declaring the names lets the registry reject a custom metric that would clash.
        return self._named(self._describe()) if self._describe is not None else iter(())

    def collect(self) -> Iterator[Metric]:
        return self._named(self._collect())

    def _named(self, families: Iterable[Metric]) -> Iterator[Metric]:
        if self._naming == "classic":
            yield from families
            return
        families = list(families)
        if self._naming == "both":
            yield from families
            keep = {f"{self._prefix}{old}" for old in OTEL_NAMES}
            yield from otel_families([f for f in families if f.name in keep], self._prefix)
        else:
            yield from otel_families(families, self._prefix)
