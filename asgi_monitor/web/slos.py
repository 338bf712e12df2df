"""The SLOs API (admin): per SLO, the SLI and burn rate over each window kept, and the error
budget left over the part of the period this process holds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..monitor import Monitor
from .responses import json_response

__all__ = ["slos_endpoint"]


def slos_endpoint(monitor: Monitor) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        tracker = monitor.slos
        if tracker is None:
            return json_response({"slos": [], "retention_seconds": 0,
                                  "in_process_alerts": False})
        return json_response({"slos": tracker.summary(),
                              "retention_seconds": tracker.retention_seconds,
                              "in_process_alerts": monitor.config.slo.in_process})

    return endpoint
