"""Faults around the app: each leaves it serving, shows in health/metrics/logs, and loses nothing.

Covered here: hung and raising health checks (sync and async), psutil failing under a real
scrape, and a log file that hits a file-size limit (a full disk, simulated with RLIMIT_FSIZE in
a subprocess). Faults in alerting (conditions, channels, the history file) are in
faults/test_alerting.py. The multiprocess directory that is missing or unwritable is in
unit/metrics/test_multiprocess.py; a failure inside recording in unit/hot_path/test_middleware.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from support import client, run_script, sample, starlette_app

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import HealthSettings, SystemSettings
from asgi_monitor.health import HealthStatus


def metric_values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


# -- health checks ----------------------------------------------------------------------------
async def test_hung_and_raising_checks_leave_the_app_serving(registry: CollectorRegistry) -> None:
    mw = MonitoringMiddleware(
        starlette_app(),
        monitor=build_monitor(
            MonitoringConfig(health=HealthSettings(default_checks=False)), registry))
    health = mw.monitor.health
    release = threading.Event()

    async def async_hang() -> bool:
        await asyncio.sleep(3600)
        return True

    def sync_hang() -> bool:
        release.wait(2)  # long past the timeout; short if a regression runs it on the loop
        return True

    async def async_raise() -> bool:
        raise RuntimeError("async boom")

    def sync_raise() -> bool:
        raise ConnectionRefusedError("sync boom")

    def fine() -> bool:
        return True

    options: dict[str, Any] = {"interval_seconds": 0.5, "timeout_seconds": 0.2}
    health.register_check("async_hang", "", async_hang, **options)
    # More hung sync checks than a small thread pool has threads: none may starve "fine".
    for i in range(6):
        health.register_check(f"sync_hang_{i}", "", sync_hang, **options)
    health.register_check("async_raise", "", async_raise, **options)
    health.register_check("sync_raise", "", sync_raise, **options)
    health.register_check("fine", "", fine, **options)

    async def timed_get(c: Any) -> float:
        started = time.perf_counter()
        response = await c.get("/")
        assert (response.status_code, response.text) == (200, "ok")
        return time.perf_counter() - started

    try:
        async with mw.monitor.running(), client(mw) as c:
            # While the first runs hang: the app answers at once.
            latencies = await asyncio.gather(*(timed_get(c) for _ in range(20)))
            deadline = time.monotonic() + 5
            while any(r.status is HealthStatus.UNKNOWN for r in health.results().values()):
                assert time.monotonic() < deadline, health.results()
                latencies.append(await timed_get(c))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)  # a second round: hung threads are not piled on
            latencies += [await timed_get(c) for _ in range(20)]
            served = len(latencies)
            overall = await c.get("/api/health")
    finally:
        release.set()

    # A blocked event loop would show here as the hang itself (2 s), not milliseconds.
    assert max(latencies) < 0.5, max(latencies)
    assert overall.status_code == 503 and overall.json()["status"] == "critical"
    checks = overall.json()["checks"]
    assert checks["fine"]["status"] == "healthy"
    assert checks["async_hang"]["message"] == "timed out after 0.2s"
    for i in range(6):
        assert checks[f"sync_hang_{i}"]["status"] == "critical"
        assert checks[f"sync_hang_{i}"]["message"] in (
            "timed out after 0.2s", "previous run is still hung in its thread")
    for name in ("async_raise", "sync_raise"):
        assert checks[name]["message"] == "check raised an exception"
    for name in ("async_hang", "sync_hang_0", "async_raise", "sync_raise"):
        assert sample(registry, "health_check_status", check=name, status="critical") == 1
    assert sample(registry, "health_check_status", check="fine", status="healthy") == 1
    assert sample(registry, "health_status", status="critical") == 1
    assert sample(registry, "http_requests_total", method="GET", route="/",
                  status="200") == served


def test_a_hung_sync_check_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    # The server has shut down; the interpreter must be able to exit although the check's
    # thread is blocked forever (a ThreadPoolExecutor thread is joined at exit: it hung here).
    script = tmp_path / "hung.py"
    script.write_text(
        textwrap.dedent("""
        import asyncio, threading
        from prometheus_client import CollectorRegistry
        from asgi_monitor import (HealthSettings, MonitoringConfig, MonitoringMiddleware,
                                  build_monitor)

        async def app(scope, receive, send):
            pass

        config = MonitoringConfig(health=HealthSettings(default_checks=False))
        mw = MonitoringMiddleware(app, monitor=build_monitor(config, CollectorRegistry()))
        mw.monitor.health.register_check("stuck", "", lambda: threading.Event().wait(),
                                         timeout_seconds=0.1)

        async def main():
            async with mw.monitor.running():
                await asyncio.sleep(0.3)
            print("stopped", mw.monitor.health.result("stuck").message)

        asyncio.run(main())
    """)
    )
    done = run_script(script, 15)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped timed out after 0.1s"


# -- psutil -----------------------------------------------------------------------------------
async def test_psutil_failures_leave_the_scrape_up(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_proc(*args: object, **kwargs: object) -> None:
        raise OSError("/proc is not mounted")

    def denied(self: psutil.Process) -> None:
        raise psutil.AccessDenied(self.pid)

    mw = MonitoringMiddleware(
        starlette_app(),
        monitor=build_monitor(
            MonitoringConfig(
                health=HealthSettings(default_checks=False), system=SystemSettings(metrics=True)),
            registry))
    monkeypatch.setattr(psutil, "virtual_memory", no_proc)
    monkeypatch.setattr(psutil.Process, "memory_info", denied)
    with caplog.at_level(logging.WARNING, logger="asgi_monitor.system"):
        async with client(mw) as c:
            assert (await c.get("/")).status_code == 200
            scrape = await c.get("/api/metrics")
    await mw.monitor.stop()
    assert scrape.status_code == 200
    text = scrape.text
    assert metric_values(text, "system_memory_usage_percent") == {}
    assert metric_values(text, "app_process_resident_memory_bytes") == {}
    assert metric_values(text, "app_process_threads")  # the rest is still read
    assert metric_values(text, "http_requests_total")[
        (("method", "GET"), ("route", "/"), ("status", "200"))] == 1
    warnings = {r.getMessage().split(";")[0] for r in caplog.records
                if r.name == "asgi_monitor.system" and r.levelno >= logging.WARNING}
    assert warnings == {"asgi_monitor could not read system memory percent",
                        "asgi_monitor could not read process RSS"}


# -- a full disk under the log file -----------------------------------------------------------
def test_log_file_over_its_size_limit_loses_nothing(tmp_path: Path) -> None:
    log_file = tmp_path / "monitoring.log"
    script = tmp_path / "full_disk.py"
    script.write_text(
        textwrap.dedent(f"""
        import asyncio, json, os, resource
        from prometheus_client import CollectorRegistry, generate_latest
        from asgi_monitor import (GateSettings, HealthSettings, MonitoringConfig,
                                  MonitoringMiddleware, SystemSettings, build_monitor)

        async def app(scope, receive, send):
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            await send({{"type": "http.response.body", "body": b"ok"}})

        registry = CollectorRegistry()
        config = MonitoringConfig(
            log_file={str(log_file)!r},
            gate=GateSettings(admin_token="t" * 32, rate_limit_per_second=0,
                              login_max_failures=1000),
            health=HealthSettings(default_checks=False), system=SystemSettings(metrics=False))
        mw = MonitoringMiddleware(app, monitor=build_monitor(config, registry))
        # From here on the log file may grow by 2 KB only: the disk is "full".
        limit = os.path.getsize({str(log_file)!r}) + 2048
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

        def scope(path, headers=()):
            return {{"type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1",
                     "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                     "root_path": "", "query_string": b"", "headers": list(headers),
                     "client": ("10.0.0.1", 1), "server": ("t", 80)}}

        async def request(path, headers=()):
            sent = []
            async def receive():
                return {{"type": "http.request", "body": b""}}
            async def send(message):
                sent.append(message)
            await mw(scope(path, headers), receive, send)
            return sent[0]["status"]

        async def main():
            statuses = []
            for i in range(200):
                statuses.append(await request("/"))
                # Every refused admin request is an audit line in the log file.
                statuses.append(await request("/admin/monitoring/config",
                                              [(b"authorization", b"Bearer wrong")]))
            scrape = await request("/api/metrics")
            await mw.monitor.stop()
            value = registry.get_sample_value(
                "http_requests_total", {{"method": "GET", "route": "<unmatched>",
                                        "status": "200"}})
            print(json.dumps({{"statuses": sorted(set(statuses)), "scrape": scrape,
                               "count": value, "limit": limit}}))

        asyncio.run(main())
    """)
    )
    done = run_script(script, 60)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["statuses"] == [200, 401]
    assert result["scrape"] == 200
    assert result["count"] == 200  # every request counted, before and after the disk filled
    size = log_file.stat().st_size
    assert size <= result["limit"]
    assert "Monitoring middleware initialized" in log_file.read_text()
    # The failure is visible: logging reports its own write errors on stderr.
    assert "File too large" in done.stderr
