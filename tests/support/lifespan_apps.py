"""Apps for uvicorn to serve in ``integration/test_lifespan_shapes.py`` and
``integration/test_root_path.py``, one per lifespan shape:
``python -m uvicorn lifespan_apps:NAME --app-dir tests/support [--lifespan off] [--root-path P]``.

Each is wrapped in the middleware with a monitor of its own, one readiness check that always
passes (so the probes depend on the lifecycle alone) and the admin token below.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings, HealthSettings

ADMIN_TOKEN = "lifespan-apps-admin-token-0123456789"


def _monitored(app: Any) -> MonitoringMiddleware:
    config = MonitoringConfig(health=HealthSettings(default_checks=False),
                              gate=GateSettings(admin_token=ADMIN_TOKEN))
    middleware = MonitoringMiddleware(app, monitor=build_monitor(config, CollectorRegistry()))
    middleware.monitor.health.register_check("app", "always passes", lambda: True,
                                             groups=("readiness",))
    return middleware


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


# Supports lifespan (Starlette's): served with --lifespan off, or under a root path.
starlette = _monitored(Starlette(routes=[Route("/", _ok), Route("/items/{item_id}", _ok)]))


async def _django_like(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        # Django's ASGIHandler does the same.
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
    await PlainTextResponse("ok")(scope, receive, send)


refuses_lifespan = _monitored(_django_like)


@contextlib.asynccontextmanager
async def _database_down(app: Starlette) -> AsyncIterator[None]:
    raise RuntimeError("database unreachable")
    yield  # pragma: no cover


# Starlette answers lifespan.startup.failed and raises.
startup_fails = _monitored(Starlette(routes=[Route("/", _ok)], lifespan=_database_down))
