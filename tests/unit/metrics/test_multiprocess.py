from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry, values
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import MetricsSettings, SystemSettings
from asgi_monitor.monitor import Monitor
from asgi_monitor.store import multiprocess as mp
from asgi_monitor.store.single import RequestMetrics


@pytest.fixture
def multiproc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    # multiprocess_dir() switches prometheus_client's value storage; put it back afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    yield monkeypatch


def test_missing_directory_logs_and_falls_back(
    multiproc_env: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "nope"
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(missing))
    with caplog.at_level(logging.WARNING, logger="asgi_monitor"):
        monitor = build_monitor(
            MonitoringConfig(system=SystemSettings(metrics=False)), CollectorRegistry())
    assert monitor.collector.multiprocess_dir is None
    assert isinstance(monitor.collector.requests, RequestMetrics)
    assert monitor.scrape_registry() is monitor.registry
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.name == "asgi_monitor"
    assert "PROMETHEUS_MULTIPROC_DIR" in record.getMessage()
    assert "does not exist" in record.getMessage()
    assert "falling back to single-process metrics" in record.getMessage()
    # Metrics created afterwards keep working in memory instead of failing to open files.
    monitor.collector.increment_counter("after_fallback_total")
    assert monitor.registry.get_sample_value("after_fallback_total") == 1


