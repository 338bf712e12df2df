"""The app ``integration/test_request_labels_servers.py`` serves: request labels from the
environment (``MONITORING_HEADER_LABELS``) and, in code, one from the response's ``X-Cache``
header and one from ``scope["state"]`` as an auth middleware sets it."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware
from asgi_monitor.config.labels import ResponseHeader, ScopeValue


async def item(request: Request) -> Response:
    request.state.plan = "pro" if request.headers.get("authorization") else "free"
    return PlainTextResponse(str(os.getpid()),
                             headers={"X-Cache": request.query_params.get("cache", "MISS")})


app = MonitoringMiddleware(
    Starlette(routes=[Route("/items/{n}", item), Route("/warmup", item)]),
    MonitoringConfig.from_env(metrics={"request_labels": {
        "cache": ResponseHeader("X-Cache", allowed=("HIT", "MISS")),
        "plan": ScopeValue("state", "plan")}}),
)
