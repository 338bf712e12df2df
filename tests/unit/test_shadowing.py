"""Which of an app's routes the monitoring paths hide, read from each framework's route table."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router, WebSocketRoute
from starlette.websockets import WebSocket
from support import hello

from asgi_monitor import shadowing
from asgi_monitor.config import PathSettings
from asgi_monitor.shadowing import Shadowed, app_routes, shadowed_routes, warn_shadowed_routes

if TYPE_CHECKING:
    from fastapi import FastAPI

PATHS = PathSettings()


@pytest.fixture(autouse=True)
def nothing_reported_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shadowing, "_reported", set())


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def ws(websocket: WebSocket) -> None:
    await websocket.close()


def starlette_app(**kwargs: Any) -> Starlette:
    return Starlette(routes=[
        Route("/", ok),
        Route("/api/health", ok),
        Route("/api/healthy", ok),
        Route("/api/{name}", ok),
        WebSocketRoute("/api/alerts/live", ws),
        Mount("/api/metrics", routes=[Route("/business", ok)]),
        Mount("/admin", app=Starlette(routes=[Route("/monitoring/users", ok)])),
        Mount("/static", app=hello),
    ], **kwargs)


def fastapi_app() -> FastAPI:
    # Imported here: the lowest-versions run has no FastAPI (it would pull a newer Starlette),
    # and deselects the tests marked `frameworks` that call this.
    from fastapi import APIRouter, FastAPI

    app = FastAPI()

    @app.get("/api/health")
    def health() -> str:
        return "app"

    router = APIRouter(prefix="/metrics")

    @router.get("/business")
    def business() -> str:
        return "app"

    @router.get("/")
    def listing() -> str:
        return "app"

    nested = APIRouter(prefix="/alerts")

    @nested.get("/mine")
    def mine() -> str:
        return "app"

    app.include_router(router, prefix="/api")
    outer = APIRouter()
    outer.include_router(nested)
    app.include_router(outer, prefix="/api")
    sub = FastAPI()

    @sub.get("/monitoring")
    def page() -> str:
        return "app"

    app.mount("/admin", sub)
    return app


def test_starlette_routes_mounts_and_websockets() -> None:
    assert shadowed_routes(starlette_app(), PATHS) == [
        Shadowed("/api/health", "/api/health", "health"),
        Shadowed("/api/alerts/live", "/api/alerts", "alerts"),
        Shadowed("/api/metrics/business", "/api/metrics", "metrics"),
        Shadowed("/admin/monitoring/users", "/admin/monitoring", "dashboard"),
    ]


def test_a_mount_of_an_app_without_routes_counts_as_its_path() -> None:
    app = Starlette(routes=[Mount("/api/metrics", app=hello), Mount("/api", app=hello)])
    assert app_routes(app) == ["/api/metrics", "/api"]
    assert shadowed_routes(app, PATHS) == [Shadowed("/api/metrics", "/api/metrics", "metrics")]


@pytest.mark.frameworks
def test_fastapi_routers_with_prefixes_and_a_mount() -> None:
    found = shadowed_routes(fastapi_app(), PATHS)
    assert found is not None
    assert sorted(s.route for s in found) == [
        "/admin/monitoring", "/api/alerts/mine", "/api/health", "/api/metrics/",
        "/api/metrics/business"]
    assert {s.route: s.setting for s in found}["/api/alerts/mine"] == "alerts"
    # Wrapped in middleware, as `app.add_middleware` or a hand-made stack leaves it.
    wrapped = shadowed_routes(CORSMiddleware(fastapi_app(), allow_origins=["*"]), PATHS)
    assert wrapped and Shadowed("/api/health", "/api/health", "health") in wrapped


@pytest.mark.frameworks
def test_litestar_routes_carry_their_full_paths() -> None:
    from litestar import Litestar, asgi, get
    from litestar.params import FromPath

    @get("/api/health", sync_to_thread=False)
    def health() -> str:
        return "app"

    def item(item_id: int) -> str:
        return "app"

    # The annotation as an object: this module postpones annotations, and the framework would
    # look the name up in the module, where it is not imported.
    item.__annotations__["item_id"] = FromPath[int]
    item_route = get("/items/{item_id:int}", sync_to_thread=False)(item)

    @asgi("/api/metrics/legacy", is_mount=True, copy_scope=True)
    async def legacy(scope: Any, receive: Any, send: Any) -> None:
        await hello(scope, receive, send)

    app = Litestar(route_handlers=[health, item_route, legacy], openapi_config=None)
    assert shadowed_routes(app, PATHS) == [
        Shadowed("/api/health", "/api/health", "health"),
        Shadowed("/api/metrics/legacy", "/api/metrics", "metrics"),
    ]


def test_a_raw_asgi_app_cannot_be_read() -> None:
    assert app_routes(hello) is None
    assert shadowed_routes(hello, PATHS) is None
    assert warn_shadowed_routes(hello, PATHS) == []


def test_through_middleware_wrapping_the_app() -> None:
    # Outside the app object (wrapped by hand), inside it (middleware=, add_middleware) and a
    # Router on its own.
    wrapped = GZipMiddleware(CORSMiddleware(starlette_app(), allow_origins=["*"]))
    inside = starlette_app(middleware=[Middleware(GZipMiddleware)])
    inside.add_middleware(CORSMiddleware, allow_origins=["*"])
    router = Router(routes=[Route("/api/health/deep", ok)])
    for app in (wrapped, inside):
        found = shadowed_routes(app, PATHS)
        assert found and Shadowed("/api/health", "/api/health", "health") in found
    assert shadowed_routes(router, PATHS) == [
        Shadowed("/api/health/deep", "/api/health", "health")]


def test_a_wrapper_with_a_routes_setting_of_its_own_is_walked_through() -> None:
    class Wrapper:
        def __init__(self, app: Any) -> None:
            self.app = app
            self.routes = ["/skip-me"]

    assert app_routes(Wrapper(Starlette(routes=[Route("/api/health", ok)]))) == ["/api/health"]
    assert app_routes(Starlette()) == []


def test_a_mount_of_a_wrapped_app_and_a_host() -> None:
    inner = CORSMiddleware(Starlette(routes=[Route("/summary2", ok)]), allow_origins=["*"])
    app = Starlette(routes=[
        Mount("/api/metrics", app=inner),
        Host("api.example.com", app=Router(routes=[Route("/api/health", ok)])),
    ])
    assert app_routes(app) == ["/api/metrics/summary2", "/api/health"]


def test_the_walk_is_bounded_on_a_cycle() -> None:
    class Loop:
        def __init__(self) -> None:
            self.app: Any = self
            self.router = Loop.__new__(Loop)
            self.router.app = self
            self.router.router = None

    assert app_routes(Loop()) is None


def test_a_property_that_raises_is_skipped() -> None:
    class Odd:
        @property
        def routes(self) -> list[Any]:
            raise RuntimeError("not built yet")

        app = Starlette(routes=[Route("/api/health", ok)])

    assert app_routes(Odd()) == ["/api/health"]


def test_moved_paths_are_what_is_checked() -> None:
    paths = PathSettings(health="/monitoring/health", metrics="/monitoring/metrics")
    assert shadowed_routes(starlette_app(), paths) == [
        Shadowed("/api/alerts/live", "/api/alerts", "alerts"),
        Shadowed("/admin/monitoring/users", "/admin/monitoring", "dashboard"),
    ]


def test_nested_prefixes_name_the_most_specific() -> None:
    paths = PathSettings(metrics="/api", health="/api/health")
    app = Starlette(routes=[Route("/api/health", ok), Route("/api/other", ok)])
    assert shadowed_routes(app, paths) == [Shadowed("/api/health", "/api/health", "health"),
                                           Shadowed("/api/other", "/api", "metrics")]


def test_one_warning_per_route_naming_route_prefix_and_setting(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_monitor")
    app = starlette_app()
    assert len(warn_shadowed_routes(app, PATHS)) == 4
    assert warn_shadowed_routes(app, PATHS) == []  # once per process
    assert warn_shadowed_routes(starlette_app(), PATHS) == []
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    [health] = [m for m in messages if "route /api/health " in m]
    assert "monitoring path /api/health" in health
    assert "MONITORING_HEALTH_PATH (paths.health)" in health
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_an_app_probe_under_a_probe_path_is_named_with_how_to_switch_it_off(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asgi_monitor")
    # A probe is one path, not a prefix: /readyz/db and /startup stay the app's.
    app = Starlette(routes=[Route("/livez", ok), Route("/readyz/db", ok), Route("/api/slos", ok),
                            Route("/startup", ok), Route("/readyz", ok)])
    assert shadowed_routes(app, PATHS) == [Shadowed("/livez", "/livez", "livez"),
                                           Shadowed("/api/slos", "/api/slos", "slos"),
                                           Shadowed("/readyz", "/readyz", "readyz")]
    warn_shadowed_routes(app, PATHS)
    [livez] = [r.getMessage() for r in caplog.records if "route /livez " in r.getMessage()]
    assert "MONITORING_LIVEZ_PATH (paths.livez) (`off` switches it off)" in livez
    # Switched off, the app's own probe is served and nothing is said about it.
    assert shadowed_routes(app, PathSettings(livez="", readyz="")) == [
        Shadowed("/api/slos", "/api/slos", "slos")]
