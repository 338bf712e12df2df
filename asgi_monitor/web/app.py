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
    return [
        Endpoint(config.metrics_path, metrics_endpoint(monitor), access="metrics"),
    ]


def build_app(monitor: Monitor) -> Starlette:
    routes = [Route(e.path, e.handler, methods=list(e.methods)) for e in endpoints(monitor)]
    return Starlette(routes=routes)