def test_unwritable_directory_logs_and_falls_back(
    multiproc_env: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # chmod does not stop root (CI containers), so the permission check itself is simulated.
    multiproc_env.setattr(mp.os, "access", lambda path, mode: False)
    with caplog.at_level(logging.WARNING, logger="asgi_monitor"):
        monitor = build_monitor(
            MonitoringConfig(system=SystemSettings(metrics=False)), CollectorRegistry())
    assert monitor.collector.multiprocess_dir is None
    assert "is not writable" in caplog.text


def test_multiprocess_backend_in_one_process(
    multiproc_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monitor = build_monitor(
        MonitoringConfig(metrics=MetricsSettings(max_series=3)), CollectorRegistry())
    assert monitor.collector.multiprocess_dir == str(tmp_path)

    async def item(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = MonitoringMiddleware(Starlette(routes=[Route("/items/{n}", item)]), monitor=monitor)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for n in range(5):
                assert (await client.get(f"/items/{n}")).status_code == 200
            for n in range(4):
                await client.get(f"/missing/{n}")

    asyncio.run(main())
    monitor.collector.set_gauge("queue_depth", 3)
    monitor.collector.database.record("load", 0.01)
    scraped = monitor.scrape_registry()
    assert scraped is not monitor.registry
    value = scraped.get_sample_value
    assert value("http_requests_total",
                 {"method": "GET", "route": "/items/{n}", "status": "200"}) == 5
    assert value("http_requests_total",
                 {"method": "GET", "route": "<unmatched>", "status": "404"}) == 4
    assert value("http_request_duration_seconds_count",
                 {"method": "GET", "route": "/items/{n}"}) == 5
    assert value("http_requests_in_progress", {"method": "GET"}) == 0
    assert value("queue_depth") == 3
    assert value("db_queries_total", {"operation": "load", "status": "success"}) == 1
    assert monitor.collector.requests.dropped_counts() == {}


def test_multiprocess_series_cap(multiproc_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monitor = build_monitor(
        MonitoringConfig(
            metrics=MetricsSettings(max_series=2), system=SystemSettings(metrics=False)),
        CollectorRegistry())
    requests = monitor.collector.requests
    for route in ("/a", "/b", "/c", "/d"):
        requests.series("GET", route, 200, "http").observe(0.01, 0.005, 0, 10)
    assert requests.series("GET", "/a", 200, "http") is requests.series("GET", "/a", 200, "http")
    value = monitor.scrape_registry().get_sample_value
    assert value("http_requests_total",
                 {"method": "GET", "route": "<overflow>", "status": "200"}) == 2
    assert requests.dropped_counts() == {"http_requests_total": 2}


def test_multiprocess_live_gauges_are_written_while_open(
    multiproc_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In-progress requests and open websockets reach the gauge files other workers read, not
    only this process' own count."""
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monitor = build_monitor(
        MonitoringConfig(system=SystemSettings(metrics=False)), CollectorRegistry())
    requests = monitor.collector.requests
    assert requests.begin("GET") == "GET" and requests.begin("BREW") == "OTHER"
    route = requests.websocket_accepted("/ws")
    value = monitor.scrape_registry().get_sample_value
    assert value("http_requests_in_progress", {"method": "GET"}) == 1
    assert value("http_requests_in_progress", {"method": "OTHER"}) == 1
    assert value("websocket_connections_active") == 1

    requests.end("GET")
    requests.end("OTHER")
    requests.websocket_closed(route, 0.5)
    value = monitor.scrape_registry().get_sample_value
    assert value("http_requests_in_progress", {"method": "GET"}) == 0
    assert value("http_requests_in_progress", {"method": "OTHER"}) == 0
    assert value("websocket_connections_active") == 0


def test_child_exit_removes_the_dead_workers_live_gauges(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    dead = tmp_path / "gauge_livesum_4242.db"
    alive = tmp_path / "gauge_livesum_4343.db"
    dead.write_bytes(b"")
    alive.write_bytes(b"")
    mp.child_exit(None, SimpleNamespace(pid=4242))
    assert not dead.exists() and alive.exists()




@pytest.mark.parametrize("naming", ["classic", "otel", "both"])
def test_both_backends_expose_the_same_request_series(
    multiproc_env: pytest.MonkeyPatch, tmp_path: Path, naming: str
) -> None:
    def series(monitor: Monitor) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        # Values that are sums of powers of two, so sums do not depend on the order of adding.
        requests = monitor.collector.requests
        requests.series("GET", "/a", 200, "http").observe(0.0078125, 0.00390625, 0, 16)
        requests.series("GET", "/a", 404, "https").observe(0.25, 0.125, 0, 8)
        requests.series("GET", "/a", 200, "https").observe(0.5, 0.25, 4, 8)
        requests.series("POST", "/b", 500, "http").observe(0.125, 0.0625, 256, 0)
        requests.websocket_closed(requests.websocket_accepted("/ws"), 2.0)
        return {(s.name, tuple(sorted(s.labels.items())), s.value)
                for m in monitor.scrape_registry().collect()
                if m.name.startswith(("http_", "websocket_"))
                for s in m.samples if not s.name.endswith("_created")}

    config = MonitoringConfig(metrics=MetricsSettings(metric_names=naming),
                              system=SystemSettings(metrics=False))
    single = series(build_monitor(config, CollectorRegistry()))
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    multi = series(build_monitor(config, CollectorRegistry()))
    assert single == multi and len(single) > 50
    otel = any(name.startswith("http_server_request_duration") for name, _, _ in single)
    assert otel == (naming != "classic")


def test_both_backends_add_the_constant_labels_to_every_request_series(
    multiproc_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def series(monitor: Monitor) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        requests = monitor.collector.requests
        requests.series("GET", "/a", 200, "http").observe(0.01, 0.005, 0, 10)
        requests.websocket_closed(requests.websocket_accepted("/ws"), 2.0)
        return {(s.name, tuple(sorted(s.labels.items())))
                for m in monitor.scrape_registry().collect()
                if m.name.startswith(("http_", "websocket_"))
                for s in m.samples if not s.name.endswith("_created")}

    config = MonitoringConfig(
        metrics=MetricsSettings(constant_labels={"service": "shop", "env": "prod"}),
        system=SystemSettings(metrics=False))
    single = series(build_monitor(config, CollectorRegistry()))
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    multi = series(build_monitor(config, CollectorRegistry()))
    assert single == multi and len(single) > 30
    for _, labels in single:
        assert ("env", "prod") in labels and ("service", "shop") in labels


def test_multiprocess_keeps_exemplars(multiproc_env: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    # Kept in the worker's exemplars file beside its metric file (exemplar_file.py).
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monitor = build_monitor(
        MonitoringConfig(metrics=MetricsSettings(exemplars=True),
                         system=SystemSettings(metrics=False)),
        CollectorRegistry())
    monitor.collector.requests.record_exemplar("GET", "/a", 200, "http", 0.01, 0.005, 0, 10,
                                               {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    registry = monitor.scrape_registry()
    assert registry.get_sample_value("http_requests_total",
                                     {"method": "GET", "route": "/a", "status": "200"}) == 1
    kept = [(s.labels["le"], s.exemplar.labels) for family in registry.collect()
            for s in family.samples if s.exemplar is not None]
    assert kept == [("0.01", {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})]
