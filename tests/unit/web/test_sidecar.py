"""``asgi-monitor serve-metrics``'s app in process (the real servers: integration/
test_metrics_port.py) and ``MONITORING_SERVE_METRICS=false`` on the app's own port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, values
from prometheus_client.parser import text_string_to_metric_families
from support import hello

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.__main__ import main
from asgi_monitor.config import GateSettings, MetricsSettings, PathSettings, SystemSettings
from asgi_monitor.errors import ConfigError
from asgi_monitor.web.sidecar import metrics_app, metrics_directory

TOKEN = "sidecar-metrics-token-0123456789"


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                             base_url="http://t")


def test_the_directory_is_required_and_must_exist(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ConfigError, match="pass --dir DIR or set PROMETHEUS_MULTIPROC_DIR"):
        metrics_directory(None)
    with pytest.raises(ConfigError, match="does not exist or is not a directory"):
        metrics_directory(str(tmp_path / "missing"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics_directory(None) == str(tmp_path)
    assert metrics_directory(str(tmp_path / ".")) == str(tmp_path / ".")


def test_the_command_fails_in_one_line_without_a_directory(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert main(["serve-metrics", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("asgi-monitor: error: serve-metrics reads the workers' files")


async def test_the_metrics_port_applies_the_apps_gate(tmp_path: Path) -> None:
    config = MonitoringConfig(gate=GateSettings(metrics_token=TOKEN))
    async with _client(metrics_app(config, str(tmp_path))) as http:
        assert (await http.get("/metrics")).status_code == 401
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        # The families are declared even before any worker recorded a request.
        assert "# TYPE http_requests_total counter" in scraped.text
        assert (await http.get("/api/metrics", headers={
            "Authorization": f"Bearer {TOKEN}"})).status_code == 200
        assert (await http.get("/api/health")).status_code == 404
    networks = MonitoringConfig(gate=GateSettings(metrics_allowed_networks=("10.0.0.0/8",)))
    async with _client(metrics_app(networks, str(tmp_path))) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 403
        assert "MONITORING_METRICS_ALLOWED_NETWORKS" in refused.json()["error"]


async def test_the_metrics_port_speaks_openmetrics_and_gzip(tmp_path: Path) -> None:
    async with _client(metrics_app(MonitoringConfig(), str(tmp_path))) as http:
        scraped = await http.get("/metrics", headers={
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Accept-Encoding": "gzip"})
        assert scraped.headers["content-type"].startswith("application/openmetrics-text")
        assert scraped.headers["content-encoding"] == "gzip"
        assert scraped.text.endswith("# EOF\n")


async def test_the_app_port_stops_serving_metrics_when_so_configured() -> None:
    config = MonitoringConfig(paths=PathSettings(serve_metrics=False),
                              gate=GateSettings(admin_token=TOKEN + "-admin"),
                              system=SystemSettings(metrics=False))
    app = MonitoringMiddleware(hello, monitor=build_monitor(config, CollectorRegistry()))
    async with _client(app) as http:
        assert (await http.get("/api/metrics")).status_code == 404
        # The rest of the monitoring endpoints, the admin JSON under the prefix included, stay.
        assert (await http.get("/api/health/live")).status_code == 200
        assert (await http.get("/api/metrics/summary", headers={
            "Authorization": f"Bearer {TOKEN}-admin"})).status_code == 200
        assert (await http.get("/")).text == "app"
    assert MonitoringConfig.from_env({"MONITORING_SERVE_METRICS": "false"}).paths.serve_metrics \
        is False


@pytest.fixture
def multiproc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    # multiprocess_dir() switches prometheus_client's value storage; put it back afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    yield monkeypatch


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# What a worker reads in its own memory only (so not in the files): its health checks, its alert
# engine, its resources and its build identity.
PER_PROCESS = ("shop_health_", "shop_asgi_monitor_alert", "shop_app_process_", "shop_build_info")


async def test_the_metrics_port_serves_what_the_apps_endpoint_serves_from_the_files(
        multiproc_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    multiproc_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = MonitoringConfig(metrics=MetricsSettings(namespace="shop",
                                                      constant_labels={"env": "test"}),
                              system=SystemSettings(metrics=False))
    monitor = build_monitor(config, CollectorRegistry())
    app = MonitoringMiddleware(hello, monitor=monitor)
    monitor.collector.increment_counter("orders_total", {"kind": "book"}, 3)
    async with _client(app) as http:
        for path in ("/", "/a", "/b", "/"):
            assert (await http.get(path)).status_code == 200
        own = _samples((await http.get("/api/metrics")).text)
    async with _client(metrics_app(config, str(tmp_path))) as http:
        port = _samples((await http.get("/metrics")).text)
    assert ("shop_http_requests_total", (("env", "test"), ("method", "GET"), ("route",
            "<unmatched>"), ("status", "200"))) in port
    assert port[("orders_total", (("kind", "book"),))] == 3
    # Same names, labels and values; the app's endpoint has only its per-process families more.
    assert {k: v for k, v in own.items() if k in port} == port
    extra = sorted({name for name, _ in own} - {name for name, _ in port})
    assert all(name.startswith(PER_PROCESS) for name in extra), extra
    monitor.collector.requests.close()  # type: ignore[attr-defined]
