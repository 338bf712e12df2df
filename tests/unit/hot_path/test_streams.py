"""Streams do not poison latency.

- A response is a stream when its content type is ``text/event-stream`` (parameters and header
  name case aside), read at its first body chunk with more to follow, or when its route is
  declared in ``metrics.stream_routes`` (a template, or a prefix ending with ``*``).
- A stream's request duration is its time to first byte; its lifetime goes to
  ``http_stream_duration_seconds``; ``http_streams_open`` counts it while it is open.
- The in-progress gauge ends at the last body chunk, not after what the app does next
  (background tasks); the open-streams gauge when the app's call ends. Both are moved back
  exactly once on every path (completion, exception, cancellation, disconnect, a failed send).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from support import sample

from asgi_monitor import MonitoringMiddleware
from asgi_monitor.config import MetricsSettings
from asgi_monitor.middleware import is_event_stream

Wrap = Callable[..., MonitoringMiddleware]
Message = dict[str, Any]
PAUSE = 0.05


def _start(content_type: bytes | None, name: bytes = b"content-type") -> Message:
    headers = [] if content_type is None else [(name, content_type)]
    return {"type": "http.response.start", "status": 200, "headers": headers}


def _scope(path: str = "/x", method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": [],
            "client": ("127.0.0.1", 1234), "server": ("test", 80)}


class Server:
    """Hands out one request then, once ``gone`` is set, http.disconnect; keeps what was sent.
    ``fail_from``: sends from that message on raise, as uvicorn's do once the client left."""

    def __init__(self, fail_from: int | None = None) -> None:
        self.first = True
        self.gone = asyncio.Event()
        self.fail_from = fail_from
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.first:
            self.first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.fail_from is not None and len(self.sent) >= self.fail_from:
            raise ConnectionResetError("the client went away")
        self.sent.append(message)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sample(registry, name, **labels) or 0.0


def _lifetimes(registry: CollectorRegistry, route: str = "<unmatched>") -> tuple[float, float]:
    return (_value(registry, "http_stream_duration_seconds_count", method="GET", route=route),
            _value(registry, "http_stream_duration_seconds_sum", method="GET", route=route))


def _durations(registry: CollectorRegistry, route: str = "<unmatched>") -> tuple[float, float]:
    """(request duration sum, time to first byte sum) of the route's GETs."""
    return (_value(registry, "http_request_duration_seconds_sum", method="GET", route=route),
            _value(registry, "http_time_to_first_byte_seconds_sum", method="GET", route=route))


def _open(registry: CollectorRegistry) -> float:
    return _value(registry, "http_streams_open")


def _in_progress(registry: CollectorRegistry) -> float:
    return _value(registry, "http_requests_in_progress", method="GET")


def _chunked(start: Message) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(start)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await asyncio.sleep(PAUSE)
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})
    return app


# -- detection ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("headers", "expected"), [
    ([(b"content-type", b"text/event-stream")], True),
    ([(b"Content-Type", b"text/event-stream; charset=utf-8")], True),
    ([(b"CONTENT-TYPE", b"Text/Event-Stream ;charset=utf-8")], True),
    ([(b"x-other", b"1"), [b"content-type", b"text/event-stream"]], True),
    ([(b"content-type", b"text/plain")], False),
    ([(b"content-type", b"application/x-ndjson")], False),
    ([(b"x-content-type", b"text/event-stream")], False),
    ([], False),
    (None, False),
])
def test_the_content_type_says_event_stream(headers: Any, expected: bool) -> None:
    assert is_event_stream(headers) is expected


@pytest.mark.parametrize("start", [
    _start(b"text/event-stream; charset=utf-8", b"Content-Type"),
    _start(b"TEXT/EVENT-STREAM", b"content-type"),
])
async def test_an_event_stream_is_recorded_by_its_first_byte(
    wrap: Wrap, registry: CollectorRegistry, start: Message,
) -> None:
    await wrap(_chunked(start))(_scope(), Server().receive, Server().send)
    count, lifetime = _lifetimes(registry)
    duration, ttfb = _durations(registry)
    assert count == 1
    assert lifetime >= PAUSE
    # The request's duration is its time to first byte, which came before the pause.
    assert duration == ttfb
    assert duration < lifetime
    assert _value(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="200") == 1
    assert _open(registry) == 0


@pytest.mark.parametrize("start", [_start(b"text/plain"), _start(None),
                                   _start(b"application/x-ndjson")])
