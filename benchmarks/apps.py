"""The apps the speed harness drives: app shapes, bare or wrapped by each middleware.

Three Starlette shapes answer 4 bytes of plain text, so that what a middleware adds is as large a
share of the request as it can be; the ``fastapi`` shape is what an API request looks like: a
FastAPI route with a typed path parameter and a pydantic response model of about 1 KB of JSON.

Every variant gets a fresh app, because two of the peers add themselves with
``app.add_middleware`` (their documented usage), which must happen before the app first runs.
The peers and FastAPI are imported inside their builders, so the bare and ``asgi_monitor``
variants of the Starlette shapes need only this package and Starlette.

``uvicorn_app`` is the factory the uvicorn measurement serves:
``BENCH_VARIANT=asgi_monitor uvicorn apps:uvicorn_app --factory --app-dir benchmarks``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

__all__ = ["FLOORS", "SHAPES", "STARLETTE_SHAPES", "VARIANTS", "Built", "Shape", "build",
           "fastapi_app", "starlette_app", "uvicorn_app"]


@dataclass(frozen=True)
class Shape:
    """An app layout and the request the harness sends to it."""

    key: str
    description: str
    path: str  # what the harness requests
    template: str  # the route label every middleware should record for it


SHAPES: dict[str, Shape] = {
    s.key: s
    for s in (
        Shape("2routes", "2 routes, request to the 2nd", "/items/42", "/items/{item_id}"),
        Shape("52routes", "52 routes, request to the 52nd", "/items/42", "/items/{item_id}"),
        Shape("mounted", "route inside Mount('/api/v1')", "/api/v1/items/42",
              "/api/v1/items/{item_id}"),
        Shape("fastapi", "FastAPI, path parameter, ~1 KB pydantic JSON", "/items/42",
              "/items/{item_id}"),
    )
}
# The 4-byte Starlette shapes; ``fastapi`` is the realistic one.
STARLETTE_SHAPES = ("2routes", "52routes", "mounted")


async def _home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


async def _item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


def _routes(shape: Shape) -> Sequence[BaseRoute]:
    last = Route("/items/{item_id}", _item)
    if shape.key == "2routes":
        return [Route("/", _home), last]
    if shape.key == "52routes":
        # Parameterised fillers: each is a real regex the router tries before the last route.
        fillers = [Route(f"/section{i}/{{item_id}}", _item) for i in range(50)]
        return [Route("/", _home), *fillers, last]
    if shape.key == "mounted":
        return [Route("/", _home),
                Mount("/api/v1", routes=[Route("/users/{user_id}", _item), last])]
    raise ValueError(f"unknown shape {shape.key!r}; choose one of {sorted(SHAPES)}")


def starlette_app(shape: Shape) -> Starlette:
    """A fresh, unwrapped app of the given shape (a FastAPI app is a Starlette app)."""
    if shape.key == "fastapi":
        return fastapi_app()
    return Starlette(routes=_routes(shape))


def fastapi_app() -> Starlette:
    """Two routes, as the 2-route shape; ``/items/{item_id}`` validates an ``int`` path parameter
    and answers a pydantic model, serialised and validated by FastAPI (about 1 KB of JSON)."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    class Variant(BaseModel):
        sku: str
        colour: str
        size: str
        stock: int
        price_cents: int

    class Item(BaseModel):
        id: int
        name: str
        description: str
        category: str
        brand: str
        currency: str
        tags: list[str]
        rating: float
        in_stock: bool
        variants: list[Variant]

    app = FastAPI()

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}", response_model=Item)
    async def item(item_id: int) -> Item:
        # Built per request, as a handler reading a row would: the model is validated on the way
        # out by the response model, as FastAPI does for every such route.
        return Item(
            id=item_id, name=f"Item {item_id}",
            description="A sturdy everyday item, made to last, with spare parts available for "
                        "ten years and a two-year warranty.",
            category="hardware", brand="Acme Tools", currency="EUR",
            tags=["tools", "outdoor", "garden", "steel"], rating=4.6, in_stock=True,
            variants=[Variant(sku=f"SKU-{item_id}-{n:02d}", colour=colour, size=size,
                              stock=10 * n, price_cents=1999 + 100 * n)
                      for n, (colour, size) in enumerate(
                          [(c, s) for c in ("red", "green", "blue") for s in ("S", "M", "L")])],
        )

    return app


