"""The metrics port for several workers: real ``uvicorn --workers 4`` with
``MONITORING_SERVE_METRICS=false``, and ``asgi-monitor serve-metrics`` beside it reading the same
directory. Every request is counted exactly once on the metrics port, behind the app's metrics
token; the app's port answers 404 for its metrics path; the sidecar leaves no file of its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from support import (
    SUPPORT,
    free_port,
    keep_alive_gets,
    requests_total,
    running_process,
    stop_process,
    wait_until,
)

pytestmark = pytest.mark.integration

WORKERS = 4
REQUESTS = 2000
TOKEN = "metrics-port-scrape-token-0123456789"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "ALERT"))}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code in (200, 401)
    except httpx.TransportError:
        return False


@pytest.mark.timeout(300)
def test_the_metrics_port_counts_every_workers_requests(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir(mode=0o700)
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(directory),
           "MONITORING_SERVE_METRICS": "false", "MONITORING_METRICS_TOKEN": TOKEN,
           "MONITORING_SYSTEM_METRICS": "false"}
    app_port, metrics_port = free_port(), free_port()
    app = f"http://127.0.0.1:{app_port}"
    metrics = f"http://127.0.0.1:{metrics_port}"
    server = [sys.executable, "-m", "uvicorn", "metrics_port_app:app", "--app-dir", str(SUPPORT),
              "--host", "127.0.0.1", "--port", str(app_port), "--workers", str(WORKERS),
              "--log-level", "warning"]
    with running_process(server, f"{app}/warmup", env=env, timeout=60):
        bodies = asyncio.run(keep_alive_gets(app, "/ping", REQUESTS, connections=8,
                                             per_connection=50))
        assert sum(bodies.values()) == REQUESTS
        assert len(bodies) >= 2, f"the requests reached one worker only: {bodies}"
        files = sorted(os.listdir(directory))

        # The app's port no longer serves its metrics path, with or without the token.
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            assert httpx.get(f"{app}/api/metrics", headers=headers,
                             timeout=10).status_code == 404

        log = tempfile.TemporaryFile()
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "asgi_monitor", "serve-metrics", "--port", str(metrics_port),
             "--dir", str(directory)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: sidecar.poll() is not None or _answers(f"{metrics}/metrics"),
                       timeout=60, what="serve-metrics answering")
            assert sidecar.poll() is None, _output(log)
            # The app's metrics token, as on the app's own endpoint.
            assert httpx.get(f"{metrics}/metrics", timeout=10).status_code == 401
            wrong = httpx.get(f"{metrics}/metrics", timeout=10,
                              headers={"Authorization": "Bearer wrong-token-0123456789"})
            assert wrong.status_code == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            scrape = httpx.get(f"{metrics}/metrics", headers=auth, timeout=30)
            assert scrape.status_code == 200, scrape.text
            assert requests_total(scrape.text, "/ping") == REQUESTS
            # The app's metrics path answers on the metrics port too: the same families.
            same = httpx.get(f"{metrics}/api/metrics", headers=auth, timeout=30)
            assert requests_total(same.text, "/ping") == REQUESTS
            # More requests: the next scrape reads the files afresh.
            asyncio.run(keep_alive_gets(app, "/ping", 100, connections=2, per_connection=25))
            again = httpx.get(f"{metrics}/metrics", headers=auth, timeout=30)
            assert requests_total(again.text, "/ping") == REQUESTS + 100
            # No file of its own: the workers' files are all the directory holds.
            assert sorted(os.listdir(directory)) == files
            assert not [name for name in files if str(sidecar.pid) in name]
        finally:
            stop_process(sidecar)
            log.close()


def _output(log: tempfile._TemporaryFileWrapper[bytes] | object) -> str:
    assert hasattr(log, "seek") and hasattr(log, "read")
    log.seek(0)
    return str(log.read().decode(errors="replace")[-3000:])
