"""Readiness under a real uvicorn for the lifespan shapes a server meets: lifespan off, an app
that refuses lifespan, an app whose startup fails (docs/health.md has the table)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from support import PACKAGE_ROOT, SUPPORT, free_port, running_process, wait_until

pytestmark = pytest.mark.integration

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "ALERT"))},
       "PYTHONPATH": PACKAGE_ROOT}


def uvicorn(app: str, port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", f"lifespan_apps:{app}", "--app-dir", str(SUPPORT),
            "--host", "127.0.0.1", "--port", str(port), *options]


def _app_requests(base: str) -> list[str]:
    scrape = httpx.get(f"{base}/api/metrics", timeout=5).text
    return [line for line in scrape.splitlines()
            if line.startswith("http_requests_total{") and 'route="/' in line
            and "/api/" not in line]


@pytest.mark.parametrize(("app", "options"), [
    ("starlette", ("--lifespan", "off")),
    # uvicorn's default, --lifespan auto, serves on when the app raises on the lifespan scope.
    ("refuses_lifespan", ()),
])
def test_ready_without_any_app_request(app: str, options: tuple[str, ...]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Only probes, as from a readiness-gated load balancer: running_process waits for a 200.
    with running_process(uvicorn(app, port, *options), f"{base}/api/health/ready", env=ENV):
        assert httpx.get(f"{base}/api/health/ready", timeout=5).json() == {"status": "pass"}
        # The health checks run too: the overall status leaves "unknown".
        wait_until(lambda: httpx.get(f"{base}/api/health", timeout=5).status_code == 200,
                   timeout=15, what="the overall health to pass")
        assert _app_requests(base) == []
        # And the app still answers.
        assert httpx.get(f"{base}/", timeout=5).text == "ok"


@pytest.mark.parametrize(("app", "options"), [
    ("startup_fails", ()),
    # --lifespan on: an app that refuses lifespan is a failed startup to uvicorn.
    ("refuses_lifespan", ("--lifespan", "on")),
])
def test_failed_startup_exits_before_serving(app: str, options: tuple[str, ...]) -> None:
    # uvicorn runs the startup before it listens, so no probe gets an answer: the process
    # exits, which is what an orchestrator acts on.
    result = subprocess.run(uvicorn(app, free_port(), *options), env=ENV, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "Application startup failed. Exiting." in result.stderr
