"""An example app to try asgi_monitor on: a few routes, a mounted sub-app, a slow and a failing one.

Run it with ``make demo`` (or ``python -m asgi_monitor demo``), then open
http://127.0.0.1:8000/api/metrics.
"""

from __future__ import annotations

import asyncio
import random

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from ..config import MonitoringConfig
from ..middleware import MonitoringMiddleware

__all__ = ["create_app"]


async def home(request: Request) -> Response:
    return PlainTextResponse(
        "asgi_monitor demo\n\nTry /api/metrics, /items/42, /slow, /error, /shop/orders/7\n")


async def item(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["item_id"]})


async def slow(request: Request) -> Response:
    await asyncio.sleep(random.uniform(0.2, 1.2))
    return PlainTextResponse("slow but fine\n")


async def error(request: Request) -> Response:
    raise RuntimeError("demo failure: this endpoint always fails")


async def order(request: Request) -> Response:
    return JSONResponse({"order": request.path_params["order_id"], "status": "shipped"})


shop = Starlette(routes=[Route("/orders/{order_id:int}", order)])


def create_app(config: MonitoringConfig | None = None) -> MonitoringMiddleware:
    app = Starlette(routes=[
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/slow", slow),
        Route("/error", error),
        Mount("/shop", shop),
    ])
    return MonitoringMiddleware(app, config)
