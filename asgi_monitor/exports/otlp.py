"""OTLP export: the sampler's readings pushed to an OpenTelemetry collector, off the hot path.

An optional extra (``pip install 'asgi-monitoring[otlp]'``): the OpenTelemetry SDK's data
classes and its protobuf encoder load when the export starts, never on
``import asgi_monitor``. Every ``interval`` the export reads the same typed snapshot the alert
rules read (:class:`~asgi_monitor.sampling.inputs.SampleInputs`: requests, database, cache,
logins, system resources) and the health checks' status, turns them into OTLP metrics (the
requests named after OpenTelemetry's HTTP semantic conventions), encodes them in a worker
thread and posts them with httpx's async client under one deadline, so neither a request nor
the event loop waits on the network. The SDK's own exporter is not used: its timeout is per
socket read (a collector trickling its headers holds it for good), and it takes any 2xx as
success whatever the body. Under several workers only the alert-lock holder exports.

Temporality is cumulative, as the snapshot is (totals since the store was made): a collector
converting to Prometheus gets the values ``/api/metrics`` shows. ``service.name`` and
``service.instance.id`` are the resource attributes, the same service and instance the alerts
carry, with ``service.version`` when one is known and the attributes of
``OTEL_RESOURCE_ATTRIBUTES``.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..health.models import HealthStatus
from ..sampling.inputs import RequestSnapshot, RouteLatency, SampleInputs

if TYPE_CHECKING:
    import httpx
    from opentelemetry.sdk.metrics.export import MetricsData

__all__ = ["OTLPExport", "OTLPExportError", "metrics_data", "response_problem"]

SCOPE = "asgi_monitor"
PROTOBUF = "application/x-protobuf"
# An ExportMetricsServiceResponse is a count and a message: anything near this is not one.
MAX_RESPONSE_BYTES = 64 * 1024


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
        Buckets,
        ExponentialHistogram,
        ExponentialHistogramDataPoint,
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

    def histogram_point(latency: RouteLatency, attributes: dict[str, Any],
                        ) -> HistogramDataPoint:
        bounds = [bound for bound, _ in latency.buckets[:-1]]
        counts, previous = [], 0.0
        for _, running in latency.buckets:
            counts.append(int(running - previous))
            previous = running
        return HistogramDataPoint(
            attributes=attributes, start_time_unix_nano=start_ns, time_unix_nano=now_ns,
            count=int(latency.count), sum=latency.total, bucket_counts=counts,
            explicit_bounds=bounds,
            # Not kept by the store; OTLP's min and max are optional.
            min=None, max=None)  # type: ignore[arg-type]

    requests: RequestSnapshot = inputs.requests
    durations = []
    exponential = []
    for latency in requests.latency:
        attributes: dict[str, Any] = {
            "http.request.method": _method(latency.method), "http.route": latency.route,
            "http.response.status_code": latency.status, "url.scheme": latency.scheme}
        if latency.status >= 500:
            attributes["error.type"] = str(latency.status)
        # The request labels the user chose, under their own names.
        attributes.update(latency.labels)
        if latency.native is not None:
            # Native histograms on: OTLP's exponential histogram, the same buckets. Its scale is
            # Prometheus' schema, and its bucket ``offset + i`` holds (base**(offset+i),
            # base**(offset+i+1)], one below Prometheus' index for the same bucket.
            schema, _, zero_count, native = latency.native
            first = native[0][0] if native else 1
            counts = [0] * (native[-1][0] - first + 1 if native else 0)
            for index, count in native:
                counts[index - first] = count
            exponential.append(ExponentialHistogramDataPoint(
                attributes=attributes, start_time_unix_nano=start_ns, time_unix_nano=now_ns,
                count=int(latency.count), sum=latency.total, scale=schema,
                zero_count=zero_count, positive=Buckets(first - 1, counts),
                negative=Buckets(0, []), flags=0,
                min=None, max=None))  # type: ignore[arg-type]
            continue
        durations.append(histogram_point(latency, attributes))
    # Streams' lifetimes (their requests count above by their first byte), named after the
    # request families: the conventions have no stream metric.
    lifetimes = [histogram_point(latency, {"http.request.method": _method(latency.method),
                                           "http.route": latency.route})
                 for latency in requests.streams]
    database, cache, users = inputs.database, inputs.cache, inputs.users
    metrics = [
        # Its count is the request count, by status: the conventions define no request counter.
        # One kind of point per metric: with native histograms on, every series has them.
        Metric("http.server.request.duration", "Duration of HTTP server requests.", "s",
               ExponentialHistogram(exponential, cumulative) if exponential else
               Histogram(durations, cumulative)),
        Metric("http.server.active_requests", "Number of active HTTP server requests.",
               "{request}", Sum([point(int(requests.in_progress))], cumulative,
                                is_monotonic=False)),
        Metric("http.server.stream.duration",
               "Stream lifetime: from the request start to the last body chunk, or to the "
               "client's disconnect.", "s", Histogram(lifetimes, cumulative)),
        Metric("http.server.active_streams", "Number of streaming responses open now.",
               "{stream}", Sum([point(int(requests.streams_open))], cumulative,
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


class OTLPExportError(Exception):
    """Why an export did not arrive whole; counted and logged as an internal error."""


def _shown_endpoint(endpoint: str) -> str:
    # Only scheme, host and port: a path or query may hold a collector's API key.
    parts = urllib.parse.urlsplit(endpoint)
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}"


def _encode(data: MetricsData) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    return bytes(encode_metrics(data).SerializeToString())


def response_problem(status: int, content_type: str, body: bytes) -> tuple[bool, str | None]:
    """Whether an answer means the export arrived, and what is wrong with it (or None).

    The OTLP/HTTP spec (https://opentelemetry.io/docs/specs/otlp/#otlphttp-response): success
    is a 2xx whose body is an ``ExportMetricsServiceResponse`` in the request's Content-Type
    (an empty body is the empty message); ``partial_success`` with rejected points or a message
    means part of it was refused, which is not to be retried but is worth saying.
    """
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )

    if not 200 <= status < 300:
        return False, f"the collector answered HTTP {status}"
    if not body:
        return True, None
    if content_type.partition(";")[0].strip().lower() != PROTOBUF:
        return False, (f"the collector answered HTTP {status} with Content-Type "
                       f"{content_type[:60]!r}, not an {PROTOBUF} ExportMetricsServiceResponse")
    try:
        answer = ExportMetricsServiceResponse.FromString(body)
    except Exception:  # protobuf's DecodeError, whose module depends on the backend
        return False, (f"the collector answered HTTP {status} with a body that is not an "
                       "ExportMetricsServiceResponse")
    partial = answer.partial_success
    if partial.rejected_data_points or partial.error_message:
        return True, (f"the collector rejected {partial.rejected_data_points} data point(s): "
                      f"{partial.error_message[:200]!r}")
    return True, None


class OTLPExport:
    """Sends ``read()`` to ``endpoint`` (OTLP/HTTP, protobuf) every ``interval`` seconds.

    ``identity()`` gives the ``service`` and ``instance`` labels (read at each export: the app's
    title may name the service only after the monitor is built); ``health()`` each check's
    status. Under several workers every worker reads the same merged totals, so only the one
    ``leader()`` is True in (the alert-lock holder) exports: a collector adding up the workers'
    exports would otherwise count every request once per worker.

    Each export has ``timeout`` seconds in all, connection to the last byte of the answer: a
    per-read timeout alone never fires on a collector that trickles a header line a second.
    A failure, a refused answer and a partial success are each counted and logged through
    ``on_error`` (``asgi_monitor_internal_errors{where="otlp"}``, logged at most once a minute).
    """

    def __init__(self, *, endpoint: str, read: Callable[[], SampleInputs],
                 identity: Callable[[], dict[str, str]], interval: float,
                 on_error: Callable[[str, BaseException], None],
                 health: Callable[[], Mapping[str, str]] = dict,
                 leader: Callable[[], bool] = lambda: True,
                 timeout: float = 10.0, clock: Callable[[], int] = time.time_ns,
                 headers: Mapping[str, str] | None = None,
                 attributes: Mapping[str, str] | None = None,
                 version: Callable[[], str] = str, off_loop: bool = False) -> None:
        self._endpoint = endpoint
        self._read = read
        self._identity = identity
        self._health = health
        self._leader = leader
        self._interval = interval
        self._on_error = on_error
        self._timeout = timeout
        self._clock = clock
        self._headers = dict(headers or {})
        # OTEL_RESOURCE_ATTRIBUTES; the service's own attributes are set over them.
        self._attributes = dict(attributes or {})
        self._version = version
        # ``read`` merges the workers' files (Sampler.off_loop): a thread's work, not the loop's.
        self._off_loop = off_loop
        # Cumulative points start when counting started: the store is made with the monitor.
        self._start_ns = clock()

    def client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)

    def data(self) -> MetricsData:
        labels = self._identity()
        resource = {**self._attributes, "service.name": labels["service"],
                    "service.instance.id": labels["instance"]}
        version = self._version()
        if version:
            resource["service.version"] = version
        return metrics_data(self._read(), resource=resource,
                            start_ns=self._start_ns, now_ns=self._clock(),
                            health=self._health())

    async def run_forever(self) -> None:
        async with self.client() as client:
            while True:
                await self.export_once(client)
                await asyncio.sleep(self._interval)

    async def export_once(self, client: httpx.AsyncClient) -> bool:
        """One export, unless another worker is the one exporting; a failure is counted as an
        internal error, never raised. True if the collector took it (wholly or in part)."""
        try:
            if not self._leader():
                return False
            # In one process a read is a few list copies, done on the loop; a read of the
            # workers' files is done in a thread. Encoded in a thread either way.
            data = await asyncio.to_thread(self.data) if self._off_loop else self.data()
            body = await asyncio.to_thread(_encode, data)
            arrived, problem = await asyncio.wait_for(self._post(client, body), self._timeout)
        except asyncio.TimeoutError:
            arrived, problem = False, f"no complete answer within {self._timeout:g} s"
        except Exception as exc:
            self._on_error("otlp", exc)
            return False
        if problem is not None:
            self._on_error("otlp", OTLPExportError(
                f"OTLP export to {_shown_endpoint(self._endpoint)}: {problem}"))
        return arrived

    async def _post(self, client: httpx.AsyncClient, body: bytes) -> tuple[bool, str | None]:
        async with client.stream("POST", self._endpoint, content=body,
                                 headers={**self._headers, "Content-Type": PROTOBUF}) as response:
            answer = b""
            async for chunk in response.aiter_bytes():
                answer += chunk
                if len(answer) > MAX_RESPONSE_BYTES:
                    return False, (f"the collector's answer is larger than "
                                   f"{MAX_RESPONSE_BYTES} bytes")
            return response_problem(response.status_code,
                                    response.headers.get("content-type", ""), answer)
