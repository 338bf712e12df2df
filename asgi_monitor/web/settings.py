"""``GET {dashboard_path}/config``: the effective configuration, secrets masked (admin only).

Built from :meth:`MonitoringConfig.public_dict`, the same masked view the logs and the CLI use, so
a token or password can only ever show up here as ``**********``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from .parts import MonitorParts
from .responses import json_response

__all__ = ["config_endpoint"]


def config_endpoint(monitor: MonitorParts) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return json_response(monitor.config.public_dict())

    return endpoint
