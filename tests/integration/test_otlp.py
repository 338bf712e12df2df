"""The OTLP export (the `otlp` extra) against a real OTLP/HTTP receiver: what it decodes equals
what GET /api/metrics shows."""

from __future__ import annotations

import asyncio
import importlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import IN_CI

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import (
    AlertSettings,
    MetricsSettings,
    OTLPSettings,
    ServiceSettings,
    SystemSettings,
)

try:
    importlib.import_module("opentelemetry.exporter.otlp.proto.http.metric_exporter")
    metrics_service = importlib.import_module(
        "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")
except ImportError:
    # The dev dependency group has the exporter, so CI must have it: fail there, never skip.
    if IN_CI:
        raise
    pytest.skip("the OTLP exporter is not installed (pip install --group dev)",
                allow_module_level=True)


class Receiver:
    """A minimal OTLP/HTTP metrics endpoint: keeps each decoded export request."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        # The HTTP headers of each request, in the same order.
        self.headers: list[dict[str, str]] = []
        received, headers = self.requests, self.headers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/x-protobuf"
                message = metrics_service.ExportMetricsServiceRequest()
                message.ParseFromString(body)
                headers.append({k.lower(): v for k, v in self.headers.items()})
                received.append((self.path, message))
                reply = metrics_service.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _attributes(point: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in point.attributes}


def _exported(message: Any) -> tuple[dict[str, str], dict[str, Any]]:
    [resource_metrics] = message.resource_metrics
    resource = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
    [scope] = resource_metrics.scope_metrics
    return resource, {m.name: m for m in scope.metrics}


def _scraped_histograms(family: Any, labels: tuple[str, ...]) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for s in family.samples:
        entry = found.setdefault(tuple(s.labels.get(name, "") for name in labels), {"buckets": {}})
        if s.name.endswith("_bucket"):
            entry["buckets"][float(s.labels["le"])] = s.value
        elif s.name.endswith("_count"):
            entry["count"] = s.value
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    return found


def _summed(family: Any, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in family.samples:
        if s.name.endswith("_total"):
            out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
    return out


def _points(metric: Any, attribute: str) -> dict[str, float]:
    points = metric.sum.data_points if metric.HasField("sum") else metric.gauge.data_points
    return {_attributes(p)[attribute]: float(p.as_int or p.as_double) for p in points}


@pytest.mark.integration
async def test_export_equals_the_scrape(receiver: Receiver, tmp_path: Any) -> None:
    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def broken(request: Request) -> PlainTextResponse:
        return PlainTextResponse("boom", status_code=503)

    config = MonitoringConfig(
        metrics=MetricsSettings(metric_names="otel"),
        otlp=OTLPSettings(endpoint=receiver.url, interval_seconds=1),
        system=SystemSettings(disk_paths=(str(tmp_path),)),
        service=ServiceSettings(service_name="shop", instance="shop-1:8000"))
    monitor = build_monitor(config, CollectorRegistry())
    monitor.health.register_check("database", "The database answers", lambda: True)
    app = MonitoringMiddleware(
        Starlette(routes=[Route("/items/{id}", item), Route("/broken", broken)]), monitor=monitor)
    metrics_ = monitor.collector
    async with monitor.running(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for i in range(5):
            await client.get(f"/items/{i}")
        await client.get("https://t/items/9")  # the scope's scheme is https
        await client.get("/broken")
        await client.request("PROPFIND", "/items/1")
        metrics_.database.record("load_user", 0.01)
        metrics_.database.record("load_user", 0.02, ok=False)
        metrics_.cache.hit("users")
        metrics_.cache.miss("users")
        metrics_.cache.miss("users")
        metrics_.users.login_succeeded()
        metrics_.users.login_failed("bad_password")
        await monitor.health.run_all()
        scrape = (await client.get("/api/metrics")).text
        first = len(receiver.requests)
        for _ in range(300):  # an export that started after the traffic
            if len(receiver.requests) > first:
                break
            await asyncio.sleep(0.05)
        assert len(receiver.requests) > first, "no OTLP export arrived"
    path, message = receiver.requests[-1]
    assert path == "/v1/metrics"
    resource, metrics = _exported(message)
    assert resource["service.name"] == "shop" and resource["service.instance.id"] == "shop-1:8000"
    families = {f.name: f for f in text_string_to_metric_families(scrape)}

    # Requests: the duration histogram per method, route, status and scheme, as scraped; its
    # count is the request count (the conventions have no request counter, nor do we).
    assert "http.server.requests" not in metrics and "http_server_requests" not in families
    labels = ("http_request_method", "http_route", "http_response_status_code", "url_scheme",
              "error_type")
    scraped = _scraped_histograms(families["http_server_request_duration_seconds"], labels)
    duration = metrics["http.server.request.duration"]
    assert duration.unit == "s" and duration.histogram.aggregation_temporality == 2
    exported: dict[tuple[str, ...], dict[str, Any]] = {}
    for p in duration.histogram.data_points:
        a = _attributes(p)
        running, buckets = 0, {}
        for bound, count in zip([*p.explicit_bounds, float("inf")], p.bucket_counts, strict=True):
            running += count
            buckets[bound] = float(running)
        key = (a["http.request.method"], a["http.route"], str(a["http.response.status_code"]),
               a["url.scheme"], a.get("error.type", ""))
        exported[key] = {"buckets": buckets, "count": float(p.count), "sum": p.sum}
    assert exported.keys() == scraped.keys()
    for key, entry in scraped.items():
        assert exported[key]["count"] == entry["count"]
        assert exported[key]["sum"] == pytest.approx(entry["sum"])
        assert exported[key]["buckets"] == entry["buckets"]
    assert exported[("GET", "/broken", "503", "http", "503")]["count"] == 1
    assert exported[("GET", "/items/{id}", "200", "http", "")]["count"] == 5
    assert exported[("GET", "/items/{id}", "200", "https", "")]["count"] == 1
    assert [k for k in exported if k[0] == "_OTHER"]

    [active] = metrics["http.server.active_requests"].sum.data_points
    assert active.as_int == sum(s.value for s in families["http_server_active_requests"].samples)

    # The other readings, cumulative counters split as /api/metrics labels them.
    for name, family, label, expected in (
            ("asgi_monitor.db.queries", "db_queries", "status", {"success": 1, "error": 1}),
            ("asgi_monitor.cache.lookups", "cache_operations", "operation",
             {"hit": 1, "miss": 2}),
            ("asgi_monitor.user.logins", "user_logins", "result",
             {"success": 1, "failure": 1})):
        assert metrics[name].sum.aggregation_temporality == 2 and metrics[name].sum.is_monotonic
        scraped_counts = {k: v for k, v in _summed(families[family], label).items()
                          if k in expected}
        assert _points(metrics[name], label) == scraped_counts == expected, name
    health = {(a["check"], a["status"]): float(p.as_int)
              for p in metrics["asgi_monitor.health.check.status"].gauge.data_points
              for a in [_attributes(p)]}
    assert health == {(s.labels["check"], s.labels["status"]): s.value
                      for s in families["health_check_status"].samples}
    assert health[("database", "healthy")] == 1

    # System readings are gauges read at their own moment: equal within what moves between
    # the scrape and the export.
    def scraped_gauge(name: str) -> float:
        [sample] = families[name].samples
        return sample.value

    [memory] = metrics["system.memory.utilization"].gauge.data_points
    assert memory.as_double == pytest.approx(scraped_gauge("system_memory_usage_percent") / 100,
                                             abs=0.05)
    [disk] = metrics["system.filesystem.utilization"].gauge.data_points
    assert _attributes(disk)["system.filesystem.mountpoint"] == str(tmp_path)
    assert disk.as_double == pytest.approx(
        families["system_disk_usage_percent"].samples[0].value / 100, abs=0.05)
    [rss] = metrics["process.memory.usage"].gauge.data_points
    assert metrics["process.memory.usage"].unit == "By"
    assert rss.as_int == pytest.approx(scraped_gauge("app_process_resident_memory_bytes"),
                                       rel=0.2)
    [cpu] = metrics["system.cpu.utilization"].gauge.data_points
    assert 0 <= cpu.as_double <= 1


@pytest.mark.integration
async def test_only_the_alert_lock_holder_exports(receiver: Receiver, tmp_path: Any) -> None:
    """Two workers' monitors on one lock file: the holder exports, the other never does."""
    lock = str(tmp_path / "alerts.lock")

    def worker(instance: str) -> Any:
        return build_monitor(MonitoringConfig(
            otlp=OTLPSettings(endpoint=receiver.url, interval_seconds=1),
            alerts=AlertSettings(lock_path=lock),
            service=ServiceSettings(service_name="shop", instance=instance)), CollectorRegistry())

    holder, other = worker("worker-1"), worker("worker-2")
    assert holder.alert_lock.acquire()
    async with holder.running(), other.running():
        # Exports at least a second apart (the shortest interval): three show the holder keeps
        # exporting while the other never starts.
        for _ in range(300):
            if len(receiver.requests) >= 3:
                break
            await asyncio.sleep(0.05)
    instances = {_exported(message)[0]["service.instance.id"] for _, message in receiver.requests}
    assert len(receiver.requests) >= 3
    assert instances == {"worker-1"}
    assert not other.alert_lock.held


