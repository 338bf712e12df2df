"""The OTLP export (the `otlp` extra) against a real OTLP/HTTP receiver: what it decodes equals
what GET /api/metrics shows."""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Iterator
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
from asgi_monitor.config import MetricsSettings, OTLPSettings, ServiceSettings

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
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/x-protobuf"
                message = metrics_service.ExportMetricsServiceRequest()
                message.ParseFromString(body)
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


@pytest.mark.integration
async def test_export_equals_the_scrape(receiver: Receiver) -> None:
    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def broken(request: Request) -> PlainTextResponse:
        return PlainTextResponse("boom", status_code=503)

    config = MonitoringConfig(
        metrics=MetricsSettings(metric_names="otel"),
        otlp=OTLPSettings(endpoint=receiver.url, interval_seconds=0.1),
        service=ServiceSettings(service_name="shop", instance="shop-1:8000"))
    monitor = build_monitor(config, CollectorRegistry())
    app = MonitoringMiddleware(
        Starlette(routes=[Route("/items/{id}", item), Route("/broken", broken)]), monitor=monitor)
    async with monitor.running(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for i in range(5):
            await client.get(f"/items/{i}")
        await client.get("/broken")
        await client.request("PROPFIND", "/items/1")
        scrape = (await client.get("/api/metrics")).text
        first = len(receiver.requests)
        for _ in range(100):  # an export that started after the traffic
            if len(receiver.requests) > first:
                break
            await asyncio.sleep(0.05)
        assert len(receiver.requests) > first, "no OTLP export arrived"
    path, message = receiver.requests[-1]
    assert path == "/v1/metrics"
    resource, metrics = _exported(message)
    assert resource["service.name"] == "shop" and resource["service.instance.id"] == "shop-1:8000"

    families = {f.name: f for f in text_string_to_metric_families(scrape)}
    scraped_counts = {
        (s.labels["http_request_method"], s.labels["http_route"],
         int(s.labels["http_response_status_code"]), s.labels["error_type"]): s.value
        for s in families["http_server_requests"].samples if s.name.endswith("_total")}
    requests = metrics["http.server.requests"].sum
    assert requests.aggregation_temporality == 2 and requests.is_monotonic  # cumulative
    exported_counts = {
        (a["http.request.method"], a["http.route"], a["http.response.status_code"],
         a.get("error.type", "")): float(p.as_int)
        for p in requests.data_points for a in [_attributes(p)]}
    assert exported_counts == scraped_counts
    assert exported_counts[("GET", "/broken", 503, "503")] == 1
    assert exported_counts[("GET", "/items/{id}", 200, "")] == 5
    assert [k for k in exported_counts if k[0] == "_OTHER"]

    duration = metrics["http.server.request.duration"]
    assert duration.unit == "s" and duration.histogram.aggregation_temporality == 2
    scraped: dict[tuple[str, str], dict[str, Any]] = {}
    for s in families["http_server_request_duration_seconds"].samples:
        key = (s.labels["http_request_method"], s.labels["http_route"])
        entry = scraped.setdefault(key, {"buckets": {}})
        if s.name.endswith("_bucket"):
            entry["buckets"][float(s.labels["le"])] = s.value
        elif s.name.endswith("_count"):
            entry["count"] = s.value
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    exported: dict[tuple[str, str], dict[str, Any]] = {}
    for p in duration.histogram.data_points:
        a = _attributes(p)
        assert a["url.scheme"] == "http"
        running, buckets = 0, {}
        for bound, count in zip([*p.explicit_bounds, float("inf")], p.bucket_counts, strict=True):
            running += count
            buckets[bound] = float(running)
        exported[(a["http.request.method"], a["http.route"])] = {
            "buckets": buckets, "count": float(p.count), "sum": p.sum}
    assert exported.keys() == scraped.keys()
    for key, entry in scraped.items():
        assert exported[key]["count"] == entry["count"]
        assert exported[key]["sum"] == pytest.approx(entry["sum"])
        assert exported[key]["buckets"] == entry["buckets"]

    [active] = metrics["http.server.active_requests"].sum.data_points
    assert active.as_int == sum(s.value for s in families["http_server_active_requests"].samples)
