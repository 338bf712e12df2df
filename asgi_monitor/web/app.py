"""The monitoring sub-app: a small Starlette app the middleware dispatches its own paths to.

Every endpoint is declared once as an :class:`Endpoint` with its access level; the sub-app is
built from that list, so a new endpoint only says "admin" or "public" and the gate (one place)
decides what that means.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..monitor import Monitor
from .health import HealthEndpoints
from .metrics import metrics_endpoint

__all__ = ["Access", "Endpoint", "build_app", "endpoints"]

# "public": anyone (health probes). "metrics": public unless the metrics token or network
# allowlist is configured. "admin": denied until admin credentials are configured.
Access = Literal["public", "metrics", "admin"]
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    path: str
    handler: Handler
    methods: tuple[str, ...] = ("GET",)
    access: Access = "admin"


def endpoints(monitor: Monitor) -> list[Endpoint]:
    """Every endpoint of the sub-app, with its access level."""
    config = monitor.config
    health = HealthEndpoints(monitor)
    hp = config.health_path
    return [
        Endpoint(config.metrics_path, metrics_endpoint(monitor), access="metrics"),
        Endpoint(hp, health.overall, access="public"),
        # The probes come before {name} so they win the match; no check may be named so.
        Endpoint(f"{hp}/live", health.live, access="public"),
        Endpoint(f"{hp}/ready", health.ready, access="public"),
        Endpoint(f"{hp}/{{name}}", health.one, access="public"),
        Endpoint(f"{hp}/{{name}}/run", health.run, methods=("POST",), access="admin"),
    ]


def build_app(monitor: Monitor) -> Starlette:
    routes = [Route(e.path, e.handler, methods=list(e.methods)) for e in endpoints(monitor)]
    return Starlette(routes=routes)
