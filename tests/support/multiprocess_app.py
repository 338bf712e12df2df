"""The app ``integration/test_worker_servers.py`` serves with several workers (uvicorn
``--workers``, gunicorn with uvicorn workers): every route answers with the worker's pid."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware
from asgi_monitor.config import SystemSettings

# How long /slow takes: long enough that every worker has requests in progress under load.
SLOW_SECONDS = 0.2


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


async def slow(request: Request) -> Response:
    await asyncio.sleep(SLOW_SECONDS)
    return PlainTextResponse(str(os.getpid()))


app = MonitoringMiddleware(
    Starlette(routes=[Route("/ping", pid), Route("/warmup", pid), Route("/slow", slow)]),
    MonitoringConfig(system=SystemSettings(metrics=False)),
)
