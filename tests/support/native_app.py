"""The app ``integration/test_native_histograms_prometheus.py`` serves with ``uvicorn --workers``:
native histograms on; ``/sleep?s=0.1`` sleeps that long and answers with the worker's pid."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware
from asgi_monitor.config import HealthSettings, MetricsSettings, SystemSettings


async def sleep(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "0")))
    return PlainTextResponse(str(os.getpid()))


app = MonitoringMiddleware(
    Starlette(routes=[Route("/sleep", sleep), Route("/warmup", sleep)]),
    MonitoringConfig(metrics=MetricsSettings(native_histograms=True),
                     health=HealthSettings(default_checks=False),
                     system=SystemSettings(metrics=False)),
)
