"""Request metrics recorded by the middleware: exact samples after known request sequences."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket
from support import client, sample

from asgi_monitor import (
    MonitoringConfig,
    MonitoringMiddleware,
    add_monitoring_middleware,
    build_monitor,
)
from asgi_monitor.config import MetricsSettings
from asgi_monitor.monitor import State

Wrap = Callable[..., MonitoringMiddleware]


async def ok(request: Request) -> Response:
    return PlainTextResponse("hello")


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body * 2)


async def fail(request: Request) -> Response:
    raise RuntimeError("boom")


async def stream(request: Request) -> Response:
    async def chunks() -> Any:
        for part in (b"a" * 10, b"b" * 20, b"c" * 30):
            yield part

    return StreamingResponse(chunks())


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(text.upper())
    await websocket.close()


def app() -> Starlette:
    return Starlette(routes=[
        Route("/", ok),
        Route("/items/{item_id:int}", ok),
        Route("/echo", echo, methods=["POST"]),
        Route("/fail", fail),
        Route("/stream", stream),
        WebSocketRoute("/ws/{room}", ws_echo),
    ])


async def test_exact_counts_after_known_sequence(wrap: Wrap, registry: CollectorRegistry) -> None:
    async with client(wrap(app())) as c:
        for _ in range(3):
            assert (await c.get("/")).status_code == 200
        for item in (1, 2, 3, 4):
            await c.get(f"/items/{item}")
        await c.get("/nope")
        await c.get("/also-nope")
    s = sample
    assert s(registry, "http_requests_total", method="GET", route="/", status="200") == 3
    assert s(registry, "http_requests_total", method="GET", route="/items/{item_id}",
             status="200") == 4
    assert s(registry, "http_requests_total", method="GET", route="<unmatched>",
             status="404") == 2
    assert s(registry, "http_request_duration_seconds_count", method="GET", route="/") == 3
    assert s(registry, "http_time_to_first_byte_seconds_count", method="GET", route="/") == 3
    assert s(registry, "http_requests_in_progress", method="GET") == 0


async def test_body_sizes_are_counted_from_bytes(wrap: Wrap, registry: CollectorRegistry) -> None:
    async with client(wrap(app())) as c:
        r = await c.post("/echo", content=b"x" * 1500)
        assert r.content == b"x" * 3000
        await c.get("/stream")
    assert sample(registry, "http_request_size_bytes_sum", method="POST", route="/echo") == 1500
    assert sample(registry, "http_response_size_bytes_sum", method="POST", route="/echo") == 3000
    assert sample(registry, "http_response_size_bytes_sum", method="GET", route="/stream") == 60
    assert sample(registry, "http_response_size_bytes_bucket", method="GET", route="/stream",
                  le="100.0") == 1


async def test_exception_recorded_as_500_and_reraised(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    async with client(wrap(app())) as c:
        with pytest.raises(RuntimeError, match="boom"):
            await c.get("/fail")
    assert sample(registry, "http_requests_total", method="GET", route="/fail",
                  status="500") == 1
    assert sample(registry, "http_requests_in_progress", method="GET") == 0


async def test_exception_after_response_start_keeps_sent_status(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    async def late_failure(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("late")

    mw = wrap(late_failure)
    with pytest.raises(ValueError, match="late"):
        await mw(_scope("/x"), _receive_once(), _discard)
    assert sample(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="201") == 1


async def test_client_disconnect_recorded_as_499(wrap: Wrap, registry: CollectorRegistry) -> None:
    async def waits_for_disconnect(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    messages = [{"type": "http.request", "body": b"", "more_body": True},
                {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    await wrap(waits_for_disconnect)(_scope("/x"), receive, _discard)
    assert sample(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="499") == 1


async def test_cancellation_recorded_as_499(wrap: Wrap, registry: CollectorRegistry) -> None:
    started = asyncio.Event()

    async def hangs(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.ensure_future(wrap(hangs)(_scope("/x"), _receive_once(), _discard))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sample(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="499") == 1
    assert sample(registry, "http_requests_in_progress", method="GET") == 0


async def test_unknown_methods_collapse_to_other(wrap: Wrap, registry: CollectorRegistry) -> None:
    async with client(wrap(app())) as c:
        await c.request("BREW", "/")
        await c.request("PROPFIND", "/")
    assert sample(registry, "http_requests_total", method="OTHER", route="/",
                  status="405") == 2


async def test_excluded_paths_are_not_recorded(wrap: Wrap, registry: CollectorRegistry) -> None:
    async with client(wrap(app(), metrics=MetricsSettings(excluded_paths=("/",)))) as c:
        assert (await c.get("/")).text == "hello"
        await c.get("/items/1")
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") is None
    assert sample(registry, "http_requests_total", method="GET", route="/items/{item_id}",
                  status="200") == 1


async def test_monitoring_paths_are_not_app_traffic(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    async with client(wrap(app())) as c:
        for _ in range(3):
            assert (await c.get("/api/metrics")).status_code == 200
    text = (await _scrape(registry))
    assert "/api/metrics" not in text


async def test_disabled_is_a_pass_through(registry: CollectorRegistry) -> None:
    mw = MonitoringMiddleware(
        app(), monitor=build_monitor(MonitoringConfig(enabled=False), registry))
    async with client(mw) as c:
        assert (await c.get("/")).text == "hello"
        assert (await c.get("/api/metrics")).status_code == 404  # the app's own 404
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") is None


class _NotADict:
    """A mapping that is not a dict: what a non-conforming server or app might hand over."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self) -> Any:
        return self._data.keys()

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


