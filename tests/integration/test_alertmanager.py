"""Push to a real Alertmanager (the Debian ``prometheus-alertmanager``), read back its API."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port, require_binary

from asgi_monitor.alerting import AlertManager, AlertSeverity
from asgi_monitor.alerting.channels import AlertmanagerChannel
from asgi_monitor.secret import Secret

pytestmark = pytest.mark.integration

CONFIG = """\
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[str]:
    binary = require_binary("prometheus-alertmanager")
    (tmp_path / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(100):
                try:
                    if (await client.get(f"{url}/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("alertmanager did not become ready within 10 s")
        if process.poll() is not None:
            assert process.stderr is not None
            pytest.fail(f"alertmanager exited: {process.stderr.read().decode()[-2000:]}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr is not None:
            process.stderr.close()


async def alerts_in(url: str, **params: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/api/v2/alerts", params=params)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


async def test_push_is_visible_in_alertmanager_and_resolves(alertmanager: str) -> None:
    channel = AlertmanagerChannel(Secret(alertmanager), external_url="https://app.example",
                                  retries=0)
    manager = AlertManager(channels=[channel])
    state = {"holds": True}
    manager.register_rule("high_error_rate", "HTTP 5xx error rate above 5%",
                          lambda: (12.5, state["holds"]), AlertSeverity.CRITICAL,
                          labels={"team": "web"}, annotations={"runbook_url": "https://rb"})
    await manager.evaluate()
    await manager.flush()
    alert = manager.active()[0]
    assert alert.notifications[0] | {"at": None} == {
        "channel": "alertmanager", "ok": True, "at": None, "error": None, "attempts": 1}

    [received] = await alerts_in(alertmanager)
    assert received["labels"] == {"alertname": "high_error_rate", "severity": "critical",
                                  "team": "web"}
    assert received["annotations"]["summary"] == "HTTP 5xx error rate above 5%"
    assert received["annotations"]["runbook_url"] == "https://rb"
    assert received["annotations"]["value"] == "12.5"
    assert received["status"]["state"] == "active"
    assert received["generatorURL"] == "https://app.example/api/alerts"
    assert received["fingerprint"] == alert.fingerprint  # same identity on both sides

    # Re-sent while firing (Alertmanager resolves alerts nobody re-sends).
    channel.resend_interval = 0
    await manager.evaluate()
    await manager.flush()
    assert [n["channel"] for n in alert.notifications] == ["alertmanager"] * 2

    state["holds"] = False
    await manager.evaluate()
    await manager.flush()
    assert alert.notifications[-1]["ok"] is True
    for _ in range(50):  # Alertmanager applies the endsAt it got; resolved ones leave the list
        remaining = await alerts_in(alertmanager, active="true")
        if not remaining:
            break
        await asyncio.sleep(0.1)
    assert remaining == []


async def test_alertmanager_down_is_a_recorded_failure() -> None:
    channel = AlertmanagerChannel(Secret(f"http://127.0.0.1:{free_port()}"), retries=1,
                                  backoff=0.01)
    manager = AlertManager(channels=[channel])
    manager.register_rule("r", "d", lambda: True)
    await manager.evaluate()
    await manager.flush()
    [outcome] = manager.active()[0].notifications
    assert outcome["ok"] is False and outcome["attempts"] == 2


async def test_two_services_stay_two_alerts_and_resolve_apart(alertmanager: str) -> None:
    from asgi_monitor.alerting.identity import Identity
    from asgi_monitor.config import ServiceSettings

    holds = {"shop": True, "billing": True}
    managers = {}
    for service in holds:
        identity = Identity(ServiceSettings(service_name=service, instance="host-a"))
        manager = AlertManager(channels=[AlertmanagerChannel(Secret(alertmanager), retries=0)],
                               identity=identity.labels)
        manager.register_rule("high_error_rate", "HTTP 5xx error rate above 5%",
                              lambda s=service: holds[s], AlertSeverity.CRITICAL)
        managers[service] = manager
        await manager.evaluate()
        await manager.flush()

    received = await alerts_in(alertmanager, active="true")
    assert sorted((a["labels"]["service"], a["labels"]["instance"]) for a in received) == [
        ("billing", "host-a"), ("shop", "host-a")]
    assert {a["fingerprint"] for a in received} == {
        m.active()[0].fingerprint for m in managers.values()}

    holds["shop"] = False
    await managers["shop"].evaluate()
    await managers["shop"].flush()
    for _ in range(50):
        remaining = await alerts_in(alertmanager, active="true")
        if len(remaining) < 2:
            break
        await asyncio.sleep(0.1)
    [still] = remaining
    assert still["labels"]["service"] == "billing"
    assert still["status"]["state"] == "active"
