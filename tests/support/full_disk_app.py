"""The app ``integration/test_full_disk.py`` serves with ``uvicorn --workers 2`` under a file
size limit: ``/status/{code}`` answers with that status (a new series per method and status),
``/ping`` with the worker's pid."""

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


async def status(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()), status_code=int(request.path_params["code"]))


app = MonitoringMiddleware(
    Starlette(routes=[
        Route("/ping", pid),
        Route("/status/{code}", status,
              methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])]),
    MonitoringConfig(system=SystemSettings(metrics=False)),
)
