"""A real service under uvicorn whose own routes sit under the monitoring paths: told so once at
startup, and served on one port while the monitoring endpoints answer on another."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import httpx
import pytest
from support import (
    SUPPORT,
    free_port,
    requests_total,
    running_process,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.integration

SCRIPT = str(SUPPORT / "two_ports_app.py")
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "ALERT"))}


def test_the_app_on_one_port_and_the_monitoring_endpoints_on_another() -> None:
    public_port, monitoring_port = free_port(), free_port()
    public = f"http://127.0.0.1:{public_port}"
    monitoring = f"http://127.0.0.1:{monitoring_port}"
    with running_process([sys.executable, SCRIPT, str(public_port), str(monitoring_port)],
                         f"{monitoring}/api/health/live", env=ENV):
        wait_until(lambda: _answers(f"{public}/docs"), timeout=15,
                   what="the public server")
        # The app's own routes, on the public port.
        assert httpx.get(f"{public}/api/health", timeout=5).json() == {"status": "app"}
        for _ in range(2):
            assert httpx.get(f"{public}/api/metrics/business", timeout=5).json() == {
                "orders": 3}
        # The monitoring endpoints are not there: the app answers (its own 404).
        assert httpx.get(f"{public}/api/metrics", timeout=5).status_code == 404
        # They answer on the other port, and see the public port's requests.
        scrape = httpx.get(f"{monitoring}/api/metrics", timeout=5)
        assert scrape.status_code == 200
        assert requests_total(scrape.text, "/api/metrics/business") == 2
        assert requests_total(scrape.text, "/api/health") == 1
        assert httpx.get(f"{monitoring}/api/health", timeout=5).status_code in (200, 503)
        # And the app is not there.
        assert httpx.get(f"{monitoring}/api/metrics/business", timeout=5).status_code == 404


def test_one_port_warns_once_at_startup_about_each_shadowed_route() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, SCRIPT, str(port)], env=ENV,
                                  stdout=log, stderr=log)

        def shadowed() -> list[str]:
            log.seek(0)
            return [line for line in log.read().decode(errors="replace").splitlines()
                    if "is shadowed" in line]

        try:
            # Before any request: the lifespan startup found them.
            wait_until(lambda: len(shadowed()) == 2, timeout=15, what="the startup warnings")
            for _ in range(3):
                assert httpx.get(f"{url}/api/metrics/business", timeout=5).status_code == 404
                assert httpx.get(f"{url}/api/health", timeout=5).json().get("status") != "app"
        finally:
            stop_process(server)
        lines = shadowed()
    assert len(lines) == 2, lines
    assert any("/api/metrics/business" in line and "MONITORING_METRICS_PATH" in line
               for line in lines)
    assert any("route /api/health " in line and "MONITORING_HEALTH_PATH" in line
               for line in lines)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).is_success
    except httpx.TransportError:
        return False
