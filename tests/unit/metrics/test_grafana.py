"""The Grafana dashboard JSON: its structure, and every query evaluated by a real Prometheus
scraping a test app with traffic."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import free_port, require_binary, serve, stop_process, wait_until

from asgi_monitor import (
    MonitoringConfig,
    MonitoringMiddleware,
    build_monitor,
    get_metrics_collector,
    monitor_database_operation,
    set_default_monitor,
)
from asgi_monitor.config import HealthSettings, MetricsSettings
from asgi_monitor.grafana import grafana_dashboard, queries

NAMESPACE = "shop"


def test_dashboard_shape_for_import_and_provisioning() -> None:
    board = grafana_dashboard()
    assert board["uid"] == "asgi-monitor" == grafana_dashboard()["uid"]  # stable
    assert 8 <= len(board["uid"]) <= 40
    assert board["id"] is None and board["schemaVersion"] >= 36
    [source] = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS", "datasource", "prometheus")
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus"),
            ("panel", "timeseries"), ("panel", "stat")} <= required
    [variable] = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    kinds = {p["type"] for p in board["panels"]}
    assert kinds <= {r["id"] for r in board["__requires"] if r["type"] == "panel"} | {"row"}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for word in ("request rate", "error ratio", "latency", "in progress", "health",
                 "database", "cache", "cpu", "memory"):
        assert word in titles


def test_queries_cover_the_exported_metrics_and_honour_the_namespace() -> None:
    plain = " ".join(queries(grafana_dashboard()))
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket",
                   "http_requests_in_progress", "health_check_status", "db_queries_total",
                   "db_query_duration_seconds_bucket", "cache_operations_total",
                   "system_cpu_usage_percent", "system_memory_usage_percent",
                   "app_process_resident_memory_bytes"):
        assert metric in plain
    assert "histogram_quantile(0.95" in plain and "$__rate_interval" in plain
    named = grafana_dashboard(NAMESPACE)
    assert named["uid"] == "asgi-monitor-shop"
    for expr in queries(named):
        names = [word for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)
                 if word.endswith(("_total", "_bucket", "_percent", "_bytes", "_progress",
                                   "_status")) and not word.startswith("__")]
        assert names and all(n.startswith(f"{NAMESPACE}_") for n in names), expr


# -- against a real Prometheus --------------------------------------------------------------------
@monitor_database_operation("select_items")
def select_items(fail: bool) -> list[int]:
    if fail:
        raise RuntimeError("db down")
    return [1, 2, 3]


async def items(request: Request) -> PlainTextResponse:
    select_items(False)
    cache = get_metrics_collector().cache
    if int(request.path_params["id"]) % 3:
        cache.hit("items")
    else:
        cache.miss("items")
    return PlainTextResponse("ok")


async def broken(request: Request) -> PlainTextResponse:
    try:
        select_items(True)
    except RuntimeError:
        pass
    return PlainTextResponse("boom", status_code=500)


@pytest.fixture
def app() -> Iterator[MonitoringMiddleware]:
    starlette = Starlette(routes=[Route("/items/{id}", items), Route("/broken", broken)])
    config = MonitoringConfig(
        metrics=MetricsSettings(namespace=NAMESPACE), health=HealthSettings(interval_seconds=1))
    monitor = build_monitor(config, CollectorRegistry())
    # The decorators and get_metrics_collector() use the process-wide monitor: this one.
    previous = set_default_monitor(monitor)
    yield MonitoringMiddleware(starlette, monitor=monitor)
    set_default_monitor(previous)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_every_query_returns_data_from_a_real_prometheus(app: MonitoringMiddleware,
                                                         tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    expressions = [e.replace("$__rate_interval", "1m") for e in
                   queries(grafana_dashboard(NAMESPACE))]
    with serve(app) as base:
        target = base.removeprefix("http://")
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: asgi\n    metrics_path: /api/metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=5) as client:
                def ready() -> bool:
                    if process.poll() is not None:
                        output = (tmp_path / "prometheus.log").read_text()
                        pytest.fail(f"prometheus exited: {output}")
                    try:
                        return client.get(f"{api}/-/ready").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_until(ready, timeout=30, what="Prometheus to be ready")

                def scraped() -> bool:
                    body = client.get(f"{api}/api/v1/query", params={"query": "up"}).json()
                    return any(r["value"][1] == "1" for r in body["data"]["result"])

                wait_until(scraped, timeout=30, what="the first scrape")
                # Traffic across several scrapes, so every rate() has two changing samples.
                with httpx.Client(base_url=base, timeout=5) as app_client:
                    for round_ in range(8):
                        for i in range(6):
                            app_client.get(f"/items/{i + round_}")
                        app_client.get("/broken")
                        time.sleep(0.5)

                empty: dict[str, object] = {}
                for expr in expressions:
                    def answered(expr: str = expr) -> bool:
                        body = client.get(f"{api}/api/v1/query", params={"query": expr}).json()
                        assert body["status"] == "success", (expr, body)
                        result = body["data"]["result"]
                        empty[expr] = result
                        return bool(result)

                    deadline = time.monotonic() + 15
                    while not answered() and time.monotonic() < deadline:
                        time.sleep(0.5)
                failing = {e: r for e, r in empty.items() if not r}
                assert failing == {}, failing
        finally:
            stop_process(process)
            log.close()
