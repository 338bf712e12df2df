"""The hostile-input tests' setup: configurations, a monitored app and one raw ASGI request.

Requests are raw ASGI scopes, so they can hold what httpx refuses to build (bytes that are not
UTF-8 in a header or the query string, NUL and CR/LF in header values, made-up methods).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from prometheus_client import CollectorRegistry

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings
from asgi_monitor.health import HealthCheck, HealthStatus

TOKEN = "hostile-admin-token-0123456789"
METRICS_TOKEN = "hostile-metrics-token-0123456789"
XSS = "</script><script>alert(1)</script><img src=x onerror=alert(2)>\"'&\n\\"

CONFIGS = {
    "no_admin": MonitoringConfig(gate=GateSettings(rate_limit_per_second=0)),
    "token": MonitoringConfig(gate=GateSettings(admin_token=TOKEN, rate_limit_per_second=0)),
    "basic_and_metrics_token": MonitoringConfig(
        gate=GateSettings(
            admin_username="admin",
            admin_password="pw-0123456789",
            metrics_token=METRICS_TOKEN,
            rate_limit_per_second=0))}
async def answering_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def monitored(config: MonitoringConfig) -> MonitoringMiddleware:
    mw = MonitoringMiddleware(answering_app, monitor=build_monitor(config, CollectorRegistry()))
    health = mw.monitor.health
    health.register_check("xss", "", lambda: HealthCheck("xss", HealthStatus.WARNING, XSS))
    health.register_check("down", "", lambda: False)
    asyncio.run(health.run_all())
    return mw


_clients = itertools.count()


def next_client() -> tuple[str, int]:
    # A new address per request, so lock-outs after "failed logins" do not hide the endpoints.
    i = next(_clients)
    return (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 40000)


async def call(
    mw: Any,
    path: str,
    *,
    method: str = "GET",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: list[bytes] | None = None,
    client: Any = "auto",
    raw_path: bytes | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One raw ASGI request; (status, headers, body). Raises if the middleware raised."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path,
             "raw_path": path.encode("utf-8") if raw_path is None else raw_path,
             "root_path": "", "query_string": query,
             "headers": [(b"host", b"test"), *(headers or [])],
             "client": next_client() if client == "auto" else client, "server": ("test", 80)}
    chunks = list(body or [b""])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            part = chunks.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw(scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start.get("headers", [])), content
