"""A real Prometheus with exemplar storage keeps the trace id a request sent in `traceparent`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from support import free_port, require_binary, serve, starlette_app, stop_process, wait_until

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_query_exemplars_returns_the_trace_id_sent(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    config = MonitoringConfig(metrics=MetricsSettings(exemplars=True),
                              health=HealthSettings(default_checks=False),
                              system=SystemSettings(metrics=False))
    app = MonitoringMiddleware(starlette_app(), monitor=build_monitor(config, CollectorRegistry()))
    with serve(app) as base:
        target = base.removeprefix("http://")
        port = free_port()
        prometheus_yml = tmp_path / "prometheus.yml"
        prometheus_yml.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n  - job_name: asgi\n    metrics_path: /api/metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [prometheus, f"--config.file={prometheus_yml}",
             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--enable-feature=exemplar-storage", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=5) as client:
                def ready() -> bool:
                    if process.poll() is not None:
                        pytest.fail((tmp_path / "prometheus.log").read_text())
                    try:
                        return client.get(f"{api}/-/ready").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_until(ready, timeout=30, what="Prometheus to be ready")
                httpx.get(f"{base}/", headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
                start = time.time() - 60
                found: list[dict[str, str]] = []

                def stored() -> bool:
                    body = client.get(f"{api}/api/v1/query_exemplars", params={
                        "query": "http_request_duration_seconds_bucket",
                        "start": start, "end": time.time() + 60}).json()
                    assert body["status"] == "success", body
                    found[:] = [e["labels"] for series in body["data"]
                                for e in series["exemplars"]]
                    return bool(found)

                wait_until(stored, timeout=30, what="an exemplar in Prometheus")
                assert found == [{"trace_id": TRACE, "span_id": SPAN}]
        finally:
            stop_process(process)
            log.close()
