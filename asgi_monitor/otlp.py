"""OTLP export: the sampler's readings pushed to an OpenTelemetry collector, off the hot path.

An optional extra (``pip install 'asgi-monitoring[otlp]'``): the OpenTelemetry SDK's data
classes and its OTLP/HTTP exporter load when the export starts, never on
``import asgi_monitor``. Every ``interval`` the export reads the same typed snapshot the alert
rules read (:class:`~asgi_monitor.sampling.inputs.SampleInputs`: requests, database, cache,
logins, system resources) and the health checks' status, turns them into OTLP metrics (the
requests named after OpenTelemetry's HTTP semantic conventions), and sends them from a worker
thread, so neither a request nor the event loop waits on the network. Under several workers
only the alert-lock holder exports.

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

from .health.models import HealthStatus
from .sampling.inputs import RequestSnapshot, SampleInputs

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData

__all__ = ["OTLPExport", "metrics_data"]

SCOPE = "asgi_monitor"


def _method(method: str) -> str:
    # The conventions' value for a method outside the known set.
    return "_OTHER" if method == "OTHER" else method


def metrics_data(inputs: SampleInputs, *, resource: Mapping[str, str], start_ns: int,
                 now_ns: int, health: Mapping[str, str] | None = None) -> MetricsData:
    """``inputs`` (and ``health``: each check's status) as OTLP metrics (the SDK's data
    classes, which its exporters encode).

    Requests follow OpenTelemetry's HTTP semantic conventions, and system readings their
    utilization gauges (a ratio where ``/api/metrics`` says percent). Readings the conventions
    have no metric for are named under ``asgi_monitor.``, split as ``/api/metrics`` labels them
    (``db_queries_total{status}``, ``cache_operations_total{operation}``,
    ``user_logins_total{result}``, ``health_check_status{check, status}``).
    """
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
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

    def point(value: float, **attributes: Any) -> NumberDataPoint:
        return NumberDataPoint(attributes=attributes, start_time_unix_nano=start_ns,
                               time_unix_nano=now_ns, value=value)

    def counter(name: str, doc: str, unit: str, points: list[NumberDataPoint]) -> Metric:
        return Metric(name, doc, unit, Sum(points, cumulative, is_monotonic=True))

    def gauge(name: str, doc: str, unit: str, points: list[NumberDataPoint]) -> Metric:
        return Metric(name, doc, unit, Gauge(points))

    requests: RequestSnapshot = inputs.requests
    durations = []
    for latency in requests.latency:
        bounds = [bound for bound, _ in latency.buckets[:-1]]
        counts, previous = [], 0.0
        for _, running in latency.buckets:
            counts.append(int(running - previous))
            previous = running
        attributes: dict[str, Any] = {
            "http.request.method": _method(latency.method), "http.route": latency.route,
            "http.response.status_code": latency.status, "url.scheme": latency.scheme}
        if latency.status >= 500:
            attributes["error.type"] = str(latency.status)
        durations.append(HistogramDataPoint(
            attributes=attributes, start_time_unix_nano=start_ns, time_unix_nano=now_ns,
            count=int(latency.count), sum=latency.total, bucket_counts=counts,
            explicit_bounds=bounds,
            # Not kept by the store; OTLP's min and max are optional.
            min=None, max=None))  # type: ignore[arg-type]
    database, cache, users = inputs.database, inputs.cache, inputs.users
    metrics = [
        # Its count is the request count, by status: the conventions define no request counter.
        Metric("http.server.request.duration", "Duration of HTTP server requests.", "s",
               Histogram(durations, cumulative)),
        Metric("http.server.active_requests", "Number of active HTTP server requests.",
               "{request}", Sum([point(int(requests.in_progress))], cumulative,
                                is_monotonic=False)),
        counter("asgi_monitor.db.queries", "Database operations by status.", "{query}",
                [point(int(database.queries - database.errors), status="success"),
                 point(int(database.errors), status="error")]),
        counter("asgi_monitor.cache.lookups", "Cache lookups by outcome.", "{lookup}",
                [point(int(cache.hits), operation="hit"),
                 point(int(cache.misses), operation="miss")]),
        counter("asgi_monitor.user.logins", "Login attempts by result.", "{login}",
                [point(int(users.logins - users.failures), result="success"),
                 point(int(users.failures), result="failure")]),
    ]
    system = inputs.system
    if system is not None:
        if system.cpu_percent is not None:
            metrics.append(gauge("system.cpu.utilization", "System-wide CPU use.", "1",
                                 [point(system.cpu_percent / 100)]))
        if system.memory_percent is not None:
            metrics.append(gauge("system.memory.utilization", "System memory in use.", "1",
                                 [point(system.memory_percent / 100)]))
        if system.disk_percent:
            metrics.append(gauge(
                "system.filesystem.utilization", "Disk space in use per configured path.", "1",
                [point(used / 100, **{"system.filesystem.mountpoint": path})
                 for path, used in system.disk_percent]))
        if system.process_rss_bytes is not None:
            metrics.append(gauge("process.memory.usage", "Resident memory of this process.",
                                 "By", [point(int(system.process_rss_bytes))]))
    if health:
        metrics.append(gauge(
            "asgi_monitor.health.check.status",
            "1 for the check's current status, 0 for the others.", "1",
            [point(int(status == candidate.value), check=name, status=candidate.value)
             for name, status in health.items() for candidate in HealthStatus]))
    return MetricsData([ResourceMetrics(
        Resource.create(dict(resource)),
        [ScopeMetrics(InstrumentationScope(SCOPE), metrics, "")], "")])


class OTLPExport:
    """Sends ``read()`` to ``endpoint`` (OTLP/HTTP, protobuf) every ``interval`` seconds.

    ``identity()`` gives the ``service`` and ``instance`` labels (read at each export: the app's
    title may name the service only after the monitor is built); ``health()`` each check's
    status. Under several workers every worker reads the same merged totals, so only the one
    ``leader()`` is True in (the alert-lock holder) exports: a collector adding up the workers'
    exports would otherwise count every request once per worker.
    """

    def __init__(self, *, endpoint: str, read: Callable[[], SampleInputs],
                 identity: Callable[[], dict[str, str]], interval: float,
                 on_error: Callable[[str, BaseException], None],
                 health: Callable[[], Mapping[str, str]] = dict,
                 leader: Callable[[], bool] = lambda: True,
                 timeout: float = 10.0, clock: Callable[[], int] = time.time_ns,
                 off_loop: bool = False) -> None:
        self._endpoint = endpoint
        self._read = read
        self._identity = identity
        self._health = health
        self._leader = leader
        self._interval = interval
        self._on_error = on_error
        self._timeout = timeout
        self._clock = clock
        # ``read`` merges the workers' files (Sampler.off_loop): a thread's work, not the loop's.
        self._off_loop = off_loop
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
                            start_ns=self._start_ns, now_ns=self._clock(),
                            health=self._health())

    async def run_forever(self) -> None:
        exporter = self.exporter()
        try:
            while True:
                await self.export_once(exporter)
                await asyncio.sleep(self._interval)
        finally:
            exporter.shutdown()

    async def export_once(self, exporter: Any) -> bool:
        """One export, unless another worker is the one exporting; a failure is counted as an
        internal error, never raised. True if sent."""
        try:
            if not self._leader():
                return False
            # In one process a read is a few list copies, done on the loop; a read of the
            # workers' files is done in a thread. Sent from a thread either way.
            data = await asyncio.to_thread(self.data) if self._off_loop else self.data()
            result = await asyncio.to_thread(exporter.export, data,
                                             timeout_millis=self._timeout * 1000)
        except Exception as exc:
            self._on_error("otlp", exc)
            return False
        if result.name != "SUCCESS":
            self._on_error("otlp", RuntimeError(f"OTLP export to {self._endpoint} failed"))
            return False
        return True
