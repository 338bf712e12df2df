"""The app ``integration/test_metrics_port.py`` serves with ``uvicorn --workers 4`` beside
``asgi-monitor serve-metrics``: configured from the environment, as the sidecar is, and every
route answers with the worker's pid."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


app = MonitoringMiddleware(Starlette(routes=[Route("/ping", pid), Route("/warmup", pid)]),
                           MonitoringConfig.from_env())