# -- what counts as an export that arrived -----------------------------------------------------


class RawCollector:
    """A socket server answering each export with ``reply(connection)``: a real collector's
    misbehaviours, byte by byte."""

    def __init__(self, reply: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1/metrics"
        self.stop = threading.Event()
        self.requests = 0
        self._reply = reply
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # A closed listener does not wake a blocked accept(): poll, so close() is prompt.
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(None)
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                while len(body) < length:
                    body += connection.recv(65536)
                self.requests += 1
                try:
                    self._reply(connection)
                except OSError:
                    pass  # the exporter gave up and closed: what a deadline does

    def close(self) -> None:
        self.stop.set()
        self._thread.join(5)
        self.listener.close()


def _answer(status: str, content_type: str, body: bytes) -> Callable[[socket.socket], None]:
    def reply(connection: socket.socket) -> None:
        connection.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                           .encode() + body)
    return reply


def _export(url: str, *, timeout: float = 10.0) -> tuple[Any, Any]:
    """An export to ``url`` over a fresh monitor's readings, and that monitor."""
    from asgi_monitor.exports.otlp import OTLPExport

    monitor = build_monitor(MonitoringConfig(otlp=OTLPSettings(endpoint=url)), CollectorRegistry())
    export = OTLPExport(endpoint=url, read=monitor.sampler.read, identity=monitor.identity.labels,
                        interval=1.0, on_error=monitor.collector.internal_error, timeout=timeout)
    return export, monitor


