"""An authenticated client sending its body a byte at a time, against real uvicorn: the admin
endpoint answers 408 once MONITORING_ADMIN_BODY_TIMEOUT has passed, instead of holding the
connection and its task for as long as the client keeps dripping."""

from __future__ import annotations

import json
import socket

import pytest
from prometheus_client import CollectorRegistry
from support import serve, starlette_app

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings, SystemSettings

TOKEN = "slow-body-admin-token-0123456789"
SILENCE = json.dumps({"rule": "high_error_rate", "duration_minutes": 60}).encode()


def _app(body_timeout: float) -> MonitoringMiddleware:
    config = MonitoringConfig(gate=GateSettings(admin_token=TOKEN,
                                                body_timeout_seconds=body_timeout),
                              system=SystemSettings(metrics=False))
    return MonitoringMiddleware(starlette_app(), monitor=build_monitor(config, CollectorRegistry()))


def _drip(base: str, body: bytes, *, declared: int, pause: float) -> bytes:
    """POST a silence, sending ``body`` one byte per ``pause`` seconds (then nothing), and
    return the whole answer as soon as the server sends one."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /api/alerts/silences HTTP/1.1\r\nHost: " + host.encode() +
                     b"\r\nAuthorization: Bearer " + TOKEN.encode() +
                     b"\r\nContent-Type: application/json\r\nContent-Length: " +
                     str(declared).encode() + b"\r\nConnection: close\r\n\r\n")
        sock.settimeout(pause)
        answer, sent = b"", 0
        # Bounded only so a broken server cannot hang the suite: pytest-timeout is the net.
        for _ in range(100_000):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if answer:
                    continue
                if sent < len(body):
                    sock.sendall(body[sent:sent + 1])
                    sent += 1
                continue
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_body_dripping_past_the_deadline_gets_408() -> None:
    app = _app(body_timeout=1.0)
    with serve(app) as base:
        # 100 bytes declared, one sent every 0.1 s: the body would take 10 s.
        answer = _drip(base, b" " * 100, declared=100, pause=0.1)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert "did not arrive within 1 seconds" in json.loads(body)["error"]
    assert app.monitor.alerts.silences.list() == []


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_a_slow_body_within_the_deadline_is_taken() -> None:
    app = _app(body_timeout=30.0)
    with serve(app) as base:
        answer = _drip(base, SILENCE, declared=len(SILENCE), pause=0.01)
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]
    [silence] = app.monitor.alerts.silences.list()
    assert silence.matchers == {"alertname": "high_error_rate"}
