"""The monitoring sub-app: a small Starlette app the middleware dispatches its own paths to."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from ..monitor import Monitor
from .metrics import metrics_endpoint

__all__ = ["build_app"]


def build_app(monitor: Monitor) -> Starlette:
    config = monitor.config
    routes = [
        Route(config.metrics_path, metrics_endpoint(monitor), methods=["GET"]),
    ]
    return Starlette(routes=routes)
