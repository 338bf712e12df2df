"""Another process holding the alert engine's file locks, as any user who can open the files can
(``flock`` needs only a descriptor opened for reading): the silences lock held for ever must not
freeze the worker's event loop, and the alert lock held after the leader died must not switch
alerting off in silence.

The holder is a real process; the app runs in this one, so a blocked loop shows as the test
hanging (and failing at its timeout).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from support import client, starlette_app

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.alerting import silences as silences_module
from asgi_monitor.config import AlertSettings, GateSettings, HealthSettings, SystemSettings
from asgi_monitor.health.models import HealthStatus

TOKEN = "faults-alert-files-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the holder uses fcntl")


@pytest.fixture
def holder() -> Iterator[object]:
    """``holder(path)`` starts a process that opens ``path`` read-only and holds its flock
    until ``release()``."""
    started: list[subprocess.Popen[str]] = []

    class Holder:
        def __call__(self, path: str) -> None:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # as a worker would have made it
            os.close(fd)
            process = subprocess.Popen([sys.executable, "-c", HOLD, path], text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            started.append(process)
            assert process.stdout is not None
            assert process.stdout.readline() == "held\n"

        def release(self) -> None:
            for process in started:
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=30)

    yield Holder()
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _monitored(lock: Path, *, default_checks: bool = False) -> MonitoringMiddleware:
    config = MonitoringConfig(
        gate=GateSettings(admin_token=TOKEN, rate_limit_per_second=0),
        health=HealthSettings(default_checks=default_checks, interval_seconds=0.05),
        system=SystemSettings(metrics=False),
        alerts=AlertSettings(lock_path=str(lock), default_rules=False, console_enabled=False,
                             check_interval_seconds=0.05))
    return MonitoringMiddleware(starlette_app(), monitor=build_monitor(config,
                                                                       CollectorRegistry()))


async def _until(condition: object, what: str) -> None:
    assert callable(condition)
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.timeout(120)
async def test_a_held_silences_lock_leaves_the_loop_serving(
        tmp_path: Path, holder: object, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "alerts.lock"
    mw = _monitored(lock)
    holder(f"{lock}.silences.json.lock")  # type: ignore[operator]
    refused = threading.Event()
    real_lock = silences_module.lock

    def watched(fd: int, *, blocking: bool) -> bool:
        taken = real_lock(fd, blocking=blocking)
        if not taken:
            refused.set()
        return taken

    monkeypatch.setattr(silences_module, "lock", watched)
    mw.monitor.alerts.silences._wait_seconds = 600.0  # it waits until the holder leaves
    silence = {"rule": "r", "duration_minutes": 5}
    async with mw.monitor.running(), client(mw) as http:
        post = asyncio.create_task(http.post("/api/alerts/silences", json=silence,
                                             headers=AUTH))
        await _until(refused.is_set, "the edit trying the held lock")
        # The edit waits in a thread: the loop answers the app and the monitoring endpoints.
        for _ in range(3):
            assert (await http.get("/")).text == "ok"
            assert (await http.get("/api/health/live")).status_code == 200
            assert (await http.get("/api/alerts/silences", headers=AUTH)).json() == {
                "silences": []}
        assert not post.done()
        holder.release()  # type: ignore[attr-defined]
        created = await post
        assert created.status_code == 201, created.text
        listed = (await http.get("/api/alerts/silences", headers=AUTH)).json()["silences"]
        assert [s["id"] for s in listed] == [created.json()["id"]]


@pytest.mark.timeout(120)
async def test_an_edit_gives_up_on_a_lock_held_for_ever(tmp_path: Path, holder: object) -> None:
    lock = tmp_path / "alerts.lock"
    mw = _monitored(lock)
    holder(f"{lock}.silences.json.lock")  # type: ignore[operator]
    mw.monitor.alerts.silences._wait_seconds = 0.2
    async with mw.monitor.running(), client(mw) as http:
        refused = await http.post("/api/alerts/silences", json={"rule": "r",
                                                                "duration_minutes": 5},
                                  headers=AUTH)
        assert refused.status_code == 503
        assert "locked by another process" in refused.json()["error"]
        assert (await http.delete("/api/alerts/silences/abc", headers=AUTH)).status_code == 503


async def test_a_planted_silences_lock_is_a_503_not_a_500(tmp_path: Path) -> None:
    lock = tmp_path / "alerts.lock"
    mw = _monitored(lock)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    Path(f"{lock}.silences.json.lock").symlink_to(victim)
    async with mw.monitor.running(), client(mw) as http:
        refused = await http.post("/api/alerts/silences", json={"rule": "r",
                                                                "duration_minutes": 5},
                                  headers=AUTH)
        assert refused.status_code == 503
        assert "is a symlink" in refused.json()["error"]
    assert victim.read_text() == "precious"


@pytest.mark.timeout(120)
async def test_a_lock_held_by_a_process_that_does_not_evaluate_is_reported(
        tmp_path: Path, holder: object) -> None:
    # The leader died and a process that only holds the lock took it: nobody evaluates.
    lock = tmp_path / "alerts.lock"
    holder(str(lock))  # type: ignore[operator]
    mw = _monitored(lock, default_checks=True)
    monitor = mw.monitor

    def leaderless() -> float | None:
        return monitor.scrape_registry().get_sample_value(
            "asgi_monitor_alerting_leaderless_seconds")

    async with monitor.running(), client(mw) as http:
        await _until(lambda: monitor.health.result("alert_leader").status
                     is HealthStatus.WARNING, "the alert_leader check warning")
        assert "no worker has evaluated the alert rules" in monitor.health.result(
            "alert_leader").message
        assert (leaderless() or 0.0) > 2 * 0.05
        # Reported, not failing: liveness and readiness still pass.
        assert (await http.get("/api/health/live")).status_code == 200
        assert (await http.get("/api/health/ready")).status_code == 200
        body = (await http.get("/api/health", headers=AUTH)).json()
        assert body["checks"]["alert_leader"]["status"] == "warning"
        # The holder leaves: this worker takes the lock, evaluates, and the report clears.
        holder.release()  # type: ignore[attr-defined]
        await _until(lambda: monitor.alert_lock.held, "this worker taking the lock")
        await _until(lambda: monitor.health.result("alert_leader").status
                     is HealthStatus.HEALTHY, "the alert_leader check clearing")
        assert leaderless() == 0.0