@dataclass
class Built:
    """A variant's app plus a way to ask its middleware how many requests it recorded."""

    app: ASGIApp
    # Requests recorded for the shape's route with status 200 (None for the bare app).
    recorded: Callable[[], float] | None = None
    registry: CollectorRegistry | None = None
    close: Callable[[], None] = field(default=lambda: None)
    # Async clean-up run on the harness' loop (asgi_monitor stops its background services).
    aclose: Callable[[], Awaitable[None]] | None = None


def _bare(shape: Shape) -> Built:
    return Built(starlette_app(shape))


def _asgi_monitor(shape: Shape) -> Built:
    from asgi_monitor import MonitoringMiddleware, build_monitor

    registry = CollectorRegistry()
    labels = {"method": "GET", "route": shape.template, "status": "200"}
    # Every feature on (health checks, sampler, alert rules, system collector), as a user gets
    # it: the first request starts the background services, as under a server without lifespan.
    middleware = MonitoringMiddleware(starlette_app(shape), monitor=build_monitor(None, registry))
    return Built(middleware,
                 lambda: registry.get_sample_value("http_requests_total", labels) or 0.0,
                 registry, aclose=middleware.monitor.stop)


def _starlette_exporter(shape: Shape) -> Built:
    from starlette_exporter import PrometheusMiddleware

    # starlette-exporter has no registry argument: its metrics live on the class, in the default
    # registry. A distinct app_name per shape keeps the shapes' counts apart.
    app = starlette_app(shape)
    app_name = f"bench_{shape.key}"
    app.add_middleware(PrometheusMiddleware, app_name=app_name)
    labels = {"method": "GET", "path": shape.template, "status_code": "200", "app_name": app_name}
    return Built(app, lambda: REGISTRY.get_sample_value("starlette_requests_total", labels) or 0.0,
                 REGISTRY)


def _instrumentator(shape: Shape) -> Built:
    from prometheus_fastapi_instrumentator import Instrumentator

    registry = CollectorRegistry()
    app = starlette_app(shape)
    Instrumentator(registry=registry).instrument(app)
    # Its defaults group status codes ("2xx") and label the route template as "handler".
    labels = {"method": "GET", "handler": shape.template, "status": "2xx"}
    return Built(app, lambda: registry.get_sample_value("http_requests_total", labels) or 0.0,
                 registry)


def _opentelemetry(shape: Shape) -> Built:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DiscardingExporter(SpanExporter):
        """A real export step that sends nowhere: the spans are built, batched and dropped."""

        def __init__(self) -> None:
            self.exported = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    # The SDK as a production service configures it, minus the network: every span sampled
    # (the default ParentBased(ALWAYS_ON)), batched by BatchSpanProcessor on its worker thread,
    # and metrics aggregated by the SDK and read on demand.
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    app = OpenTelemetryMiddleware(starlette_app(shape), tracer_provider=tracer_provider,
                                  meter_provider=meter_provider)

    def recorded() -> float:
        # Requests counted by the server duration histogram (old or new semantic conventions).
        data: Any = reader.get_metrics_data()
        total = 0
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name in ("http.server.duration", "http.server.request.duration"):
                        total += sum(point.count for point in metric.data.data_points)
        return float(total)

    def close() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return Built(app, recorded, None, close)


def _floor_passthrough(shape: Shape) -> Built:
    from floor import PassThrough

    return Built(PassThrough(starlette_app(shape)))


def _floor_wrapping(shape: Shape) -> Built:
    from floor import Wrapping

    return Built(Wrapping(starlette_app(shape)))


# The order of the tables. Each maps a shape to a freshly built variant. The two floor variants
# are references, not peers: middlewares that record nothing (benchmarks/floor.py).
VARIANTS: dict[str, Callable[[Shape], Built]] = {
    "bare": _bare,
    "asgi_monitor": _asgi_monitor,
    "starlette_exporter": _starlette_exporter,
    "instrumentator": _instrumentator,
    "opentelemetry": _opentelemetry,
    "floor_passthrough": _floor_passthrough,
    "floor_wrapping": _floor_wrapping,
}
FLOORS = ("floor_passthrough", "floor_wrapping")


def build(variant: str, shape: Shape) -> Built:
    try:
        builder = VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}") from None
    return builder(shape)


def uvicorn_app() -> ASGIApp:
    """uvicorn ``--factory`` entry: the variant named by BENCH_VARIANT, shape by BENCH_SHAPE."""
    shape = SHAPES[os.environ.get("BENCH_SHAPE", "2routes")]
    return build(os.environ.get("BENCH_VARIANT", "bare"), shape).app