async def test_other_chunked_responses_are_requests(wrap: Wrap, registry: CollectorRegistry,
                                                    start: Message) -> None:
    await wrap(_chunked(start))(_scope(), Server().receive, Server().send)
    duration, ttfb = _durations(registry)
    assert duration >= PAUSE > ttfb
    assert sample(registry, "http_stream_duration_seconds_count", method="GET",
                  route="<unmatched>") is None


async def test_an_event_stream_in_one_piece_is_a_request(wrap: Wrap,
                                                         registry: CollectorRegistry) -> None:
    # Nothing followed its first chunk: it was over when it started, and nothing read it.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(_start(b"text/event-stream"))
        await send({"type": "http.response.body", "body": b"data: 1\n\n"})

    await wrap(app)(_scope(), Server().receive, Server().send)
    assert _lifetimes(registry) == (0.0, 0.0)
    assert _value(registry, "http_request_duration_seconds_count", method="GET",
                  route="<unmatched>") == 1


def _declared_app() -> Starlette:
    async def lines() -> Any:
        yield b'{"n": 1}\n'
        await asyncio.sleep(PAUSE)
        yield b'{"n": 2}\n'

    async def feed(request: Request) -> Response:
        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def poll(request: Request) -> Response:
        await asyncio.sleep(PAUSE)  # a long poll: waits, then answers in one piece
        return PlainTextResponse("news")

    return Starlette(routes=[Route("/feed/{id}", feed), Route("/llm/chat", feed),
                             Route("/poll", poll), Route("/plain/{id}", feed)])


@pytest.mark.parametrize(("path", "route"), [("/feed/7", "/feed/{id}"),
                                             ("/llm/chat", "/llm/chat")])
async def test_a_declared_route_is_a_stream(wrap: Wrap, registry: CollectorRegistry, path: str,
                                            route: str) -> None:
    mw = wrap(_declared_app(), metrics=MetricsSettings(
        stream_routes=("/feed/{id}", "/llm/*", "/poll")))
    await mw(_scope(path), Server().receive, Server().send)
    count, lifetime = _lifetimes(registry, route)
    duration, ttfb = _durations(registry, route)
    assert count == 1 and lifetime >= PAUSE
    assert duration == ttfb < lifetime
    assert _open(registry) == 0


async def test_a_declared_long_poll_is_a_stream_too(wrap: Wrap,
                                                    registry: CollectorRegistry) -> None:
    # Answered in one piece, it is known to be a stream by its route at the end.
    mw = wrap(_declared_app(), metrics=MetricsSettings(stream_routes=("/poll",)))
    await mw(_scope("/poll"), Server().receive, Server().send)
    count, lifetime = _lifetimes(registry, "/poll")
    assert count == 1 and lifetime >= PAUSE
    duration, ttfb = _durations(registry, "/poll")
    assert duration == ttfb


async def test_an_undeclared_route_is_not(wrap: Wrap, registry: CollectorRegistry) -> None:
    mw = wrap(_declared_app(), metrics=MetricsSettings(stream_routes=("/feed/{id}", "/llm/*")))
    await mw(_scope("/plain/1"), Server().receive, Server().send)
    assert _lifetimes(registry, "/plain/{id}") == (0.0, 0.0)
    duration, _ = _durations(registry, "/plain/{id}")
    assert duration >= PAUSE


