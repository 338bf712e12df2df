"""The SLOs API (admin): per SLO, the SLI and burn rate over each window kept, the error
budget left over the part of the period this process holds, and the burn rates' recent history
(over the dashboard's chart span) that the dashboard draws."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .parts import MonitorParts
from .responses import json_response

__all__ = ["slos_endpoint", "slos_view"]


def slos_view(monitor: MonitorParts) -> list[dict[str, Any]]:
    """Each SLO's summary, with ``history``: its alerts' windows' burn rates over the span the
    dashboard's other charts show."""
    tracker = monitor.slos
    if tracker is None:
        return []
    out = tracker.summary()
    for item in out:
        item["history"] = tracker.burn_history(item["name"], monitor.history.retention_seconds)
    return out


def slos_endpoint(monitor: MonitorParts) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        tracker = monitor.slos
        if tracker is None:
            return json_response({"slos": [], "retention_seconds": 0,
                                  "in_process_alerts": False})
        return json_response({"slos": slos_view(monitor),
                              "retention_seconds": tracker.retention_seconds,
                              "in_process_alerts": monitor.config.slo.in_process})

    return endpoint
