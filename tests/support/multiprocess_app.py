"""The app ``integration/test_uvicorn_workers.py`` serves with ``uvicorn --workers 2``: it
answers with its pid."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware
from asgi_monitor.config import SystemSettings


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


app = MonitoringMiddleware(
    Starlette(routes=[Route("/ping", pid), Route("/warmup", pid)]),
    MonitoringConfig(system=SystemSettings(metrics=False)),
)