# -- the gauges --------------------------------------------------------------------------------
async def test_open_while_streaming_and_closed_after(wrap: Wrap,
                                                     registry: CollectorRegistry) -> None:
    proceed = asyncio.Event()
    seen: list[tuple[float, float]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(_start(b"text/event-stream"))
        seen.append((_open(registry), _in_progress(registry)))
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        seen.append((_open(registry), _in_progress(registry)))
        await proceed.wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        seen.append((_open(registry), _in_progress(registry)))
        await asyncio.sleep(0)  # a background task after the response
        seen.append((_open(registry), _in_progress(registry)))

    task = asyncio.ensure_future(wrap(app)(_scope(), Server().receive, Server().send))
    while len(seen) < 2:
        await asyncio.sleep(0)
    proceed.set()
    await task
    # Before the first chunk it is not known to be a stream; it is open until the app's call
    # ends, while the request is no longer in progress from its last chunk on.
    assert seen == [(0, 1), (1, 1), (1, 0), (1, 0)]
    assert (_open(registry), _in_progress(registry)) == (0, 0)


async def test_in_progress_ends_at_the_last_chunk_not_after_background_tasks(
    wrap: Wrap, registry: CollectorRegistry,
) -> None:
    during: list[float] = []

    async def later() -> None:
        during.append(_in_progress(registry))

    async def home(request: Request) -> Response:
        from starlette.background import BackgroundTask

        return PlainTextResponse("ok", background=BackgroundTask(later))

    app = Starlette(routes=[Route("/", home)])
    await wrap(app)(_scope("/"), Server().receive, Server().send)
    assert during == [0]
    assert _in_progress(registry) == 0


async def _streams_then_fails(scope: Any, receive: Any, send: Any) -> None:
    await send(_start(b"text/event-stream"))
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    raise RuntimeError("the model crashed")


async def test_a_stream_that_raises_closes_once(wrap: Wrap, registry: CollectorRegistry) -> None:
    with pytest.raises(RuntimeError):
        await wrap(_streams_then_fails)(_scope(), Server().receive, Server().send)
    assert (_open(registry), _in_progress(registry)) == (0, 0)
    assert _lifetimes(registry)[0] == 1


async def test_a_cancelled_stream_is_499_and_closes_once(wrap: Wrap,
                                                         registry: CollectorRegistry) -> None:
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(_start(b"text/event-stream"))
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(wrap(app)(_scope(), Server().receive, Server().send))
    await started.wait()
    assert _open(registry) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (_open(registry), _in_progress(registry)) == (0, 0)
    assert _lifetimes(registry)[0] == 1
    assert _value(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="499") == 1


async def test_a_client_that_leaves_mid_stream_is_499_with_its_lifetime(
    wrap: Wrap, registry: CollectorRegistry,
) -> None:
    server = Server()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(_start(b"text/event-stream"))
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        asyncio.get_running_loop().call_later(PAUSE, server.gone.set)
        await receive()  # http.disconnect: stop streaming

    await wrap(app)(_scope(), server.receive, server.send)
    assert _value(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="499") == 1
    count, lifetime = _lifetimes(registry)
    assert count == 1 and lifetime >= PAUSE
    assert (_open(registry), _in_progress(registry)) == (0, 0)


@pytest.mark.parametrize("fail_from", [2, 3])  # a chunk in between, the last chunk
async def test_a_failed_send_closes_once(wrap: Wrap, registry: CollectorRegistry,
                                         fail_from: int) -> None:
    server = Server(fail_from=fail_from)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(_start(b"text/event-stream"))
        for last in (False, False, True):
            await send({"type": "http.response.body", "body": b"x", "more_body": not last})

    with pytest.raises(ConnectionResetError):
        await wrap(app)(_scope(), server.receive, server.send)
    assert (_open(registry), _in_progress(registry)) == (0, 0)
    assert _lifetimes(registry)[0] == 1
    assert _value(registry, "http_requests_total", method="GET", route="<unmatched>",
                  status="499") == 1


async def test_streams_under_otel_names(wrap: Wrap, registry: CollectorRegistry) -> None:
    await wrap(_chunked(_start(b"text/event-stream")), metrics=MetricsSettings(
        metric_names="otel"))(_scope(), Server().receive, Server().send)
    assert sample(registry, "http_server_stream_duration_seconds_count",
                  http_request_method="GET", http_route="<unmatched>") == 1
    assert sample(registry, "http_server_active_streams") == 0
    assert sample(registry, "http_stream_duration_seconds_count", method="GET",
                  route="<unmatched>") is None


async def test_streams_over_the_cap_overflow_and_are_counted(wrap: Wrap,
                                                             registry: CollectorRegistry) -> None:
    mw = wrap(_declared_app(), metrics=MetricsSettings(
        stream_routes=("/feed/{id}", "/llm/*"), max_series=1, metric_names="otel"))
    for path in ("/feed/1", "/llm/chat"):
        await mw(_scope(path), Server().receive, Server().send)
    assert sample(registry, "http_server_stream_duration_seconds_count",
                  http_request_method="GET", http_route="<overflow>") == 1
    assert sample(registry, "asgi_monitor_series_dropped_total",
                  metric="http_server_stream_duration_seconds_count") == 1


async def test_a_failing_record_still_closes_the_stream(wrap: Wrap,
                                                       registry: CollectorRegistry) -> None:
    def resolver(scope: Any) -> str:
        raise RuntimeError("the resolver broke")

    mw = wrap(_chunked(_start(b"text/event-stream")),
              metrics=MetricsSettings(route_resolver=resolver))
    await mw(_scope(), Server().receive, Server().send)
    assert (_open(registry), _in_progress(registry)) == (0, 0)
    assert _value(registry, "asgi_monitor_internal_errors_total", where="record") == 1
