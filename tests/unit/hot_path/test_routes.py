"""Route labels are templates for every supported framework, never raw paths."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from litestar import Litestar, get
from litestar.params import FromPath
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from support import client, sample

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import MetricsSettings


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def routes_seen(registry: CollectorRegistry) -> set[str]:
    return {s.labels["route"] for m in registry.collect() for s in m.samples
            if s.name == "http_requests_total"}


async def test_starlette_routes_and_nested_mounts(registry: CollectorRegistry) -> None:
    v1 = Starlette(routes=[Route("/users/{user_id:int}/orders/{order_id}", ok)])
    app = Starlette(routes=[
        Route("/", ok),
        Mount("/api", routes=[Mount("/v1", v1), Route("/status", ok)]),
    ])
    mw = MonitoringMiddleware(app, monitor=build_monitor(None, registry))
    async with client(mw) as c:
        await c.get("/")
        await c.get("/api/v1/users/7/orders/abc")
        await c.get("/api/v1/users/8/orders/def")
        await c.get("/api/status")
    assert routes_seen(registry) == {"/", "/api/v1/users/{user_id}/orders/{order_id}",
                                     "/api/status"}
    assert sample(registry, "http_requests_total", method="GET",
                  route="/api/v1/users/{user_id}/orders/{order_id}", status="200") == 2


async def test_starlette_under_a_server_root_path(registry: CollectorRegistry) -> None:
    # Behind a proxy that strips /proxy, the server sets root_path; only the app's own Mounts
    # count in the label.
    app = Starlette(routes=[Mount("/api", routes=[Route("/items/{i}", ok)])])
    mw = MonitoringMiddleware(app, monitor=build_monitor(None, registry))
    async with client(mw, ) as c:
        c._transport.root_path = "/proxy"  # type: ignore[attr-defined]
        r = await c.get("/proxy/api/items/1")
        assert r.status_code == 200
    assert routes_seen(registry) == {"/api/items/{i}"}


async def test_mount_of_a_non_router_app_is_one_series(registry: CollectorRegistry) -> None:
    async def files(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("file")(scope, receive, send)

    app = Starlette(routes=[Mount("/static", app=files)])
    mw = MonitoringMiddleware(app, monitor=build_monitor(None, registry))
    async with client(mw) as c:
        for name in ("a.css", "b/c.js", "d.png"):
            await c.get(f"/static/{name}")
    assert routes_seen(registry) == {"/static/{path}"}


async def test_fastapi_include_router_prefixes(registry: CollectorRegistry) -> None:
    items = APIRouter()

    @items.get("/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    api = APIRouter()
    api.include_router(items, prefix="/items")
    app = FastAPI()
    app.include_router(api, prefix="/api/v2")

    @app.get("/health/{part}")
    async def health(part: str) -> dict[str, str]:
        return {"part": part}

    mw = MonitoringMiddleware(app, monitor=build_monitor(None, registry))
    async with client(mw) as c:
        assert (await c.get("/api/v2/items/5")).json() == {"id": 5}
        await c.get("/api/v2/items/6")
        await c.get("/health/db")
        await c.get("/api/v2/items/not-a-number")  # 422, same route
    assert sample(registry, "http_requests_total", method="GET",
                  route="/api/v2/items/{item_id}", status="200") == 2
    assert sample(registry, "http_requests_total", method="GET",
                  route="/api/v2/items/{item_id}", status="422") == 1
    assert routes_seen(registry) == {"/api/v2/items/{item_id}", "/health/{part}"}


async def test_litestar_path_template(registry: CollectorRegistry) -> None:
    @get("/books/{book_id:int}")
    async def book(book_id: FromPath[int]) -> dict[str, int]:
        return {"id": book_id}

    mw = MonitoringMiddleware(Litestar([book]), monitor=build_monitor(None, registry))
    async with client(mw) as c:
        await c.get("/books/1")
        await c.get("/books/2")
    assert sample(registry, "http_requests_total", method="GET", route="/books/{book_id}",
                  status="200") == 2


async def test_raw_asgi_app_with_resolver(registry: CollectorRegistry) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("raw")(scope, receive, send)

    def resolver(scope: Any) -> str | None:
        parts = scope["path"].split("/")
        return "/users/{id}" if len(parts) == 3 and parts[1] == "users" else None

    mw = MonitoringMiddleware(
        raw,
        monitor=build_monitor(
            MonitoringConfig(metrics=MetricsSettings(route_resolver=resolver)), registry))
    async with client(mw) as c:
        await c.get("/users/1")
        await c.get("/users/2")
        await c.get("/elsewhere")
    assert routes_seen(registry) == {"/users/{id}", "<unmatched>"}
    assert sample(registry, "http_requests_total", method="GET", route="/users/{id}",
                  status="200") == 2


async def test_raw_asgi_app_without_resolver_is_unmatched(registry: CollectorRegistry) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("raw")(scope, receive, send)

    mw = MonitoringMiddleware(raw, monitor=build_monitor(None, registry))
    async with client(mw) as c:
        for i in range(50):
            await c.get(f"/anything/{i}")
    assert routes_seen(registry) == {"<unmatched>"}