@pytest.mark.integration
# Without the deadline the trickle would hold the export for its 1,000 s: fail well before.
@pytest.mark.timeout(60)
async def test_a_collector_trickling_its_headers_cannot_hold_an_export() -> None:
    """One header line every 0.1 s, forever: each read returns in time, so only a deadline over
    the whole export ends it. It ends, counted and logged, and the next export is tried."""
    def trickle(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        for i in range(10_000):
            if server.stop.is_set():
                return
            connection.sendall(f"X-Slow-{i}: 1\r\n".encode())
            time.sleep(0.1)

    server = RawCollector(trickle)
    try:
        export, monitor = _export(server.url, timeout=1.0)
        async with export.client() as client:
            assert await export.export_once(client) is False
            assert await export.export_once(client) is False
    finally:
        server.close()
    assert server.requests == 2
    assert monitor.collector.internal_errors == {"otlp": 2}


@pytest.mark.integration
@pytest.mark.parametrize(("status", "content_type", "body", "why"), [
    ("200 OK", "text/plain", b"garbage", "Content-Type 'text/plain'"),
    ("200 OK", "application/x-protobuf", b"\xff\xff\xff\xff", "not an ExportMetricsService"),
    ("500 Internal Server Error", "application/x-protobuf", b"", "HTTP 500"),
    ("400 Bad Request", "text/plain", b"no", "HTTP 400"),
    # An answer is a count and a message: 64 KiB is not one, and is not read further.
    ("200 OK", "application/x-protobuf", b"\x00" * (64 * 1024 + 1), "larger than 65536 bytes"),
])
async def test_an_answer_that_is_no_success_is_an_error(
        status: str, content_type: str, body: bytes, why: str,
        caplog: pytest.LogCaptureFixture) -> None:
    server = RawCollector(_answer(status, content_type, body))
    try:
        export, monitor = _export(server.url)
        async with export.client() as client:
            for _ in range(3):
                assert await export.export_once(client) is False
    finally:
        server.close()
    # Every failure counted, one logged: a collector failing every second floods nothing.
    assert monitor.collector.internal_errors == {"otlp": 3}
    logged = [r for r in caplog.records if r.name.startswith("asgi_monitor")]
    assert len(logged) == 1 and why in logged[0].getMessage()
    assert "/v1/metrics" not in logged[0].getMessage()  # no path (nor its query) in the log


@pytest.mark.integration
@pytest.mark.parametrize("body", [
    b"",  # the empty ExportMetricsServiceResponse
    metrics_service.ExportMetricsServiceResponse().SerializeToString(),
])
async def test_an_empty_or_valid_answer_is_success(body: bytes) -> None:
    server = RawCollector(_answer("200 OK", "application/x-protobuf", body))
    try:
        export, monitor = _export(server.url)
        async with export.client() as client:
            assert await export.export_once(client) is True
    finally:
        server.close()
    assert monitor.collector.internal_errors == {}


@pytest.mark.integration
async def test_a_partial_success_is_taken_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    answer = metrics_service.ExportMetricsServiceResponse()
    answer.partial_success.rejected_data_points = 3
    answer.partial_success.error_message = "unit mismatch"
    server = RawCollector(_answer("200 OK", "application/x-protobuf; charset=binary",
                                  answer.SerializeToString()))
    try:
        export, monitor = _export(server.url)
        async with export.client() as client:
            # Sent (the spec says not to retry), but the rejected points are counted and said.
            assert await export.export_once(client) is True
    finally:
        server.close()
    assert monitor.collector.internal_errors == {"otlp": 1}
    [logged] = [r for r in caplog.records if r.name.startswith("asgi_monitor")]
    assert "rejected 3 data point(s): 'unit mismatch'" in logged.getMessage()


@pytest.mark.integration
async def test_opentelemetry_variables_configure_the_export(receiver: Receiver) -> None:
    # What a platform injects for every service: a base endpoint, headers, the resource.
    base = receiver.url.removesuffix("/v1/metrics")
    config = MonitoringConfig.from_env({
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr%20t,x-tenant=shop",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5000",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.version=1.4.2",
        "OTEL_SERVICE_NAME": "shop", "MONITORING_INSTANCE": "shop-0",
        "HEALTH_DEFAULT_CHECKS": "false", "MONITORING_SYSTEM_METRICS": "false"})
    assert (config.otlp.interval_seconds, config.otlp.timeout_seconds) == (1.0, 5.0)
    monitor = build_monitor(config, CollectorRegistry())
    async with monitor.running():
        for _ in range(200):  # the first export is sent as the export starts
            if receiver.requests:
                break
            await asyncio.sleep(0.05)
    assert receiver.requests, "no OTLP export arrived"
    path, message = receiver.requests[0]
    assert path == "/v1/metrics"
    assert receiver.headers[0]["x-api-key"] == "s3cr t"
    assert receiver.headers[0]["x-tenant"] == "shop"
    resource, _ = _exported(message)
    assert resource["service.name"] == "shop" and resource["service.instance.id"] == "shop-0"
    assert resource["service.version"] == "1.4.2"
    assert resource["deployment.environment"] == "prod"
