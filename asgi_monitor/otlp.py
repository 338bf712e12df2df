"""OTLP export: the sampler's readings pushed to an OpenTelemetry collector, off the hot path.

An optional extra (``pip install 'asgi-monitoring[otlp]'``): the OpenTelemetry SDK's data
classes and its OTLP/HTTP exporter load when the export starts, never on
``import asgi_monitor``. Every ``interval`` the export reads the same typed snapshot the alert
rules read (:class:`~asgi_monitor.sampling.inputs.SampleInputs`), turns it into OTLP metrics
named after OpenTelemetry's HTTP semantic conventions, and sends them from a worker thread, so
neither a request nor the event loop waits on the network.

Temporality is cumulative, as the snapshot is (totals since the store was made): a collector
converting to Prometheus gets the values ``/api/metrics`` shows. ``service.name`` and
``service.instance.id`` are the resource attributes, the same service and instance the alerts
carry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .sampling.inputs import RequestSnapshot, SampleInputs

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData

__all__ = ["OTLPExport", "metrics_data"]

SCOPE = "asgi_monitor"


def _method(method: str) -> str:
    # The conventions' value for a method outside the known set.
    return "_OTHER" if method == "OTHER" else method


def metrics_data(inputs: SampleInputs, *, resource: Mapping[str, str], start_ns: int,
                 now_ns: int) -> MetricsData:
    """``inputs`` as OTLP metrics (the SDK's data classes, which its exporters encode)."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    cumulative = AggregationTemporality.CUMULATIVE
    requests: RequestSnapshot = inputs.requests
    durations = []
    for latency in requests.latency:
        bounds = [bound for bound, _ in latency.buckets[:-1]]
        counts, previous = [], 0.0
        for _, running in latency.buckets:
            counts.append(int(running - previous))
            previous = running
        durations.append(HistogramDataPoint(
            attributes={"http.request.method": _method(latency.method),
                        "http.route": latency.route, "url.scheme": "http"},
            start_time_unix_nano=start_ns, time_unix_nano=now_ns, count=int(latency.count),
            sum=latency.total, bucket_counts=counts, explicit_bounds=bounds,
            # Not kept by the store; OTLP's min and max are optional.
            min=None, max=None))  # type: ignore[arg-type]
    counted = []
    for method, route, status, count in requests.series:
        attributes: dict[str, Any] = {
            "http.request.method": _method(method), "http.route": route,
            "http.response.status_code": status, "url.scheme": "http"}
        if status >= 500:
            attributes["error.type"] = str(status)
        counted.append(NumberDataPoint(attributes=attributes, start_time_unix_nano=start_ns,
                                       time_unix_nano=now_ns, value=int(count)))
    active = [NumberDataPoint(attributes={}, start_time_unix_nano=start_ns,
                              time_unix_nano=now_ns, value=int(requests.in_progress))]
    metrics = [
        Metric("http.server.request.duration", "Duration of HTTP server requests.", "s",
               Histogram(durations, cumulative)),
        # Not a convention (which counts with the histogram's count): the histograms are kept
        # per route, so the status lives here.
        Metric("http.server.requests", "HTTP server requests by method, route and status.",
               "{request}", Sum(counted, cumulative, is_monotonic=True)),
        Metric("http.server.active_requests", "Number of active HTTP server requests.",
               "{request}", Sum(active, cumulative, is_monotonic=False)),
    ]
    return MetricsData([ResourceMetrics(
        Resource.create(dict(resource)),
        [ScopeMetrics(InstrumentationScope(SCOPE), metrics, "")], "")])


class OTLPExport:
    """Sends ``read()`` to ``endpoint`` (OTLP/HTTP, protobuf) every ``interval`` seconds.

    ``identity()`` gives the ``service`` and ``instance`` labels (read at each export: the app's
    title may name the service only after the monitor is built)."""

    def __init__(self, *, endpoint: str, read: Callable[[], SampleInputs],
                 identity: Callable[[], dict[str, str]], interval: float,
                 on_error: Callable[[str, BaseException], None],
                 timeout: float = 10.0, clock: Callable[[], int] = time.time_ns) -> None:
        self._endpoint = endpoint
        self._read = read
        self._identity = identity
        self._interval = interval
        self._on_error = on_error
        self._timeout = timeout
        self._clock = clock
        # Cumulative points start when counting started: the store is made with the monitor.
        self._start_ns = clock()

    def exporter(self) -> Any:
        # The extra's exporter; absent where only the SDK is installed, as in the dev tools.
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPMetricExporter,
        )

        return OTLPMetricExporter(endpoint=self._endpoint, timeout=self._timeout)

    def data(self) -> MetricsData:
        labels = self._identity()
        return metrics_data(self._read(), resource={"service.name": labels["service"],
                                                    "service.instance.id": labels["instance"]},
                            start_ns=self._start_ns, now_ns=self._clock())

    async def run_forever(self) -> None:
        exporter = self.exporter()
        try:
            while True:
                await self.export_once(exporter)
                await asyncio.sleep(self._interval)
        finally:
            exporter.shutdown()

    async def export_once(self, exporter: Any) -> bool:
        """One export; a failure is counted as an internal error, never raised."""
        try:
            # Read on the loop (a snapshot is a few list copies), send from a thread.
            data = self.data()
            result = await asyncio.to_thread(exporter.export, data,
                                             timeout_millis=self._timeout * 1000)
        except Exception as exc:
            self._on_error("otlp", exc)
            return False
        if result.name != "SUCCESS":
            self._on_error("otlp", RuntimeError(f"OTLP export to {self._endpoint} failed"))
            return False
        return True