async def test_a_scope_that_is_not_a_dict_passes_through_unrecorded(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    # ASGI scopes are dicts and the hot path relies on it; anything else is served untouched.
    seen: list[Any] = []

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = wrap(raw)
    scope = _NotADict(_scope("/items"))
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await mw(scope, _receive_once(), send)
    assert seen == [scope]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sample(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="200") is None


async def test_messages_that_are_not_dicts_are_still_recorded(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send(_NotADict({"type": "http.response.start", "status": 201, "headers": []}))
        await send(_NotADict({"type": "http.response.body", "body": b"made"}))

    mw = wrap(raw)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await mw(_scope("/things", method="POST"), _receive_once(), send)
    assert all(isinstance(m, _NotADict) for m in sent)  # what the server gets is unchanged
    assert sample(registry, "http_requests_total", method="POST", route="<unmatched>",
                  status="201") == 1
    assert sample(registry, "http_response_size_bytes_sum", method="POST",
                  route="<unmatched>") == 4


async def test_namespace_prefixes_metric_names(wrap: Wrap, registry: CollectorRegistry) -> None:
    async with client(wrap(app(), metrics=MetricsSettings(namespace="shop"))) as c:
        await c.get("/")
    assert sample(registry, "shop_http_requests_total", method="GET", route="/",
                  status="200") == 1


async def test_series_cap_sends_new_label_sets_to_overflow(
    registry: CollectorRegistry
) -> None:
    def resolver(scope: Any) -> str:
        return str(scope["path"])  # deliberately unbounded, to hit the cap

    config = MonitoringConfig(metrics=MetricsSettings(max_series=5, route_resolver=resolver))
    mw = MonitoringMiddleware(_plain_app, monitor=build_monitor(config, registry))
    for i in range(20):
        await mw(_scope(f"/p{i}"), _receive_once(), _discard)
    assert sample(registry, "http_requests_total", method="GET", route="<overflow>",
                  status="200") == 15
    assert sample(registry, "asgi_monitor_series_dropped_total",
                  metric="http_requests_total") == 15


async def test_ten_thousand_junk_paths_add_one_series(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    mw = wrap(app())
    before = _series_count(registry)
    for i in range(10_000):
        await mw(_scope(f"/junk/{i}/{'x' * (i % 50)}"), _receive_once(), _discard)
    # one http_requests_total series (+ the four histograms of the same label set)
    assert _series_count(registry) - before == 1
    assert sample(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="404") == 10_000


def test_websocket_metrics_and_messages_pass_through(registry: CollectorRegistry) -> None:
    mw = MonitoringMiddleware(app(), monitor=build_monitor(MonitoringConfig(), registry))
    with TestClient(mw) as tc, tc.websocket_connect("/ws/lobby") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "HI"
    assert sample(registry, "websocket_connections_total", route="/ws/{room}") == 1
    assert sample(registry, "websocket_connections_active") == 0
    assert sample(registry, "websocket_session_duration_seconds_count", route="/ws/{room}") == 1


async def test_other_scope_types_pass_through_untouched(wrap: Wrap) -> None:
    seen: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    scope = {"type": "custom-protocol", "path": "/api/metrics"}
    await wrap(inner)(scope, _receive_once, _discard)
    assert seen == [(scope, _receive_once, _discard)]


async def test_lifespan_passes_through_and_starts_the_monitor(wrap: Wrap) -> None:
    events: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    mw = wrap(inner)
    incoming = asyncio.Queue[dict[str, Any]]()
    outgoing: list[str] = []
    await incoming.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        outgoing.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            assert mw.monitor.state is State.RUNNING and mw.monitor.ready
            await incoming.put({"type": "lifespan.shutdown"})

    await mw({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send)
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert outgoing == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert mw.monitor.state is State.STOPPED and not mw.monitor.ready


async def test_starts_lazily_without_lifespan(wrap: Wrap) -> None:
    mw = wrap(app())
    assert mw.monitor.state is State.CREATED
    async with client(mw) as c:
        await c.get("/")
    assert mw.monitor.state is State.RUNNING
    await mw.monitor.stop()


async def test_running_context_starts_and_stops_services(wrap: Wrap) -> None:
    mw = wrap(app())
    ticks: list[int] = []

    async def service() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    mw.monitor.add_service("ticker", service)
    async with mw.monitor.running():
        await asyncio.sleep(0.05)
        assert mw.monitor.task_names == ["alert_channels", "alerts", "health", "sampler", "ticker"]
    assert ticks and mw.monitor.task_names == []


async def test_failure_inside_recording_never_changes_the_response(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    # A third-party router whose route object fails when asked for its template: the failure
    # happens inside recording (label resolution), in the pure-Python and the compiled build
    # alike (a compiled store cannot be monkeypatched).
    class ExplodingRoute:
        @property
        def path_format(self) -> str:
            raise RuntimeError("router exploded")

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = ExplodingRoute()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello"})

    mw = wrap(routed)
    async with client(mw) as c:
        r = await c.get("/")
    assert (r.status_code, r.text) == (200, "hello")
    assert sample(registry, "asgi_monitor_internal_errors_total", where="record") == 1
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") is None


# -- helpers ----------------------------------------------------------------------------------
def _scope(path: str, method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [], "client": ("127.0.0.1", 1234),
            "server": ("test", 80)}


def _receive_once() -> Callable[[], Any]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


async def _discard(message: Any) -> None:
    return None


async def _plain_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _series_count(registry: CollectorRegistry) -> int:
    return sum(1 for m in registry.collect() for s in m.samples
               if s.name == "http_requests_total")


async def _scrape(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


async def test_excluded_path_prefixes_end_with_a_star(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    mw = wrap(app(), metrics=MetricsSettings(excluded_paths=("/items/*", "/echo")))
    async with client(mw) as c:
        assert (await c.get("/items/1")).text == "hello"
        await c.post("/echo", content=b"x")
        await c.get("/")
        await c.get("/items")  # the prefix is "/items/": "/items" itself is recorded
    assert sample(registry, "http_requests_total", method="GET", route="/items/{item_id}",
                  status="200") is None
    assert sample(registry, "http_requests_total", method="POST", route="/echo",
                  status="200") is None
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") == 1
    assert sample(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="404") == 1


async def test_excluded_pattern_is_searched_in_the_path(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    mw = wrap(app(), metrics=MetricsSettings(excluded_pattern=r"^/items/\d+$|stream"))
    async with client(mw) as c:
        await c.get("/items/12")
        await c.get("/stream")
        await c.get("/")
    assert sample(registry, "http_requests_total", method="GET", route="/items/{item_id}",
                  status="200") is None
    assert sample(registry, "http_requests_total", method="GET", route="/stream",
                  status="200") is None
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") == 1


def test_excluded_prefix_and_pattern_apply_to_websockets(registry: CollectorRegistry) -> None:
    config = MonitoringConfig(metrics=MetricsSettings(excluded_paths=("/ws/*",)))
    mw = MonitoringMiddleware(app(), monitor=build_monitor(config, registry))
    with TestClient(mw) as tc, tc.websocket_connect("/ws/lobby") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "HI"
    assert sample(registry, "websocket_connections_total", route="/ws/{room}") is None


async def test_skipped_methods_are_not_recorded(wrap: Wrap, registry: CollectorRegistry) -> None:
    mw = wrap(app(), metrics=MetricsSettings(skip_methods=("OPTIONS", "HEAD")))
    async with client(mw) as c:
        await c.options("/")
        await c.head("/")
        await c.get("/")
    assert sample(registry, "http_requests_total", method="OPTIONS", route="/",
                  status="405") is None
    assert sample(registry, "http_requests_total", method="HEAD", route="/",
                  status="200") is None
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200") == 1


async def test_constant_labels_are_on_every_request_series(
    wrap: Wrap, registry: CollectorRegistry
) -> None:
    mw = wrap(app(), metrics=MetricsSettings(constant_labels={"service": "shop", "env": "prod"}))
    async with client(mw) as c:
        await c.get("/")
    const = {"service": "shop", "env": "prod"}
    assert sample(registry, "http_requests_total", method="GET", route="/", status="200",
                  **const) == 1
    assert sample(registry, "http_request_duration_seconds_count", method="GET", route="/",
                  **const) == 1
    assert sample(registry, "http_requests_in_progress", method="GET", **const) == 0
    assert sample(registry, "websocket_connections_active", **const) == 0
    # The same series, with the labels: the cap counts them once, as without.
    assert sample(registry, "http_requests_total", method="GET", route="/",
                  status="200") is None


async def test_constant_labels_add_no_series_against_the_cap(registry: CollectorRegistry) -> None:
    def resolver(scope: Any) -> str:
        return str(scope["path"])

    config = MonitoringConfig(metrics=MetricsSettings(
        max_series=5, route_resolver=resolver, constant_labels=(("service", "shop"),)))
    mw = MonitoringMiddleware(_plain_app, monitor=build_monitor(config, registry))
    for i in range(8):
        await mw(_scope(f"/p{i}"), _receive_once(), _discard)
    assert sample(registry, "http_requests_total", method="GET", route="<overflow>",
                  status="200", service="shop") == 3


@pytest.mark.parametrize("framework", ["starlette",
                                       pytest.param("fastapi", marks=pytest.mark.frameworks)])
async def test_add_monitoring_middleware_on_apps_with_add_middleware(
    framework: str, registry: CollectorRegistry
) -> None:
    if framework == "starlette":
        target: Any = app()
    else:
        from fastapi import FastAPI

        target = FastAPI()

        @target.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, int]:
            return {"item_id": item_id}

    monitor = build_monitor(MonitoringConfig(), registry)
    assert add_monitoring_middleware(target, monitor=monitor) is target
    async with client(target) as c:
        assert (await c.get("/items/7")).status_code == 200
        assert (await c.get("/api/metrics")).status_code == 200
    route = "/items/{item_id}"
    assert sample(registry, "http_requests_total", method="GET", route=route, status="200") == 1


def test_add_monitoring_middleware_says_how_to_wrap_other_apps() -> None:
    with pytest.raises(TypeError, match=r"MonitoringMiddleware\(app, config\)"):
        add_monitoring_middleware(_plain_app)
