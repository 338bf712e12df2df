"""End to end, as a scaled-out user runs it: the demo app under uvicorn with 2 workers in
multiprocess mode, a real Prometheus scraping it, and a real Alertmanager receiving its alerts."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port, require_binary, running_process, wait_until

pytestmark = pytest.mark.integration

ITEMS = 300
ERRORS = 60


def promql(prometheus: str, query: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def test_two_workers_prometheus_and_alertmanager(tmp_path: Path) -> None:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager")
    app_port, prom_port, am_port = free_port(), free_port(), free_port()
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    (tmp_path / "am.yml").write_text("route: {receiver: default}\nreceivers: [{name: default}]\n")
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: demo
    metrics_path: /api/metrics
    static_configs: [{{targets: ["127.0.0.1:{app_port}"]}}]
""")
    alertmanager = f"http://127.0.0.1:{am_port}"
    prometheus = f"http://127.0.0.1:{prom_port}"
    app = f"http://127.0.0.1:{app_port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONITORING_", "ALERT", "SMTP_", "HEALTH_"))}
    env.update({
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "ALERTMANAGER_URL": alertmanager,
        "ALERT_CHECK_INTERVAL": "1", "METRICS_COLLECTION_INTERVAL": "1",
        "ALERT_WINDOW_SECONDS": "30", "ALERT_MIN_REQUESTS": "20",
        "MONITORING_RATE_LIMIT_PER_SECOND": "0",
    })
    with running_process(
            [alertmanager_bin, f"--config.file={tmp_path / 'am.yml'}",
             f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            f"{alertmanager}/-/ready"), \
         running_process(
            [sys.executable, "-m", "uvicorn", "--factory", "asgi_monitor.demo.app:create_app",
             "--workers", "2", "--host", "127.0.0.1", "--port", str(app_port),
             "--log-level", "warning"],
            f"{app}/api/health/live", env=env, cwd=str(tmp_path)), \
         running_process(
            [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            f"{prometheus}/-/ready"):
        with httpx.Client(base_url=app, timeout=10) as client:
            for i in range(ITEMS):
                response = client.get(f"/items/{i}", headers={"connection": "close"})
                assert response.status_code == 200
            for _ in range(ERRORS):
                assert client.get("/error").status_code == 500
        # One metric file per worker process (asgi_monitor_<pid>_<token>.values): both workers
        # served requests.
        pids = {p.name.split("_")[2] for p in multiproc.glob("asgi_monitor_*.values")
                if len(p.read_bytes().rstrip(b"\0")) > 0}
        assert len(pids) == 2, f"expected both workers to record, saw files for {pids}"

        def totals() -> tuple[float, float] | None:
            items = promql(prometheus, 'sum(http_requests_total{route="/items/{item_id}"})')
            errors = promql(prometheus, 'sum(http_requests_total{route="/error",status="500"})')
            if not items or not errors:
                return None
            found = float(items[0]["value"][1]), float(errors[0]["value"][1])
            return found if found == (ITEMS, ERRORS) else None

        # Exact totals across both workers, as Prometheus stored them.
        found = wait_until(totals, timeout=30, what="Prometheus to scrape the exact totals")
        assert found == (ITEMS, ERRORS)

        def pushed() -> list[dict[str, Any]]:
            response = httpx.get(f"{alertmanager}/api/v2/alerts",
                                 params={"filter": 'alertname="high_error_rate"'}, timeout=5)
            return list(response.json())

        [alert] = wait_until(pushed, timeout=30, what="the error-rate alert in Alertmanager")
        assert alert["labels"]["severity"] == "critical"
        assert alert["status"]["state"] == "active"
        # The workers elected the one sender through a lock in the multiprocess directory.
        assert (multiproc / "asgi_monitor_alerts.lock").exists()
