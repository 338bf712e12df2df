"""The app ``integration/test_worker_exemplars_prometheus.py`` serves with ``uvicorn --workers``:
exemplars on, one duration bucket below +Inf (so every request's exemplar lands in the same
bucket and the newest must win), and every route answers with the worker's pid."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


app = MonitoringMiddleware(
    Starlette(routes=[Route("/ping", pid), Route("/warmup", pid)]),
    MonitoringConfig(metrics=MetricsSettings(exemplars=True, duration_buckets=(10.0,)),
                     health=HealthSettings(default_checks=False),
                     system=SystemSettings(metrics=False)),
)
